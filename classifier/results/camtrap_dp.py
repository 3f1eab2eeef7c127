"""Camtrap DP 1.0.2 packages of `Row`s (`write_camtrap_dp`), and the `--metadata` merged over their
datapackage.json (`read_metadata`).

    write_camtrap_dp(records, "package.zip", deployments=read_deployments("deployments.csv"))

Camtrap DP 1.0.2: a zip with `datapackage.json`, `deployments.csv`, `media.csv` and `observations.csv`,
every column of the standard's table schemas (`classifier/intake/camtrap_dp_schemas/`) in their order.
Observations are media-level (one per detector box, or one per photo for a whole-frame answer); a photo's
`sequence_id` becomes the observation's `eventID`. Deployments come from a small CSV (`read_deployments`);
photos are matched to them by folder (and camera). `camtrap_dp_content` builds the same tables in memory
(the season's analysis reads predictions through it, `classifier.results.season_input`).
"""

from __future__ import annotations

import csv
import io
import json
import mimetypes
import os
import posixpath
import re
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from hashlib import sha1
from pathlib import Path, PurePosixPath
from typing import Any

from classifier.intake.camtrap_dp_schema import VERSION, field_names
from classifier.intake.images import one_line
from classifier.results.deployments import DEPLOYMENT_COLUMNS, Deployment, _Matcher, _zone, deployment_groups
from classifier.results.megadetector import (
    CLASSIFIER_NAME,
    _clamped,
    _classifier_name,
    _md_category,
    _reviewed_label,
)
from classifier.results.output import ExportResult, atomic_output
from classifier.results.taxa import Taxon, label_taxon, taxonomic_entry
from classifier.schema.predictions_file import BadValue, ExportError
from classifier.schema.rows import ERROR, UNCERTAIN, Row

CAMTRAP_DP_VERSION = VERSION
CAMTRAP_DP_BASE = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{CAMTRAP_DP_VERSION}"
CAMTRAP_DP_PROFILE = f"{CAMTRAP_DP_BASE}/camtrap-dp-profile.json"
# Every field of the table schemas, in the schemas' order (a CSV must carry them all).
DEPLOYMENT_FIELDS = field_names("deployments")
MEDIA_FIELDS = field_names("media")
OBSERVATION_FIELDS = field_names("observations")
SAMPLING_DESIGNS = (
    "simpleRandom", "systematicRandom", "clusteredRandom", "experimental", "targeted", "opportunistic",
)  # fmt: skip
_MEDIA_TYPES = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".jpe": "image/jpeg", ".jfif": "image/jpeg",
    ".png": "image/png", ".webp": "image/webp", ".gif": "image/gif", ".bmp": "image/bmp",
    ".tif": "image/tiff", ".tiff": "image/tiff",
}  # fmt: skip


# ------------------------------------------------------------------------------------------- Camtrap DP


@dataclass
class PackageContent:
    """A package's datapackage.json and its three tables (rows of text by field), and what was left out."""

    descriptor: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]]
    warnings: list[str] = field(default_factory=list)


def write_camtrap_dp(
    records: Sequence[Row],
    out: str | Path,
    *,
    deployments: Sequence[Deployment] | None,
    taxa: dict[str, Taxon] | None = None,
    metadata: dict[str, Any] | None = None,
    classified_at: datetime | None = None,
    created: datetime | None = None,
    capture_method: str = "activityDetection",
    classifier: str | None = None,
) -> ExportResult:
    """Write a Camtrap DP 1.0.2 zip (`datapackage.json` + three CSVs) to `out`.

    `deployments=None` groups the photos by folder and camera and refuses, naming the groups, since a
    package needs each deployment's coordinates. `metadata` is merged over the generated
    `datapackage.json` (title, contributors, project, licenses, ...; `project` is merged key by key).
    `classified_at` is the time of the machine's classification when a row has none (the CLI passes
    the predictions file's mtime); `classifier` names the model in `classifiedBy` (default: the rows'
    `classified_by`, else "wildlife-classifier": predictions files do not name their model). A photo
    without an EXIF time gets its file's modification time when the file is here (a warning counts them);
    one with neither cannot be a Camtrap DP media row: it is left out and counted in a warning.
    """
    if not deployments:
        groups = deployment_groups(records)
        shown = "; ".join(f"{f}" + (f" (camera {c})" if c else "") for f, c, _ in groups[:3])
        more = f" and {len(groups) - 3} more" if len(groups) > 3 else ""
        raise ExportError(
            f"Camtrap DP needs each deployment's coordinates: the photos come from {len(groups)} "
            f"folder/camera groups ({shown}{more}); give --deployments FILE.csv with columns "
            f"{', '.join(DEPLOYMENT_COLUMNS)}[,camera,locationName,timezone,...], one row per group."
        )
    unplaced = [d.deployment_id for d in deployments if d.latitude is None or d.longitude is None]
    if unplaced:  # a deployments CSV always has them; only the season's folder groups lack them
        raise ValueError(f"deployments without a position cannot be written: {unplaced}")
    content = camtrap_dp_content(
        records,
        deployments,
        taxa=taxa,
        classified_at=classified_at,
        created=created,
        capture_method=capture_method,
        classifier=classifier,
    )
    package = _merge(content.descriptor, metadata) if metadata else content.descriptor
    with atomic_output(out, binary=True) as stream, zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("datapackage.json", json.dumps(package, indent=2, ensure_ascii=False) + "\n")
        for name, rows in content.tables.items():
            zf.writestr(f"{name}.csv", _csv_table(field_names(name), rows))
    result = ExportResult(out=str(out), warnings=content.warnings)
    result.images, result.observations = len(content.tables["media"]), len(content.tables["observations"])
    return result


def camtrap_dp_content(
    records: Sequence[Row],
    deployments: Sequence[Deployment],
    *,
    taxa: dict[str, Taxon] | None = None,
    classified_at: datetime | None = None,
    created: datetime | None = None,
    capture_method: str = "activityDetection",
    classifier: str | None = None,
) -> PackageContent:
    """The package `write_camtrap_dp` writes, in memory (a deployment without a position has empty
    coordinates here: the season's analysis works without them, a written package refuses them)."""
    taxa = taxa or {}
    warnings: list[str] = []
    match = _Matcher(deployments)
    try:
        zones = {d.deployment_id: _zone(d.timezone) if d.timezone else None for d in deployments}
    except BadValue as exc:
        raise ExportError(f"deployments: {exc}") from None
    classified_at = classified_at or datetime.now(UTC)
    by_deployment: dict[str, list[datetime]] = defaultdict(list)
    media_rows: list[dict[str, Any]] = []
    observation_rows: list[dict[str, Any]] = []
    unmatched: list[str] = []
    untimed: list[str] = []
    no_zone: set[str] = set()
    names = _Names(taxa)
    seen_ids: dict[str, str] = {}
    duplicates = from_file = 0
    classifier = classifier or _classifier_name(records)
    for record in records:
        deployment = match(record)
        if deployment is None:
            unmatched.append(record.path)
            continue
        when = record.datetime
        if when is None:
            when = _file_time(record.path)  # what predict's sequences use too
            if when is None:
                untimed.append(record.path)
                continue
            from_file += 1
        if when.tzinfo is None:
            zone = zones[deployment.deployment_id]
            if zone is None:
                no_zone.add(deployment.deployment_id)
                zone = UTC
            when = when.replace(tzinfo=zone)
        media_id = sha1(record.path.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        if media_id in seen_ids:
            duplicates += 1
            continue
        seen_ids[media_id] = record.path
        by_deployment[deployment.deployment_id].append(when)
        media_rows.append(_media_row(record, media_id, deployment, when, capture_method))
        observation_rows += _observation_rows(
            record, media_id, deployment, when, names, classifier, classified_at
        )
    if unmatched:
        raise ExportError(
            f"{len(unmatched)} photos match no deployment in --deployments (first: {unmatched[0]}); "
            "add a row whose folder (and camera) covers them."
        )
    if not media_rows:
        raise ExportError(
            f"no photo can go in the package: none of the {len(records)} rows has a date and time "
            "(Camtrap DP requires each photo's timestamp)."
        )
    deployment_rows, starts, ends = [], [], []
    for deployment in deployments:
        times = by_deployment.get(deployment.deployment_id, [])
        zone = zones[deployment.deployment_id] or UTC
        start = _aware(deployment.start, zone) or (min(times) if times else None)
        end = _aware(deployment.end, zone) or (max(times) if times else None)
        if start is None or end is None:
            warnings.append(
                f"deployment {deployment.deployment_id!r} has no photos and no deploymentStart/End: left out."
            )
            continue
        outside = sum(1 for t in times if not start <= t <= end)
        if outside:
            warnings.append(
                f"deployment {deployment.deployment_id!r}: {outside} photos were taken outside its "
                "deploymentStart..deploymentEnd; check the camera clock or the dates."
            )
        starts.append(start)
        ends.append(end)
        deployment_rows.append(_deployment_row(deployment, start, end))
    if no_zone:
        warnings.append(
            f"{len(no_zone)} deployments ({', '.join(sorted(no_zone)[:3])}{', ...' if len(no_zone) > 3 else ''}) "
            "have no timezone: their camera clock times were written as UTC; add a timezone column "
            "(+03:00 or Africa/Dar_es_Salaam) to the deployments CSV."
        )
    derived = [d.deployment_id for d in deployments if d.start is None or d.end is None]
    if derived:
        warnings.append(
            f"{len(derived)} deployments have no deploymentStart/deploymentEnd: their first and last photo "
            "times were used; add the columns for the real setup and pickup times."
        )
    if from_file:
        warnings.append(
            f"{from_file} photos have no EXIF date: their file's modification time was used as the "
            "timestamp (it changes when files are copied; check it)."
        )
    if untimed:
        warnings.append(
            f"{len(untimed)} photos have no date and time (no EXIF date, no file here) and were left out "
            f"(first: {untimed[0]})."
        )
    if duplicates:
        warnings.append(f"{duplicates} rows repeat a photo already exported and were left out.")
    if names.unnamed:
        warnings.append(
            f"no scientific name in the species notes for {', '.join(sorted(names.unnamed))}: "
            "their observations have an empty scientificName."
        )
    used = {row["deploymentID"] for row in deployment_rows}
    media_rows = [m for m in media_rows if m["deploymentID"] in used]
    kept = {m["mediaID"] for m in media_rows}
    observation_rows = [o for o in observation_rows if o["mediaID"] in kept]
    root = _relative_file_paths(media_rows)
    descriptor = _datapackage(
        deployment_rows, observation_rows, starts, ends, names, records, created or datetime.now(UTC), root
    )
    tables = {"deployments": deployment_rows, "media": media_rows, "observations": observation_rows}
    return PackageContent(descriptor, tables, warnings)


class _Names:
    """The scientific name of each label (`label_taxon`), the names used with their rank and English
    name (for `taxonomic`), and the animal labels with no name (for a warning)."""

    def __init__(self, taxa: dict[str, Taxon]) -> None:
        self.taxa = taxa
        self.used: dict[str, tuple[str, str]] = {}
        self.unnamed: Counter[str] = Counter()
        self._cache: dict[tuple[str, str], str] = {}

    def __call__(self, label: str, rank: str) -> str:
        key = (label, rank)
        if key not in self._cache:
            name, found, common = label_taxon(label, rank, self.taxa)
            self._cache[key] = name
            if name:
                self.used.setdefault(name, (found, common))
        name = self._cache[key]
        if not name:
            self.unnamed[label] += 1
        return name

    def taxonomic(self, names: Iterable[str]) -> list[dict[str, Any]]:
        return [taxonomic_entry(n, *self.used.get(n, ("", "")), self.taxa) for n in sorted(names)]


def _file_time(path: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(os.stat(path).st_mtime, UTC) if os.path.isfile(path) else None
    except (OSError, ValueError, OverflowError):
        return None


def _aware(when: datetime | None, zone: tzinfo) -> datetime | None:
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=zone)


def _timestamp(when: datetime) -> str:
    text = when.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _media_type(path: str) -> str:
    suffix = PurePosixPath(path.split("?")[0]).suffix.lower()
    kind = _MEDIA_TYPES.get(suffix) or mimetypes.types_map.get(suffix, "")
    return kind if kind.startswith(("image/", "video/", "audio/")) else "image/jpeg"


def _media_row(
    record: Row, media_id: str, deployment: Deployment, when: datetime, capture_method: str
) -> dict[str, Any]:
    path = record.path.replace("\\", "/")
    return {
        "mediaID": media_id,
        "deploymentID": deployment.deployment_id,
        "captureMethod": capture_method,
        "timestamp": _timestamp(when),
        "filePath": path,
        "filePublic": "true" if path.lower().startswith(("http://", "https://")) else "false",
        "fileName": path.split("?")[0].rstrip("/").rpartition("/")[2],
        "fileMediatype": _media_type(path),
        "mediaComments": record.error if record.status == ERROR else "",
    }


def _observation_rows(
    record: Row,
    media_id: str,
    deployment: Deployment,
    when: datetime,
    names: _Names,
    classifier: str,
    classified_at: datetime,
) -> list[dict[str, Any]]:
    stamp = _timestamp(when)
    human = record.reviewed
    base = {
        "deploymentID": deployment.deployment_id,
        "mediaID": media_id,
        "eventID": record.sequence_id,
        "eventStart": stamp,
        "eventEnd": stamp,
        "observationLevel": "media",
        "classificationMethod": "human" if human else "machine",
        "classifiedBy": record.classified_by or ("" if human else classifier),
        "classificationTimestamp": _timestamp(_aware(record.classified_at, UTC) or classified_at),
    }

    def observation(n: int, kind: str, label: str, p: float | None, **extra: Any) -> dict[str, Any]:
        # The row's rank is its verdict's (a roll-up); a box with another label is named as that class.
        name = (
            names(label, record.rank if label == record.label else "") if kind == "animal" and label else ""
        )
        row = {**base, "observationID": f"{media_id}-{n}", "observationType": kind, "scientificName": name}
        if not human and p is not None and kind != "unclassified":
            row["classificationProbability"] = _decimal(p)
        return row | extra

    kind = record.kind()
    if kind == "unclassified" or record.whole_frame or not record.boxes:
        comments = record.error if record.status == ERROR else ""
        if kind == "unknown" and record.label and record.status == UNCERTAIN and not human:
            comments = f"best guess {record.label} ({record.confidence or 0:.2f}), under the threshold"
        count = record.count if record.count and kind in ("animal", "human", "vehicle") else None
        label = record.label if kind == "animal" else ""
        return [
            observation(
                1,
                kind,
                label,
                record.confidence,
                count="" if count is None else count,
                observationComments=comments,
            )
        ]
    rows = []
    for n, box in enumerate(record.boxes, start=1):
        box_kind = {"1": "animal", "2": "human", "3": "vehicle"}[_md_category(box)]
        label = _reviewed_label(record, box) or box.label or record.label
        x, y, w, h = _clamped(box.bbox)
        rows.append(
            observation(
                n,
                box_kind,
                label if box_kind == "animal" else "",
                box.confidence,
                count=1,
                bboxX=_decimal(x),
                bboxY=_decimal(y),
                bboxWidth=_decimal(w),
                bboxHeight=_decimal(h),
            )
        )
    return rows


def _decimal(value: float) -> str:
    """Up to 6 decimals, no trailing zeros (a 1e-6 box width stays above the schema's minimum)."""
    return f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"


def _deployment_row(deployment: Deployment, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "deploymentID": deployment.deployment_id,
        "locationID": deployment.location_id,
        "locationName": deployment.location_name,
        "latitude": _degrees(deployment.latitude),
        "longitude": _degrees(deployment.longitude),
        "coordinateUncertainty": deployment.coordinate_uncertainty or "",
        "deploymentStart": _timestamp(start),
        "deploymentEnd": _timestamp(end),
        "cameraModel": deployment.camera_model or deployment.camera,
        "deploymentComments": deployment.comments,
    }


def _degrees(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}".rstrip("0").rstrip(".")


def _relative_file_paths(media_rows: list[dict[str, Any]]) -> str | None:
    """Rewrite each local `filePath` relative to the photos' common folder, which is returned (None when
    every file is a URL): the standard takes a URL or a path inside the package, never '..' or '/'."""
    local = [m for m in media_rows if not _URL.match(m["filePath"])]
    if not local:
        return None
    parts = [_path_parts(m["filePath"]) for m in local]
    root = list(parts[0][:-1])
    for p in parts[1:]:
        n = 0
        while n < len(root) and n < len(p) - 1 and p[n] == root[n]:
            n += 1
        del root[n:]
    # A file or folder under the root whose name starts with '.' or '~' cannot lead a path: widen the root.
    while root and any(p[len(root)].startswith((".", "~")) for p in parts):
        root.pop()
    if any(p[len(root)].startswith((".", "~")) for p in parts):
        raise ExportError(
            f"photo {local[0]['filePath']!r}: its path leaves the folder predict ran in or starts with '.' or "
            "'~'; run predict on the photos' folder (by its full path) and export again."
        )
    for m, p in zip(local, parts, strict=True):
        m["filePath"] = "/".join(x for x in p[len(root) :] if x != "/")  # '/' leads an absolute path
    return "/".join(root).replace("//", "/", 1) if root else "."


_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def _path_parts(path: str) -> list[str]:
    """A path's parts after resolving '.' and '..' by name; an absolute path keeps '/' (or 'C:') first."""
    text = path.replace("\\", "/")
    drive = re.match(r"^[A-Za-z]:(?=/|$)", text)
    head = drive[0] if drive else ("/" if text.startswith("/") else "")
    parts = [
        p
        for p in posixpath.normpath("/" + text[len(head) :] if head else text).split("/")
        if p not in ("", ".")
    ]
    return [head, *parts] if head else parts


def _datapackage(
    deployment_rows: list[dict[str, Any]],
    observation_rows: list[dict[str, Any]],
    starts: list[datetime],
    ends: list[datetime],
    names: _Names,
    records: Sequence[Row],
    created: datetime,
    media_root: str | None,
) -> dict[str, Any]:
    placed = [d for d in deployment_rows if d["latitude"] and d["longitude"]]
    spatial: dict[str, Any] | None = None
    if placed:
        latitudes = [float(d["latitude"]) for d in placed]
        longitudes = [float(d["longitude"]) for d in placed]
        west, east, south, north = min(longitudes), max(longitudes), min(latitudes), max(latitudes)
        if (west, south) == (east, north):
            spatial = {"type": "Point", "coordinates": [west, south]}
        else:
            ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
            spatial = {"type": "Polygon", "bbox": [west, south, east, north], "coordinates": [ring]}
    reviewers = sorted({r.classified_by for r in records if r.reviewed and r.classified_by})
    contributors = [{"title": name, "role": "contributor"} for name in reviewers] or [
        {"title": f"{_classifier_name(records)} (automated classification)", "role": "contributor"}
    ]
    taxonomic = names.taxonomic({o["scientificName"] for o in observation_rows if o.get("scientificName")})
    resources = [
        {
            "name": name,
            "path": f"{name}.csv",
            "profile": "tabular-data-resource",
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "schema": f"{CAMTRAP_DP_BASE}/{name}-table-schema.json",
        }
        for name in ("deployments", "media", "observations")
    ]
    described = {}
    if media_root is not None:
        # Not a property of the standard (the Data Package spec allows more): where media.filePath starts.
        described = {
            "description": f"Media files are not in the package; media.filePath is relative to {media_root}, "
            "the folder the photos were in when they were labelled.",
            "mediaRoot": media_root,
        }
    return {
        "profile": CAMTRAP_DP_PROFILE,
        "name": "camera-trap-photos",
        "created": _timestamp(created.astimezone(UTC)),
        "title": "Camera-trap photos labelled with wildlife-classifier",
        **described,
        "contributors": contributors,
        "sources": [{"title": CLASSIFIER_NAME, "version": _version()}],
        "project": {
            "title": "Camera-trap photos labelled with wildlife-classifier",
            "samplingDesign": "opportunistic",
            "captureMethod": ["activityDetection"],
            "individualAnimals": False,
            "observationLevel": ["media"],
        },
        "spatial": spatial,
        "temporal": {
            "start": min(starts).date().isoformat() if starts else date.today().isoformat(),
            "end": max(ends).date().isoformat() if ends else date.today().isoformat(),
        },
        "taxonomic": taxonomic,
        "resources": resources,
    }


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("wildlife-classifier")
    except Exception:  # not installed as a package: the source tree's version
        return "0.1.0"


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if key == "project" and isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = {**base[key], **value}
        else:
            merged[key] = value
    return merged


def _csv_table(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_metadata(path: str | Path) -> dict[str, Any]:
    """A JSON object to merge over the generated datapackage.json (`--metadata`)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise ExportError(f"--metadata {path}: cannot be read ({exc.strerror or exc}).") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"--metadata {path}: not valid JSON ({one_line(str(exc))}).") from None
    if not isinstance(data, dict):
        raise ExportError(f"--metadata {path}: must be a JSON object (title, contributors, project, ...).")
    project = data.get("project")
    if isinstance(project, dict) and project.get("samplingDesign") not in (None, *SAMPLING_DESIGNS):
        raise ExportError(
            f"--metadata {path}: project.samplingDesign must be one of {', '.join(SAMPLING_DESIGNS)}."
        )
    return data
