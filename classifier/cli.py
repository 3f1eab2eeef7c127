"""`python -m classifier predict|evaluate|explain|export|season|models|compile`: label, score, show where
the model looked, export, analyse a season, list, compile.

    python -m classifier predict --model serengeti --out labels.csv photos/ card2.zip https://.../x.jpg
    python -m classifier predict --out labels.csv s3://bucket/season1/   # object stores, through pyarrow
    python -m classifier predict --out again.csv photos.txt labels.csv  # lists: a photo a line, a CSV's path
    python -m classifier evaluate --model serengeti ../shared/data/camera_traps/labels.csv --out eval.json
    python -m classifier models
    python -m classifier explain photo.jpg --out heat.png   # a heatmap: where the model looked
    python -m classifier export --format camtrap-dp --deployments deployments.csv labels.csv
    python -m classifier season season1.zip --out season1/   # events, RAI, activity, overlap, map
    python -m classifier compile            # every bundle's network, for prediction (classifier.models.runtimes)
    python -m classifier predict --runtime openvino --precision int8 photos/   # the runtime and precision
    python -m classifier compile --model serengeti --ship-agreement   # bf16 against fp32, into the bundle

Exit status: 0 when the run finished (even when some photos were error rows); 1 with one line on stderr
for a missing or broken model, no inputs, an unusable list (.txt, .csv), unusable evaluation data, or a
predictions, deployments or species file `export` cannot use; 2 for wrong options; 130 after Ctrl-C (the
output then holds every row that finished, and is valid CSV or JSON).

Test-only switch: with the environment variable `CLASSIFIER_TEST_ALLOW_LOOPBACK=1`, URLs may point at this
machine's loopback address (127.0.0.1 / ::1), so tests can serve photos from a local HTTP server. Never
set it on a machine that serves the app: it is what stops a URL from reaching local services.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from classifier.intake.inputs import expand_inputs
from classifier.intake.items import Expansion
from classifier.intake.lists import ListError
from classifier.models.bundles import MODELS_DIR, Bundle, BundleError, find_bundles, resolve_bundle
from classifier.models.engines import (
    ENGINES,
    LOCAL,
    EngineError,
    LocalEngine,
    RayEngine,
    open_engine,
)
from classifier.models.predict import CPU_BATCH_SIZE, GPU_BATCH_SIZE
from classifier.models.predictors import PredictorOptions
from classifier.results.labelling import Tally, write_rows
from classifier.results.sequences import DEFAULT_GAP_SECONDS
from classifier.schema.predictions_file import row_writer
from classifier.schema.rows import CSV_COLUMNS, ERROR

if TYPE_CHECKING:
    from classifier.knowledge.species import SpeciesBook

LOOPBACK_SWITCH = "CLASSIFIER_TEST_ALLOW_LOOPBACK"
EXPLAIN_SIZE = 1024  # `explain` decodes big photos at a reduced scale, as the app shows them
PROG = "python -m classifier"


class CommandError(Exception):
    """A problem the user fixes; printed as one line, exit status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (CommandError, BundleError) as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before any row was written (loading the model, listing folders)
        print(f"{PROG} {args.command}: interrupted; nothing was written.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head`: the reader has all it wants
        sys.stderr.close()
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Label wildlife photos with a trained model bundle."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = commands.add_parser(
        "predict",
        help="label photos: files, folders, .zip archives, URLs, s3:// gs:// file:// folders, .txt/.csv lists",
        description="Write one row per photo: " + ",".join(CSV_COLUMNS) + ". `top_k` is 'label:p;label:p'. "
        "Inside folders and zips, files without an image extension are skipped and counted.",
    )
    _model_options(predict, required=False)
    predict.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="image files, folders (recursive), .zip, http(s) URLs, object-store folders or objects "
        "(s3://bucket/prefix/, gs://bucket/folder, file:///abs/folder; read through pyarrow), "
        "lists: a .txt with one of these a line (# comments) or a .csv with a path, file, filepath or url "
        "column, such as --out's own CSV (relative entries: from the list's folder, else as given)",
    )
    predict.add_argument(
        "--top-k", type=_positive_int, default=3, help="labels per row in top_k (default: 3)"
    )
    predict.add_argument(
        "--threshold",
        type=_probability,
        default=None,
        help="confidence below which a row is 'uncertain' (default: the bundle's threshold.value)",
    )
    predict.add_argument(
        "--out",
        default="-",
        help="output file, .csv or .json, written as rows finish (default: CSV on standard output)",
    )
    predict.add_argument(
        "--sequence-gap",
        type=_non_negative_float,
        default=DEFAULT_GAP_SECONDS,
        metavar="SECONDS",
        help="photos of one folder and camera taken at most this far apart share a sequence_id "
        f"(default: {DEFAULT_GAP_SECONDS:g}; 0 turns sequences off and every row is written at once)",
    )
    predict.add_argument(
        "--sequence-label",
        action="store_true",
        help="add a sequence_label column: the sequence's majority label",
    )
    predict.add_argument(
        "--no-detector",
        action="store_true",
        help="classify each whole frame, even with a bundle that finds animals first "
        "(default: the bundle's choice; its report names its detector)",
    )
    place = predict.add_argument_group(
        "where and what",
        "With the bundle's species notes, an answer under the cut-off rolls up to the lowest rank that is "
        "sure (rank column: genus, family, order, class). With a place, classes whose range leaves it out "
        "are never the answer (geofenced column); a photo's own EXIF GPS is its place when none is given.",
    )
    place.add_argument(
        "--country",
        type=_country,
        default=None,
        metavar="ISO3",
        help="where the photos were taken, e.g. KEN (default: none)",
    )
    place.add_argument("--lat", type=_latitude, default=None, help="latitude of the camera, with --lon")
    place.add_argument("--lon", type=_longitude, default=None, help="longitude of the camera, with --lat")
    place.add_argument(
        "--no-rules", action="store_true", help="the model's own answers: no rollup and no geofence"
    )
    predict.add_argument(
        "--per-detection",
        action="store_true",
        help="one row per animal the detector found, instead of one per photo (blank and error rows stay)",
    )
    predict.add_argument(
        "--no-embeddings",
        action="store_true",
        help="do not keep what the classifier saw of each photo (kept by default, about 2.5 kB a picture "
        "in the cache: `queue` and retraining on a review use it instead of running the networks again)",
    )
    _speed_options(predict)
    scale = predict.add_argument_group(
        "engines",
        "Where the photos are decoded and classified; both engines write the same rows, in input order "
        "(classifier/models/engines.py).",
    )
    scale.add_argument(
        "--engine",
        choices=ENGINES,
        default=LOCAL,
        help="local: threads in this process; ray: Ray Data, decoding in tasks and classifying in a pool "
        "of actors that each load the model once, --workers of them (default with ray: one per CPU of "
        "the cluster, or one per GPU) (default: local)",
    )
    scale.add_argument(
        "--address",
        default=None,
        metavar="ADDRESS",
        help="with --engine ray: join the Ray cluster there (e.g. ray://HEAD:10001, or auto) "
        "(default: start a local Ray on this machine's cores for the run)",
    )
    predict.set_defaults(run=run_predict)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a model on labeled data (the training report's numbers)",
        description="Predict every labeled photo in DATA and write the metrics, per-class scores, confusion "
        "matrix and threshold curve in the schema of models/<name>/report.json.",
    )
    _model_options(evaluate, required=True)
    evaluate.add_argument(
        "data", metavar="DATA", help="a class-per-folder tree, a .csv, or a COCO / iNat .json"
    )
    evaluate.add_argument(
        "--format",
        choices=("folder", "csv", "coco", "inat"),
        default=None,
        help="dataset format (default: guessed from DATA)",
    )
    evaluate.add_argument(
        "--image-root", default=None, help="where paths in a .csv/.json start (default: the file's folder)"
    )
    evaluate.add_argument("--out", default=None, help="write the report as JSON here (default: summary only)")
    _speed_options(evaluate)
    evaluate.set_defaults(run=run_evaluate)

    _explain_parser(commands)
    _export_parser(commands)
    _season_parser(commands)
    _queue_parser(commands)

    models = commands.add_parser("models", help="list the model bundles (name, classes, accuracy)")
    models.add_argument(
        "--models-dir",
        action="append",
        default=None,
        metavar="DIR",
        help=f"where bundles live; repeat for several (default: {MODELS_DIR})",
    )
    models.set_defaults(run=run_models)

    compile_ = commands.add_parser(
        "compile",
        help="compile bundles' networks for prediction, once per model file (done on first use otherwise)",
        description="Compile each bundle's network (and its animal detector's) for a runtime into the "
        "runtime cache (classifier/models/runtimes/), so prediction needs neither fastai nor a first-use wait.",
    )
    _model_options(compile_, required=False, every=True)
    _runtime_options(compile_)
    compile_.add_argument(
        "--app", action="store_true", help="for the app's runtime (without --runtime; make run does this)"
    )
    compile_.add_argument(
        "--force", action="store_true", help="compile again (and measure bf16 again) even when cached"
    )
    compile_.add_argument(
        "--ship-agreement",
        action="store_true",
        help="measure bf16 against fp32 on the bundle's held-out photos and write the figures into its "
        "precision.json, which --precision auto reads where the photos are not (for whoever releases the "
        "bundle; needs a CPU with bfloat16)",
    )
    compile_.add_argument(
        "--no-detector",
        action="store_true",
        help="leave out the animal detector of bundles that have one (default: compile it too)",
    )
    compile_.set_defaults(run=run_compile)
    return parser


def _model_options(parser: argparse.ArgumentParser, required: bool, every: bool = False) -> None:
    default = " (default: every bundle)" if every else " (default: serengeti, else the first bundle found)"
    parser.add_argument(
        "--model",
        required=required,
        metavar="NAME|DIR",
        help="bundle name under the models folder, or a bundle folder" + ("" if required else default),
    )
    parser.add_argument(
        "--models-dir",
        action="append",
        default=None,
        metavar="DIR",
        help=f"where named bundles live; repeat for several (default: {MODELS_DIR})",
    )


def _runtime_options(parser: argparse.ArgumentParser) -> None:
    from classifier.models.precision import AUTO, CHOICES
    from classifier.models.runtimes import DEFAULT_RUNTIME, RUNTIME_VARIABLE, RUNTIMES

    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=None,
        help="what runs the networks: torch (TorchScript), openvino or onnx (ONNX Runtime), each compiled "
        f"once per model file and cached (default: ${RUNTIME_VARIABLE}, else {DEFAULT_RUNTIME}; "
        "torch when its package is missing)",
    )
    parser.add_argument(
        "--precision",
        choices=CHOICES,
        default=AUTO,
        help="auto (default): bf16 for each network (classifier, detector) where the CPU has native "
        "bfloat16 and bf16 kept fp32's answers on the bundle's held-out photos (`models` says which and "
        "why), else fp32; fp32; bf16 (openvino); int8 (openvino, onnx: calibrated on the bundle's "
        "training photos, which must be on disk)",
    )


def _speed_options(parser: argparse.ArgumentParser) -> None:
    _runtime_options(parser)
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help=f"photos per forward pass (default: {CPU_BATCH_SIZE} on a CPU, {GPU_BATCH_SIZE} on a GPU)",
    )
    parser.add_argument(
        "--workers",
        type=_non_negative_int,
        default=None,
        help="threads that each decode and predict a batch; 0 does all in the main thread "
        "(default: one per CPU core)",
    )


# ----------------------------------------------------------------------------------------------- predict


def run_predict(args: argparse.Namespace) -> int:
    bundle = _bundle(args)
    if not args.inputs:
        raise CommandError(
            "no inputs; name image files, folders, .zip archives, http(s) URLs or s3:// gs:// file:// folders."
        )
    allow_loopback = os.environ.get(LOOPBACK_SWITCH) == "1"
    try:
        expansion = expand_inputs(args.inputs, allow_loopback=allow_loopback, lists=True)
    except ListError as exc:
        raise CommandError(str(exc)) from None
    if not expansion.items:
        raise CommandError(f"no photos found in the inputs ({_skipped_text(expansion) or 'they are empty'}).")
    started = time.perf_counter()
    options = PredictorOptions(
        detect=not args.no_detector,
        runtime=args.runtime,
        precision=args.precision,
        book=None if args.no_rules else _species_book(bundle, required=bool(_place(args))),
        country=_place(args),
        threshold=args.threshold,
        top_k=args.top_k,
        batch_size=args.batch_size,
        keep_embeddings=not args.no_embeddings,
    )
    try:
        engine = open_engine(args.engine, bundle, options, workers=args.workers, address=args.address)
    except EngineError as exc:
        raise CommandError(str(exc)) from None
    try:
        return _predict_with(engine, args, expansion, started)
    finally:
        engine.close()


def _predict_with(
    engine: LocalEngine | RayEngine, args: argparse.Namespace, expansion: Expansion, started: float
) -> int:
    output = _open_output(args.out)
    writer = row_writer(output.stream, json_rows=_is_json(args.out), sequence_label=args.sequence_label)
    progress = _progress(len(expansion.items))
    try:
        tally = write_rows(
            _counted(engine.predict_many(expansion.items), progress, keep_probabilities=False),
            writer,
            groups=[i.group for i in expansion.items],
            sequence_gap=args.sequence_gap,
            per_animal=args.per_detection,
        )
    finally:
        progress.close()
        writer.close()
        output.close()
    seconds = time.perf_counter() - started
    _print_summary(expansion, tally, args.out, seconds)
    if tally.failed:
        raise CommandError(tally.failed)
    return 130 if tally.interrupted else 0


def _counted(rows: Any, progress: Any, keep_probabilities: bool = True) -> Any:
    for row in rows:
        progress.update(1)
        if not keep_probabilities:
            row.probabilities = ()  # not written; held rows (sequences) then stay small with many classes
        yield row


def _progress(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="photo", file=sys.stderr, disable=None, mininterval=0.5, dynamic_ncols=True)


def _print_summary(expansion: Expansion, tally: Tally, out: str, seconds: float) -> None:
    counts, errors, done = tally.counts, tally.errors, tally.done
    states = ", ".join(f"{counts[s]} {s}" for s in ("ok", "uncertain", ERROR))
    where = "standard output" if out == "-" else out
    rate = f" ({done / seconds:.1f} photos/s)" if seconds > 0 and done else ""
    stopped = tally.interrupted or bool(tally.failed)
    lead = f"Interrupted: {done} of {len(expansion.items)} photos" if stopped else f"{done} photos"
    lines = [f"{lead}: {states}; written to {where} in {seconds:.1f} s{rate}."]
    if expansion.skipped_total:
        lines.append(f"Skipped {expansion.skipped_total} files: {_skipped_text(expansion)}.")
    if errors:
        lines.append("Errors" + (" (first 5)" if counts[ERROR] > len(errors) else "") + ":")
        lines += [f"  {message}" for message in errors]
    print("\n".join(lines), file=sys.stderr)


def _skipped_text(expansion: Expansion) -> str:
    return expansion.skipped_summary()


class _Output:
    def __init__(self, stream: IO[str], owned: bool) -> None:
        self.stream, self.owned = stream, owned

    def close(self) -> None:
        if self.owned:
            self.stream.close()
        else:
            self.stream.flush()


def _open_output(out: str) -> _Output:
    if out == "-":
        return _Output(sys.stdout, owned=False)
    path = Path(out)
    if path.suffix.lower() not in (".csv", ".json"):
        raise CommandError(f"--out {out}: name a .csv or .json file.")
    if path.is_dir():
        raise CommandError(f"--out {out}: is a folder; name a .csv or .json file.")
    try:
        return _Output(open(path, "w", encoding="utf-8", newline=""), owned=True)
    except OSError as exc:
        raise CommandError(f"--out {out}: cannot be written ({exc.strerror or exc}).") from None


def _is_json(out: str) -> bool:
    return out.lower().endswith(".json")


# ---------------------------------------------------------------------------------------------- evaluate


def run_evaluate(args: argparse.Namespace) -> int:
    from classifier.intake.datasets import DatasetError, read_dataset
    from classifier.results.evaluation import EvaluationError, evaluate_bundle
    from classifier.results.report import EVALUATION_SCHEMA, write_report

    bundle = _bundle(args)
    options = PredictorOptions(
        detect=False, runtime=args.runtime, precision=args.precision, batch_size=args.batch_size
    )  # the classifier alone, on the labelled photos as they are
    try:
        dataset = read_dataset(args.data, args.format, image_root=args.image_root)
        progress = _progress(len(dataset.records))
        try:
            done = evaluate_bundle(
                bundle, dataset, options.build(bundle, workers=args.workers), seen=lambda: progress.update(1)
            )
        finally:
            progress.close()
    except (DatasetError, EvaluationError) as exc:
        raise CommandError(str(exc)) from None
    report, unknown = done.report, done.unknown
    metrics = report["metrics"]
    print(
        f"{bundle.name} on {args.data}: {report['data']['n_images']} photos, accuracy {metrics['accuracy']:.3f}, "
        f"macro F1 {metrics['macro_f1']:.3f}, top-3 {metrics['top3_accuracy']:.3f}, "
        f"threshold {report['threshold']['value']:.2f}"
    )
    if unknown:
        print(
            f"Left out {sum(unknown.values())} photos of classes the model does not predict: "
            + ", ".join(f"{name} ({n})" for name, n in unknown.most_common(5)),
            file=sys.stderr,
        )
    if done.unreadable:
        print(f"Skipped {done.unreadable} unreadable photos (listed in the report).", file=sys.stderr)
    if args.out:
        write_report(report, args.out, schema=EVALUATION_SCHEMA)
        print(f"Report written to {args.out}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------------------------- explain


def _explain_parser(commands: Any) -> None:
    from classifier.models.explain import DEFAULT_METHOD, METHODS

    explain = commands.add_parser(
        "explain",
        help="draw where the model looked in a photo: a heatmap over it (and over each animal found)",
        description="Classify PHOTO as predict does and write a PNG: the photo with a heatmap of where the "
        "classifier looked for its answer (the brighter, the more it counted), the detector's boxes, and "
        "each animal's crop with its own heatmap. Prints each heatmap's class and, with boxes, the share "
        "of the whole frame's heatmap inside them.",
    )
    _model_options(explain, required=False)
    explain.add_argument("photo", metavar="PHOTO", help="an image file or an http(s) URL")
    explain.add_argument("--out", required=True, metavar="FILE.png", help="the picture to write (PNG)")
    explain.add_argument(
        "--class",
        dest="target",
        default=None,
        metavar="NAME",
        help="explain this class instead of each picture's first answer (default: the first answer)",
    )
    explain.add_argument(
        "--method",
        choices=METHODS,
        default=DEFAULT_METHOD,
        help=f"class-activation method (default: {DEFAULT_METHOD}, chosen by benchmarks/explain_sanity.py)",
    )
    explain.add_argument(
        "--no-detector",
        action="store_true",
        help="explain the whole frame only, even with a bundle that finds animals first",
    )
    explain.set_defaults(run=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    from classifier.intake.images import ImageError, load_photo
    from classifier.intake.urlfetch import FetchError, fetch_image
    from classifier.models.explain import ExplainError, explain, render
    from classifier.models.runtimes import TORCH

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise CommandError(f"--out {args.out}: name a .png file.")
    if out.is_dir():
        raise CommandError(f"--out {args.out}: is a folder; name a .png file.")
    bundle = _bundle(args)
    if args.target is not None and args.target not in bundle.classes:
        shown = ", ".join(bundle.classes[:8]) + (", ..." if len(bundle.classes) > 8 else "")
        raise CommandError(f"--class {args.target}: not a class of {bundle.name!r} ({shown}).")
    started = time.perf_counter()
    try:
        if args.photo.startswith(("http://", "https://")):
            fetched = fetch_image(args.photo, allow_loopback=os.environ.get(LOOPBACK_SWITCH) == "1")
            source: bytes | Path = fetched.content
        else:
            source = Path(args.photo)
        photo = load_photo(source, name=args.photo, target_size=EXPLAIN_SIZE)  # what the picture shows
    except (ImageError, FetchError) as exc:
        raise CommandError(str(exc)) from None
    # The heatmap needs the network's two torch parts; torch and the other runtimes answer alike (1e-5).
    predictor = PredictorOptions(detect=not args.no_detector, runtime=TORCH, top_k=5).build(bundle)
    row = predictor.predict_photo(source, name=args.photo)
    try:
        explanation = explain(predictor, photo.image, row, method=args.method, target=args.target)
    except ExplainError as exc:
        raise CommandError(str(exc)) from None
    try:
        render(photo.image, explanation).save(out, format="PNG")
    except OSError as exc:
        raise CommandError(f"--out {args.out}: cannot be written ({exc.strerror or exc}).") from None
    frame = explanation.frame
    lines = [f"whole frame: {frame.label} ({frame.probability:.1%}), {args.method}"]
    for number, crop in enumerate(explanation.crops, 1):
        inside = frame.mass_inside(crop.bbox)
        lines.append(
            f"animal {number}: {crop.heatmap.label} ({crop.heatmap.probability:.1%}); "
            f"{inside:.0%} of the whole frame's heatmap is inside its box"
        )
    if row.detections == ():
        lines.append("the detector found no animal; the whole frame is explained")
    print("\n".join(lines))
    print(f"Written to {out} in {time.perf_counter() - started:.1f} s.", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------ export


def _export_parser(commands: Any) -> None:
    from classifier.results.deployments import DEPLOYMENT_COLUMNS
    from classifier.results.exports import FORMATS

    export = commands.add_parser(
        "export",
        help="write a predictions CSV/JSON as CSV, MegaDetector batch output 1.6 or a Camtrap DP 1.0.2 zip",
        description="Read PREDICTIONS (a CSV or JSON that predict or the app wrote, reviewed or not) and "
        "write it in one of the field's formats. Bad input is refused with one line and exit status 2.",
    )
    export.add_argument(
        "predictions", metavar="PREDICTIONS", help="the .csv or .json predict or the app wrote"
    )
    export.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        help="csv: the predict columns plus the detector and review columns; megadetector: MegaDetector "
        "batch output format 1.6 (JSON); camtrap-dp: a Camtrap DP 1.0.2 data package (zip). No default.",
    )
    export.add_argument(
        "--out",
        default=None,
        help="file to write; '-' is standard output (csv, megadetector) (default: beside PREDICTIONS, "
        "named PREDICTIONS.export.csv, .megadetector.json or .camtrap-dp.zip)",
    )
    export.add_argument(
        "--deployments",
        default=None,
        metavar="FILE.csv",
        help="camtrap-dp: one row per deployment, columns "
        + ",".join(DEPLOYMENT_COLUMNS)
        + " (the folder its photos are in) and optionally camera, locationName, timezone, "
        "deploymentStart, deploymentEnd (default: none; the export then lists the folder/camera groups "
        "that need coordinates and stops)",
    )
    export.add_argument(
        "--species",
        default=None,
        metavar="NAME|FILE.yaml",
        help="species notes with the classes' scientific names (default: the species_info file that "
        "knows the most labels of PREDICTIONS)",
    )
    export.add_argument(
        "--metadata",
        default=None,
        metavar="FILE.json",
        help="camtrap-dp: a JSON object merged over the generated datapackage.json: title, contributors, "
        "project (samplingDesign, ...), licenses (default: a generated title, project with samplingDesign "
        "'opportunistic', and the reviewers, else the classifier, as contributors)",
    )
    export.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from classifier.results.exports import export
    from classifier.schema.predictions_file import ExportError

    started = time.perf_counter()
    try:
        result = export(
            args.predictions,
            args.format,
            args.out,
            deployments=args.deployments,
            species=args.species,
            metadata=args.metadata,
        )
    except ExportError as exc:
        raise CommandError(str(exc)) from None
    for warning in result.warnings:
        print(f"Warning: {warning}", file=sys.stderr)
    where = "standard output" if result.out == "-" else result.out
    boxes = f", {result.observations} observations" if args.format == "camtrap-dp" else ""
    print(
        f"{result.images} photos{boxes} written to {where} ({args.format}) in "
        f"{time.perf_counter() - started:.1f} s.",
        file=sys.stderr,
    )
    return 0


# ------------------------------------------------------------------------------------------------- queue


def _queue_parser(commands: Any) -> None:
    queue = commands.add_parser(
        "queue",
        help="the photos of a labelled batch a person should review first, so a retrain learns most",
        description="Choose from PREDICTIONS (a CSV or JSON of predict or the app) the N photos to review "
        "first: one a sequence, spread over what looks different, typical ones first (docs/learning_loop.md). "
        "Then review them, and `python -m train --data REVIEWED.csv --format csv --base-model NAME --name NEW`.",
    )
    queue.add_argument("predictions", metavar="PREDICTIONS", help="a predictions .csv or .json")
    queue.add_argument("--size", type=_positive_int, required=True, metavar="N", help="how many photos")
    queue.add_argument(
        "--out", default="-", metavar="QUEUE.csv", help="where to write the rows (default: standard output)"
    )
    _model_options(queue, required=False)
    queue.set_defaults(run=run_queue)


def run_queue(args: argparse.Namespace) -> int:
    from classifier.results.output import atomic_output
    from classifier.results.queue import teaching_queue
    from classifier.schema.predictions_file import ExportError, read_predictions, write_csv

    try:
        predictions = read_predictions(args.predictions)
        machine = (r.classified_by for r in predictions.records if r.classification_method == "machine")
        args.model = args.model or next(machine, None)  # the bundle that labelled the batch
        chosen = teaching_queue(
            predictions, _bundle(args), args.size, Path(args.predictions).resolve().parent
        )
        with atomic_output(args.out) as stream:
            write_csv(chosen, stream)
    except ExportError as exc:
        raise CommandError(str(exc)) from None
    print(f"{len(chosen)} photos to review first, of {len(predictions.records)}.", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------ season


def _season_parser(commands: Any) -> None:
    from classifier.results.season import BOOTSTRAP_SAMPLES, DEFAULT_GAP_MINUTES, MIN_EVENTS

    season = commands.add_parser(
        "season",
        help="a season's ecology: events, camera-days, RAI, activity, overlap, accumulation, occupancy, map",
        description="Read a Camtrap DP 1.0.x package (folder, datapackage.json or zip) or a predictions "
        "CSV/JSON, and write to DIR the figures R's camtrapR, camtraptor and overlap give (docs/season.md).",
    )
    season.add_argument("input", metavar="INPUT", help="a Camtrap DP package, or a predictions .csv/.json")
    season.add_argument(
        "--out", required=True, metavar="DIR", help="folder for the CSVs and plots (made if missing)"
    )
    season.add_argument(
        "--deployments",
        metavar="FILE.csv",
        help="predictions only: where each camera stood, as for export (default: each folder/camera is a "
        "deployment without a position: no map, clock time)",
    )
    season.add_argument(
        "--species",
        metavar="NAME|FILE.yaml",
        help="predictions only: species notes, as for export (default: the notes that know the most labels)",
    )
    season.add_argument(
        "--event-gap",
        type=_non_negative_float,
        default=DEFAULT_GAP_MINUTES,
        metavar="MINUTES",
        help=f"a taxon's observations this far apart start a new event (default: {DEFAULT_GAP_MINUTES:g})",
    )
    season.add_argument(
        "--min-events",
        type=_positive_int,
        default=MIN_EVENTS,
        metavar="N",
        help=f"events a taxon needs for an activity curve and overlaps (default: {MIN_EVENTS})",
    )
    season.add_argument(
        "--bootstrap",
        type=_positive_int,
        default=BOOTSTRAP_SAMPLES,
        metavar="N",
        help=f"bootstrap samples for each overlap's 95%% interval (default: {BOOTSTRAP_SAMPLES})",
    )
    season.add_argument(
        "--map-species",
        metavar="NAME",
        help="the taxon whose events size the map's points (default: the most seen)",
    )
    season.set_defaults(run=run_season)


def run_season(args: argparse.Namespace) -> int:
    from classifier.results.season import analyse
    from classifier.results.season_files import SeasonOutputError, write_season
    from classifier.results.season_input import SeasonError, load_season

    started = time.perf_counter()
    try:
        data = load_season(args.input, deployments=args.deployments, species=args.species)
        season = analyse(
            data, gap_minutes=args.event_gap, min_events=args.min_events, bootstrap=args.bootstrap
        )
        written = write_season(season, args.out, map_taxon=args.map_species)
    except (SeasonError, SeasonOutputError) as exc:
        raise CommandError(str(exc)) from None
    for warning in season.warnings:
        print(f"Warning: {warning}", file=sys.stderr)
    problems = data.problems
    for problem in problems[:10]:
        print(f"Problem: {problem}", file=sys.stderr)
    if len(problems) > 10:
        print(
            f"... and {len(problems) - 10} more problems, all in {Path(args.out) / 'problems.txt'}",
            file=sys.stderr,
        )
    days = sum(s.camera_days for s in data.sites)
    print(
        f"{len(data.sites)} deployments, {days:.1f} camera-days, {len(season.events)} events of "
        f"{len(season.taxa)} taxa (gap {args.event_gap:g} min): {len(written)} files written to {args.out} "
        f"in {time.perf_counter() - started:.1f} s.",
        file=sys.stderr,
    )
    return 0


# ------------------------------------------------------------------------------------------------ models


def run_models(args: argparse.Namespace) -> int:
    from classifier.models.precision import choices
    from classifier.models.runtimes import default_runtime

    roots = args.models_dir or [MODELS_DIR]
    bundles = find_bundles(*roots)
    if not bundles:
        print(
            f"No model bundles in {', '.join(map(str, roots))}; train one with `python -m train`.",
            file=sys.stderr,
        )
        return 0
    print(format_table(bundles))
    runtime = default_runtime()
    lines = [f"  {b.name} {choice.line}" for b in bundles if b.ok for choice in choices(b, runtime)]
    if lines:
        print("\n".join([f"\n--precision auto here (runtime {runtime}):", *lines]))
    return 0


def format_table(bundles: list[Bundle]) -> str:
    rows = [("name", "classes", "accuracy", "title")]
    for b in bundles:
        if b.error:
            rows.append((b.name, "-", "-", f"BROKEN: {b.error}"))
        else:
            accuracy = "-" if b.accuracy is None else f"{b.accuracy:.3f}"
            rows.append((b.name, str(len(b.classes)), accuracy, b.title))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip() for r in rows
    )


# ----------------------------------------------------------------------------------------------- compile


def run_compile(args: argparse.Namespace) -> int:
    from classifier.models.detect import DetectorUnavailable, detector_for
    from classifier.models.precision import AUTO
    from classifier.models.runtimes import FP32, compile_bundle, default_runtime

    runtime = args.runtime or default_runtime(app=args.app)
    # auto compiles the fp32 file (bf16 is a setting OpenVINO compiles that file with), then measures
    # bf16 against it where bf16 could be chosen.
    stored = FP32 if args.precision == AUTO else args.precision
    roots = args.models_dir or [MODELS_DIR]
    bundles = [_bundle(args)] if args.model else [b for b in find_bundles(*roots) if b.ok]
    for bundle in bundles:
        started = time.perf_counter()
        path = compile_bundle(bundle, force=args.force, runtime=runtime, precision=stored)
        print(f"{bundle.name}: {path} ({time.perf_counter() - started:.1f} s)", file=sys.stderr)
        if not args.no_detector:
            started = time.perf_counter()
            try:
                detector = detector_for(bundle, runtime, stored)
            except DetectorUnavailable as exc:
                print(f"{bundle.name}: its detector is not compiled: {exc}", file=sys.stderr)
            else:
                if detector is not None:
                    print(
                        f"{bundle.name}: detector for {runtime} {stored} ({time.perf_counter() - started:.1f} s)",
                        file=sys.stderr,
                    )
        if args.precision == AUTO or args.ship_agreement:
            _choose_precision(bundle, runtime, again=args.force, ship_it=args.ship_agreement)
    return 0


def _choose_precision(bundle: Bundle, runtime: str, *, again: bool, ship_it: bool) -> None:
    """compile's part of --precision auto: measure bf16 against fp32 on the bundle's held-out photos where
    bf16 could be chosen and nothing is measured here yet (or `again`), then print each network's choice."""
    from classifier.models.agreement import measure
    from classifier.models.precision import can_run_bf16, choices, measured_here, ship

    if ship_it and not can_run_bf16(runtime):
        raise CommandError(
            "--ship-agreement measures bf16, which needs --runtime openvino on a CPU with native bfloat16 "
            "(AVX512-BF16 or AMX instructions)."
        )
    if can_run_bf16(runtime) and (again or ship_it or not measured_here(bundle, runtime)):
        started = time.perf_counter()
        measured = measure(bundle, runtime)
        if ship_it and not measured:
            raise CommandError(
                f"{bundle.name}: its held-out photos are not on this disk, so nothing to ship."
            )
        print(
            f"{bundle.name}: bf16 against fp32 on its held-out photos: "
            + (
                " and ".join(f"the {a.network}'s measured" for a in measured)
                or "nothing measured (they are not on this disk, or OpenVINO ran bf16 as fp32)"
            )
            + f" ({time.perf_counter() - started:.1f} s)",
            file=sys.stderr,
        )
        if ship_it:
            print(f"{bundle.name}: figures written to {ship(bundle, measured)}", file=sys.stderr)
    for choice in choices(bundle, runtime):
        print(f"{bundle.name}: --precision auto: {choice.line}", file=sys.stderr)


# ------------------------------------------------------------------------------------------------ helpers


def _place(args: argparse.Namespace) -> str | None:
    """The alpha-3 country the user gave, as --country or as --lat/--lon; None for none."""
    from classifier.knowledge.geography import GeographyError, country_at

    if (args.lat is None) != (args.lon is None):
        raise CommandError("--lat and --lon go together; give both, or --country.")
    if args.country or args.lat is None:
        return args.country
    try:
        found = country_at(args.lat, args.lon)
    except GeographyError as exc:
        raise CommandError(str(exc)) from None
    if found is None:
        raise CommandError(f"no country at {args.lat}, {args.lon} (at sea?); give --country instead.")
    return found


def _species_book(bundle: Bundle, required: bool) -> SpeciesBook | None:
    """The bundle's species notes for the rules; a place needs them (ranges), rollup alone does not."""
    from classifier.knowledge.species import SpeciesInfoError
    from classifier.models.bundles import bundle_species_book

    try:
        book = bundle_species_book(bundle)
    except SpeciesInfoError as exc:
        if required:
            raise CommandError(f"{exc} (the place rules need the species notes' ranges)") from None
        print(f"Warning: species notes unusable, answers are not rolled up: {exc}", file=sys.stderr)
        return None
    if book is None and required:
        raise CommandError(f"no species notes for {bundle.name!r}, so no ranges to check the place against.")
    return book


def _bundle(args: argparse.Namespace) -> Bundle:
    model = args.model
    if model and Path(model).is_file() and Path(model).name == "model.pkl":
        model = str(Path(model).parent)
    return resolve_bundle(model, *(args.models_dir or [MODELS_DIR]))


def _number(text: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a {'whole number' if kind is int else 'number'}: {text!r}"
        ) from None


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = _number(text, float)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more: {text}")
    return value


def _country(text: str) -> str:
    from classifier.knowledge.geography import GeographyError, parse_country

    try:
        return parse_country(text)
    except GeographyError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _latitude(text: str) -> float:
    value = _number(text, float)
    if not -90.0 <= value <= 90.0:
        raise argparse.ArgumentTypeError(f"a latitude is between -90 and 90, not {text}")
    return value


def _longitude(text: str) -> float:
    value = _number(text, float)
    if not -180.0 <= value <= 180.0:
        raise argparse.ArgumentTypeError(f"a longitude is between -180 and 180, not {text}")
    return value


def _probability(text: str) -> float:
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text}")
    return value
