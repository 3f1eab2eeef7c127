"""What a season's analysis reads: where and when each camera ran, and what it saw, from a Camtrap DP package
or from a predictions file (through the Camtrap DP export's own tables, so both give the same figures).

    data = load_season("season1.zip")                                   # a package: folder, zip or json
    data = load_season("labels.csv", deployments="deployments.csv")     # what predict or the app wrote

Without a deployments CSV, each folder and camera of the photos is a deployment without a position: the
figures that need none (events, camera-days, RAI, activity on clock time, accumulation) are still made.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from classifier.intake.camtrap_dp_package import CamtrapDPError, CamtrapPackage, read_camtrap_dp
from classifier.intake.camtrap_dp_schema import TABLES, Problem, field_names, parse_table
from classifier.results.camtrap_dp import camtrap_dp_content
from classifier.results.deployments import Deployment, folder_deployments, read_deployments
from classifier.results.taxa import Taxon, load_taxa
from classifier.schema.predictions_file import ExportError, read_predictions
from classifier.schema.rows import Row, labels_of


class SeasonError(ValueError):
    """An input the season cannot be computed from; `str()` is one line saying what to give instead."""


@dataclass(frozen=True)
class Site:
    """A deployment: one camera at one place for one period (start and end with their time zone)."""

    deployment_id: str
    latitude: float | None
    longitude: float | None
    start: datetime
    end: datetime
    name: str = ""

    @property
    def camera_days(self) -> float:
        """camtraptor's get_effort(unit = "day"): (deploymentEnd - deploymentStart) in days of 24 h."""
        return (self.end - self.start).total_seconds() / 86400


@dataclass(frozen=True)
class Sighting:
    """One observation as the season reads it: media-level (a photo) or event-level (a sequence)."""

    deployment_id: str
    time: datetime  # eventStart, with its time zone
    kind: str  # observationType: animal, human, vehicle, blank, unknown, unclassified
    taxon: str  # scientificName; "" when none
    event_id: str = ""


@dataclass
class SeasonData:
    source: str
    sites: list[Site]
    sightings: list[Sighting]
    level: str  # "event" when the package gives event-level observations (used alone), else "media"
    ranks: dict[str, str] = field(default_factory=dict)  # scientificName -> taxonRank, from `taxonomic`
    common_names: dict[str, str] = field(default_factory=dict)  # scientificName -> English name
    warnings: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # the package's, against the standard's schemas


def load_season(
    source: str | Path, *, deployments: str | Path | None = None, species: str | Path | None = None
) -> SeasonData:
    """A Camtrap DP package (folder, datapackage.json or zip), or a predictions CSV/JSON with the optional
    deployments CSV and species notes the export takes; `SeasonError` (one line) when neither."""
    path = Path(source)
    try:
        if _is_package(path):
            if deployments is not None or species is not None:
                raise SeasonError(
                    "--deployments and --species are for a predictions file; a Camtrap DP package has its own."
                )
            return from_package(read_camtrap_dp(path))
        records = read_predictions(path).records
        groups = read_deployments(deployments) if deployments else None
        labels = labels_of(records)
        taxa, _notes = load_taxa(labels, species)
        return from_records(records, groups, taxa, source=str(path))
    except (CamtrapDPError, ExportError) as exc:
        raise SeasonError(str(exc)) from None


def _is_package(path: Path) -> bool:
    if path.is_dir() or path.suffix.lower() == ".zip":
        return True
    if path.suffix.lower() == ".json" and path.is_file():
        try:
            head = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return False  # the predictions reader says what is wrong with it
        return isinstance(head, dict) and "resources" in head
    return False


def from_records(
    records: Sequence[Row],
    deployments: Sequence[Deployment] | None,
    taxa: dict[str, Taxon] | None = None,
    *,
    source: str = "predictions",
) -> SeasonData:
    """The season of predictions rows: their Camtrap DP tables, as `export --format camtrap-dp` makes them."""
    if not records:
        raise SeasonError(f"{source}: has no rows.")
    content = camtrap_dp_content(records, deployments or folder_deployments(records), taxa=taxa)
    tables = {}
    for name in TABLES:
        columns = field_names(name)
        rows = [(n, {c: "" if row.get(c) is None else str(row.get(c)) for c in columns}) for n, row in
                enumerate(content.tables[name], start=2)]  # fmt: skip
        tables[name] = parse_table(name, columns, rows)[0]
    package = CamtrapPackage(
        source=source,
        descriptor=content.descriptor,
        version="",
        deployments=tables["deployments"].rows,
        media=tables["media"].rows,
        observations=tables["observations"].rows,
    )
    data = from_package(package)
    data.warnings = content.warnings + data.warnings
    if not deployments:
        data.warnings.insert(
            0,
            f"no deployments CSV: each of the {len(data.sites)} folder/camera groups is a deployment without "
            "a position (no map, clock time instead of sun time); give --deployments for them.",
        )
    return data


def from_package(package: CamtrapPackage) -> SeasonData:
    """The season of a Camtrap DP package; rows it cannot use are left out and counted in a warning."""
    warnings: list[str] = []
    photos: dict[str, list[datetime]] = {}
    for media in package.media:
        if media["deploymentID"] and media["timestamp"]:
            photos.setdefault(media["deploymentID"], []).append(media["timestamp"])
    sites, derived, unusable = [], [], []
    for row in package.deployments:
        ident = row["deploymentID"]
        if not ident or any(s.deployment_id == ident for s in sites):  # a repeated ID is a listed problem
            continue
        times = photos.get(ident, [])
        start = row["deploymentStart"] or (min(times) if times else None)
        end = row["deploymentEnd"] or (max(times) if times else None)
        if row["deploymentStart"] is None or row["deploymentEnd"] is None:
            derived.append(ident)
        if start is None or end is None or end < start:
            unusable.append(ident)
            continue
        sites.append(Site(ident, row["latitude"], row["longitude"], start, end, row["locationName"] or ""))
    if derived:
        warnings.append(
            f"{len(derived)} deployments ({_some(derived)}) have no deploymentStart/deploymentEnd: their "
            "camera-days run from their first to their last photo."
        )
    if unusable:
        warnings.append(
            f"{len(unusable)} deployments ({_some(unusable)}) have no usable start and end: left out."
        )
    if not sites:
        raise SeasonError(
            f"{package.source}: no deployment has a start and an end (or photos to take them from)."
        )
    known = {s.deployment_id for s in sites}
    level = "event" if any(o["observationLevel"] == "event" for o in package.observations) else "media"
    sightings, skipped = [], 0
    for o in package.observations:
        if o["observationLevel"] not in (level, None):
            continue
        if o["deploymentID"] not in known or o["eventStart"] is None or o["observationType"] is None:
            skipped += 1
            continue
        sightings.append(
            Sighting(o["deploymentID"], o["eventStart"], o["observationType"], o["scientificName"] or "",
                     o["eventID"] or "")
        )  # fmt: skip
    if skipped:
        warnings.append(
            f"{skipped} observations have no usable deploymentID, eventStart or observationType: left out."
        )
    taxa = package.taxa
    return SeasonData(
        source=package.source,
        sites=sites,
        sightings=sightings,
        level=level,
        ranks={name: str(e.get("taxonRank") or "") for name, e in taxa.items()},
        common_names={
            name: e["vernacularNames"]["eng"]
            for name, e in taxa.items()
            if isinstance(e.get("vernacularNames"), dict) and isinstance(e["vernacularNames"].get("eng"), str)
        },
        warnings=warnings,
        problems=package.problems,
    )


def _some(names: Sequence[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
