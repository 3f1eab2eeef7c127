"""Export a predictions file to the field's formats: CSV, MegaDetector batch output 1.6, Camtrap DP 1.0.

    export("labels.csv", "camtrap-dp", deployments="deployments.csv")   # `python -m classifier export`

`export` reads the predictions file (`classifier.schema.predictions_file`), for Camtrap DP the deployments
and `--metadata` (`classifier.results.deployments`, `classifier.results.camtrap_dp`), and the species notes
(`classifier.results.taxa`), then writes the format chosen to `--out` or `default_out`, through
`atomic_output` (`classifier.results.output`).
"""

from __future__ import annotations

from pathlib import Path

from classifier.results.camtrap_dp import read_metadata, write_camtrap_dp
from classifier.results.deployments import read_deployments
from classifier.results.megadetector import megadetector_results, write_megadetector
from classifier.results.output import ExportResult, atomic_output
from classifier.results.taxa import load_taxa
from classifier.schema.predictions_file import ExportError, read_predictions, write_csv
from classifier.schema.rows import labels_of

FORMATS = ("csv", "megadetector", "camtrap-dp")


# --------------------------------------------------------------------------------------------- exporting


def default_out(predictions: str | Path, format: str) -> str:
    """Where `export` writes by default: beside PREDICTIONS, named after it and the format."""
    path = Path(predictions)
    suffix = {"csv": ".export.csv", "megadetector": ".megadetector.json", "camtrap-dp": ".camtrap-dp.zip"}
    return str(path.with_name(path.stem + suffix[format]))


def export(
    predictions: str | Path,
    format: str,
    out: str | Path | None = None,
    *,
    deployments: str | Path | None = None,
    species: str | Path | None = None,
    metadata: str | Path | None = None,
) -> ExportResult:
    """Read PREDICTIONS and write it as `format` (csv | megadetector | camtrap-dp); what the CLI runs."""
    if format not in FORMATS:
        raise ExportError(f"unknown format {format!r}; use {', '.join(FORMATS)}.")
    out = str(out or default_out(predictions, format))
    if out != "-" and Path(out).resolve() == Path(predictions).resolve():
        raise ExportError(f"--out {out}: is the predictions file itself; name another file.")
    if out != "-" and Path(out).is_dir():
        raise ExportError(f"--out {out}: is a folder; name a file.")
    if format == "camtrap-dp" and out == "-":
        raise ExportError("--out -: a Camtrap DP package is a zip; name a .zip file.")
    # Refuse bad options before reading a big file.
    groups = read_deployments(deployments) if deployments else None
    extra = read_metadata(metadata) if metadata else None
    read = read_predictions(predictions)
    records = read.records
    result = ExportResult(out=out)
    if format != "camtrap-dp" and (groups or extra):
        result.warnings.append(f"--deployments and --metadata are for camtrap-dp; {format} ignores them.")
    if format == "csv":
        with atomic_output(out) as stream:
            result.images = write_csv(records, stream)
        return result
    labels = labels_of(records)
    taxa, _notes = load_taxa(labels, species)
    if format == "megadetector":
        results = megadetector_results(records, completed=read.written, taxa=taxa, warnings=result.warnings)
        with atomic_output(out) as stream:
            write_megadetector(results, stream)
        result.images = len(results["images"])
        result.observations = sum(len(i["detections"] or ()) for i in results["images"])
        return result
    packaged = write_camtrap_dp(
        records, out, deployments=groups, taxa=taxa, metadata=extra, classified_at=read.written
    )
    packaged.warnings = result.warnings + packaged.warnings
    return packaged
