"""Read a predictions file (CSV or JSON, reviewed or not) and export it to the field's formats.

    records = read_predictions("labels.csv").records
    write_csv(records, open("labels-reviewed.csv", "w", newline=""))
    results = megadetector_results(records)                       # MegaDetector batch output 1.6
    write_camtrap_dp(records, "package.zip", deployments=read_deployments("deployments.csv"))

The reader takes what `python -m classifier predict` or the app wrote, old files (the nine first columns
only: a whole-frame answer, no boxes) and new ones (`observation_type`, `count`, `detections`, `rank`,
`geofenced` and the review columns `classification_method`, `classified_by`, `classified_at`). A file from
another tool is refused with one line naming the columns it lacks; every value it cannot use is refused
with its line (CSV) or row (JSON) number. Problems are `ExportError`s: one line, for the user.

Whole-frame answers (no detector box) in a MegaDetector file: the format's `detections` are a detector's
boxes, and a box around the whole image would claim a detection nobody made. Such a photo is written with
an empty `detections` list (what the detector format can say: no box) and its frame-level answer as an
image-level `classifications` list ([[category id, confidence], ...], best first, the same shape as a
detection's). The validator and the spec allow the extra field; tools that only read boxes (Timelapse)
see such a photo as empty, so `megadetector_results` warns how many photos were written that way.

Camtrap DP 1.0: a zip with `datapackage.json`, `deployments.csv`, `media.csv` and `observations.csv`,
every column of the 1.0 table schemas in their order. Observations are media-level (one per detector box,
or one per photo for a whole-frame answer); a photo's `sequence_id` becomes the observation's `eventID`.
Deployments come from a small CSV (`read_deployments`); photos are matched to them by folder (and camera).
"""

from __future__ import annotations

import csv
import io
import json
import math
import mimetypes
import os
import re
import tempfile
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from hashlib import sha1
from pathlib import Path, PurePosixPath
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from classifier.results.rows import CSV_COLUMNS, ERROR, OK, SEQUENCE_LABEL, UNCERTAIN, Row

FORMATS = ("csv", "megadetector", "camtrap-dp")
REQUIRED_COLUMNS = ("path", "label", "confidence", "status")
SECOND_WAVE_COLUMNS = ("observation_type", "count", "detections", "rank", "geofenced")
REVIEW_COLUMNS = ("classification_method", "classified_by", "classified_at")
# What `write_csv` writes: today's columns, then the pipeline's and the review's (read back unchanged),
# each once: `CSV_COLUMNS` has come to hold the pipeline's and the review's too, and a header naming a
# column twice is read by pandas and spreadsheets as two columns (observation_type, observation_type.1).
EXPORT_COLUMNS = tuple(dict.fromkeys((*CSV_COLUMNS, SEQUENCE_LABEL, *SECOND_WAVE_COLUMNS, *REVIEW_COLUMNS)))
OBSERVATION_TYPES = ("animal", "human", "vehicle", "blank", "unknown")
# Labels the field uses for what is not an animal, and the observation type each one means.
NON_ANIMAL_LABELS = {
    "blank": "blank",
    "empty": "blank",
    "human": "human",
    "person": "human",
    "vehicle": "vehicle",
    "unknown": "unknown",
}
CLASSIFIER_NAME = "wildlife-classifier"

MD_FORMAT_VERSION = "1.6"
MD_DETECTION_CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}
_MD_CATEGORY = {"animal": "1", "human": "2", "person": "2", "vehicle": "3", "1": "1", "2": "2", "3": "3"}

CAMTRAP_DP_VERSION = "1.0"
CAMTRAP_DP_BASE = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{CAMTRAP_DP_VERSION}"
CAMTRAP_DP_PROFILE = f"{CAMTRAP_DP_BASE}/camtrap-dp-profile.json"
# Every field of the Camtrap DP 1.0 table schemas, in the schemas' order (a CSV must carry them all).
DEPLOYMENT_FIELDS = (
    "deploymentID", "locationID", "locationName", "latitude", "longitude", "coordinateUncertainty",
    "deploymentStart", "deploymentEnd", "setupBy", "cameraID", "cameraModel", "cameraDelay", "cameraHeight",
    "cameraDepth", "cameraTilt", "cameraHeading", "detectionDistance", "timestampIssues", "baitUse",
    "featureType", "habitat", "deploymentGroups", "deploymentTags", "deploymentComments",
)  # fmt: skip
MEDIA_FIELDS = (
    "mediaID", "deploymentID", "captureMethod", "timestamp", "filePath", "filePublic", "fileName",
    "fileMediatype", "exifData", "favorite", "mediaComments",
)  # fmt: skip
OBSERVATION_FIELDS = (
    "observationID", "deploymentID", "mediaID", "eventID", "eventStart", "eventEnd", "observationLevel",
    "observationType", "cameraSetupType", "scientificName", "count", "lifeStage", "sex", "behavior",
    "individualID", "individualPositionRadius", "individualPositionAngle", "individualSpeed", "bboxX", "bboxY",
    "bboxWidth", "bboxHeight", "classificationMethod", "classifiedBy", "classificationTimestamp",
    "classificationProbability", "observationTags", "observationComments",
)  # fmt: skip
# Columns of the --deployments CSV: the first four are required.
DEPLOYMENT_COLUMNS = ("deploymentID", "latitude", "longitude", "folder")
DEPLOYMENT_OPTIONAL_COLUMNS = (
    "camera", "locationName", "locationID", "timezone", "deploymentStart", "deploymentEnd",
    "coordinateUncertainty", "cameraModel", "deploymentComments",
)  # fmt: skip
SAMPLING_DESIGNS = (
    "simpleRandom", "systematicRandom", "clusteredRandom", "experimental", "targeted", "opportunistic",
)  # fmt: skip
_RANKS = ("species", "genus", "family", "order", "class")
_MEDIA_TYPES = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".jpe": "image/jpeg", ".jfif": "image/jpeg",
    ".png": "image/png", ".webp": "image/webp", ".gif": "image/gif", ".bmp": "image/bmp",
    ".tif": "image/tiff", ".tiff": "image/tiff",
}  # fmt: skip
_EPS = 1e-3  # how far a normalised box may stray outside [0, 1] (rounding) before it is refused


class ExportError(ValueError):
    """A predictions, deployments or species file that cannot be exported; `str()` is one line."""


@dataclass(frozen=True)
class Detection:
    """One box: `bbox` normalised [x, y, width, height] from the top left; `detector_conf` None when the
    "box" is a whole-frame answer written in the detections column (no detector ran)."""

    bbox: tuple[float, float, float, float]
    detector_conf: float | None
    label: str = ""
    confidence: float | None = None
    top_k: tuple[tuple[str, float], ...] = ()
    category: str = ""  # what the detector said (animal|person|vehicle), when the file says it

    def to_json(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "bbox": [round(v, 6) for v in self.bbox],
            "detector_conf": None if self.detector_conf is None else round(self.detector_conf, 6),
            "label": self.label,
            "confidence": None if self.confidence is None else round(self.confidence, 6),
            "top_k": [{"label": label, "confidence": round(p, 6)} for label, p in self.top_k],
        }
        if self.category:
            values["category"] = self.category
        return values


@dataclass
class Record:
    """One row of a predictions file, every column parsed; columns the file lacks are left empty."""

    path: str
    label: str = ""
    confidence: float | None = None
    status: str = ERROR
    error: str = ""
    top_k: tuple[tuple[str, float], ...] = ()
    datetime: datetime | None = None
    camera: str = ""
    sequence_id: str = ""
    sequence_label: str = ""
    observation_type: str = ""
    count: int | None = None
    detections: tuple[Detection, ...] | None = None  # None: the file has no boxes for this photo
    rank: str = ""
    geofenced: str = ""
    classification_method: str = ""  # machine | human; empty in unreviewed files (machine)
    classified_by: str = ""
    classified_at: datetime | None = None

    @property
    def boxes(self) -> tuple[Detection, ...]:
        """The detector's boxes (whole-frame pseudo-detections without `detector_conf` left out)."""
        return tuple(d for d in self.detections or () if d.detector_conf is not None)

    @property
    def whole_frame(self) -> bool:
        """True when no detector looked at this photo: the answer is the classifier's, for the frame."""
        return self.detections is None or any(d.detector_conf is None for d in self.detections)

    @property
    def reviewed(self) -> bool:
        return self.classification_method == "human"

    def kind(self) -> str:
        """Observation type: the file's, else from the label and status (old files).

        An error row is `unclassified`, unless a person labelled it (they looked at the file elsewhere).
        """
        if self.status == ERROR and not (self.reviewed and self.label):
            return "unclassified"
        if self.observation_type:
            return self.observation_type
        if self.label.casefold() in NON_ANIMAL_LABELS:
            return NON_ANIMAL_LABELS[self.label.casefold()]
        if not self.label:
            return "unclassified"
        return "unknown" if self.status == UNCERTAIN and not self.reviewed else "animal"

    def to_csv(self) -> dict[str, str]:
        return {
            "path": self.path,
            "label": self.label,
            "confidence": "" if self.confidence is None else f"{self.confidence:.4f}",
            "status": self.status,
            "error": self.error,
            "top_k": _top_k_text(self.top_k),
            "datetime": self.datetime.isoformat() if self.datetime else "",
            "camera": self.camera,
            "sequence_id": self.sequence_id,
            SEQUENCE_LABEL: self.sequence_label,
            "observation_type": self.observation_type,
            "count": "" if self.count is None else str(self.count),
            "detections": ""
            if self.detections is None
            else json.dumps([d.to_json() for d in self.detections], separators=(",", ":")),
            "rank": self.rank,
            "geofenced": self.geofenced,
            "classification_method": self.classification_method,
            "classified_by": self.classified_by,
            "classified_at": self.classified_at.isoformat() if self.classified_at else "",
        }


@dataclass
class Predictions:
    records: list[Record]
    columns: tuple[str, ...]  # the columns (CSV) or keys (JSON) the file has
    source: str = ""
    written: datetime | None = None  # when the file was last written (its mtime), in UTC


@dataclass
class ExportResult:
    out: str
    images: int = 0
    observations: int = 0
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ reading


def read_predictions(path: str | Path) -> Predictions:
    """Read a predictions CSV or JSON (chosen by content); raises a one-line `ExportError`."""
    path = Path(path)
    name = path.name
    try:
        raw = path.read_bytes()
        written = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except IsADirectoryError:
        raise ExportError(f"{path}: is a folder; name the .csv or .json that predict wrote.") from None
    except OSError as exc:
        raise ExportError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__}).") from None
    predictions = parse_predictions(raw, name=name)
    predictions.source, predictions.written = str(path), written
    return predictions


def parse_predictions(data: bytes | str, *, name: str = "predictions") -> Predictions:
    """Parse the text of a predictions file: JSON when it starts with '[' or '{', else CSV."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ExportError(
                f"{name}: is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}); "
                "name the .csv or .json that predict wrote."
            ) from None
    else:
        text = data.removeprefix("\ufeff")
    stripped = text.lstrip()
    if not stripped:
        raise ExportError(f"{name}: is empty.")
    if stripped[0] in "[{":
        return _parse_json(stripped, name)
    return _parse_csv(text, name)


def _parse_csv(text: str, name: str) -> Predictions:
    # A spreadsheet saved in a European locale writes ';' (or a tab) between the columns.
    first = text.split("\n", 1)[0]
    delimiter = next(
        (
            d
            for d in (",", ";", "\t")
            if set(REQUIRED_COLUMNS) <= {c.strip().strip('"') for c in first.split(d)}
        ),
        ",",
    )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as exc:
        raise ExportError(f"{name}: line 1: not CSV ({exc}).") from None
    _check_columns(header, name)
    index = {column: header.index(column) for column in EXPORT_COLUMNS if column in header}
    records = []
    try:
        for cells in reader:
            if not any(cells):
                continue  # a blank line (spreadsheets add them at the end)
            values = {column: cells[i] if i < len(cells) else "" for column, i in index.items()}
            try:
                records.append(_record(values, from_json=False))
            except _Bad as exc:
                raise ExportError(f"{name}: line {reader.line_num}: {exc}") from None
    except csv.Error as exc:
        raise ExportError(f"{name}: line {reader.line_num}: not valid CSV ({exc}).") from None
    return Predictions(records, tuple(header), name)


def _parse_json(text: str, name: str) -> Predictions:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportError(f"{name}: line {exc.lineno}: not valid JSON ({exc.msg}).") from None
    if isinstance(data, dict):  # {"rows": [...]} or {"predictions": [...]}
        data = next((data[k] for k in ("rows", "predictions") if isinstance(data.get(k), list)), data)
    if not isinstance(data, list):
        raise ExportError(f"{name}: not a predictions file: expected a JSON array of rows (one per photo).")
    keys: dict[str, None] = {}
    records = []
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise ExportError(f"{name}: row {number}: expected an object with {', '.join(REQUIRED_COLUMNS)}.")
        if number == 1:
            _check_columns(list(item), name)
        keys.update(dict.fromkeys(item))
        try:
            records.append(_record(item, from_json=True))
        except _Bad as exc:
            raise ExportError(f"{name}: row {number}: {exc}") from None
    return Predictions(records, tuple(keys), name)


def _check_columns(columns: Sequence[str], name: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        found = ", ".join(str(c) for c in list(columns)[:6]) + (", ..." if len(columns) > 6 else "")
        raise ExportError(
            f"{name}: not a predictions file of `python -m classifier predict` or the app: missing columns "
            f"{', '.join(missing)} (it has: {found or 'no columns'})."
        )


class _Bad(ValueError):
    """A value of one row that cannot be used; the caller adds the file and line."""


def _record(values: dict[str, Any], *, from_json: bool) -> Record:
    text = _json_text if from_json else _csv_text
    path = text(values, "path")
    if not path:
        raise _Bad("'path' is empty.")
    status = text(values, "status") or (ERROR if text(values, "error") else OK)
    if status not in (OK, UNCERTAIN, ERROR):
        raise _Bad(f"'status' must be ok, uncertain or error (got {_show(status)}).")
    kind = text(values, "observation_type")
    if kind and kind not in OBSERVATION_TYPES:
        raise _Bad(f"'observation_type' must be one of {', '.join(OBSERVATION_TYPES)} (got {_show(kind)}).")
    method = text(values, "classification_method")
    if method and method not in ("machine", "human"):
        raise _Bad(f"'classification_method' must be machine or human (got {_show(method)}).")
    rank = text(values, "rank")
    if rank and rank not in _RANKS:
        raise _Bad(f"'rank' must be one of {', '.join(_RANKS)} (got {_show(rank)}).")
    return Record(
        path=path,
        label=text(values, "label"),
        confidence=_probability(values.get("confidence"), "confidence"),
        status=status,
        error=text(values, "error"),
        top_k=_top_k(values.get("top_k"), "top_k"),
        datetime=_datetime(values.get("datetime"), "datetime"),
        camera=text(values, "camera"),
        sequence_id=text(values, "sequence_id"),
        sequence_label=text(values, SEQUENCE_LABEL),
        observation_type=kind,
        count=_count(values.get("count")),
        detections=_detections(values.get("detections")),
        rank=rank,
        geofenced=text(values, "geofenced"),
        classification_method=method,
        classified_by=text(values, "classified_by"),
        classified_at=_datetime(values.get("classified_at"), "classified_at"),
    )


def _csv_text(values: dict[str, Any], key: str) -> str:
    return values.get(key, "").strip()


def _json_text(values: dict[str, Any], key: str) -> str:
    value = values.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Bad(f"{key!r} must be text (got {_show(value)}).")
    return str(value).strip()


def _number(value: Any, key: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _Bad(f"{key!r} must be a number (got {_show(value)}).")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _Bad(f"{key!r} must be a number (got {_show(value)}).") from None
    if not math.isfinite(number):
        raise _Bad(f"{key!r} must be a finite number (got {_show(value)}).")
    return number


def _probability(value: Any, key: str) -> float | None:
    number = _number(value, key)
    if number is not None and not -_EPS <= number <= 1 + _EPS:
        raise _Bad(f"{key!r} must be between 0 and 1 (got {_show(value)}).")
    return None if number is None else min(max(number, 0.0), 1.0)


def _count(value: Any) -> int | None:
    number = _number(value, "count")
    if number is None:
        return None
    if number < 0 or number != int(number):
        raise _Bad(f"'count' must be a whole number, 0 or more (got {_show(value)}).")
    return int(number)


def _datetime(value: Any, key: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _Bad(f"{key!r} must be an ISO 8601 date and time (got {_show(value)}).")
    text = value.strip()
    try:
        return datetime.fromisoformat(text.replace(" ", "T", 1) if len(text) > 10 else text)
    except ValueError:
        raise _Bad(f"{key!r} must be an ISO 8601 date and time (got {_show(value)}).") from None


def _top_k(value: Any, key: str) -> tuple[tuple[str, float], ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):  # "label:p;label:p" (a label may contain ':'; the last one splits)
        pairs = []
        for part in value.split(";"):
            label, colon, p = part.rpartition(":")
            if not colon:
                raise _Bad(f"{key!r} must be 'label:p;label:p' (got {_show(value)}).")
            pairs.append((label, p))
    elif isinstance(value, list):
        pairs = []
        for item in value:
            if isinstance(item, dict):
                pairs.append((item.get("label"), item.get("confidence")))
            elif isinstance(item, list | tuple) and len(item) == 2:
                pairs.append((item[0], item[1]))
            else:
                raise _Bad(f"{key!r} items must be {{label, confidence}} (got {_show(item)}).")
    else:
        raise _Bad(f"{key!r} must be a list of {{label, confidence}} (got {_show(value)}).")
    result = []
    for label, p in pairs:
        if not isinstance(label, str) or not label:
            raise _Bad(f"{key!r} has an item without a label (got {_show(value)}).")
        probability = _probability(p, key)
        if probability is None:
            raise _Bad(f"{key!r} has a label without a confidence (got {_show(value)}).")
        result.append((label, probability))
    return tuple(result)


def _detections(value: Any) -> tuple[Detection, ...] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise _Bad(f"'detections' is not valid JSON ({exc.msg} at character {exc.pos}).") from None
    if not isinstance(value, list):
        raise _Bad(f"'detections' must be a JSON list of boxes (got {_show(value)}).")
    return tuple(_detection(item, i) for i, item in enumerate(value))


def _detection(item: Any, i: int) -> Detection:
    where = f"detections[{i}]"
    if not isinstance(item, dict):
        raise _Bad(f"'{where}' must be an object with bbox, detector_conf, label (got {_show(item)}).")
    bbox = item.get("bbox")
    if not isinstance(bbox, list | tuple) or len(bbox) != 4:
        raise _Bad(f"'{where}.bbox' must be [x, y, width, height] (got {_show(bbox)}).")
    x, y, w, h = (_number(v, f"{where}.bbox") for v in bbox)
    if None in (x, y, w, h):
        raise _Bad(f"'{where}.bbox' must be four numbers (got {_show(bbox)}).")
    if w <= 0 or h <= 0 or x < -_EPS or y < -_EPS or x + w > 1 + _EPS or y + h > 1 + _EPS:
        raise _Bad(
            f"'{where}.bbox' must be normalised [x, y, width, height] inside the image (got {_show(bbox)})."
        )
    label = item.get("label") or ""
    if not isinstance(label, str):
        raise _Bad(f"'{where}.label' must be text (got {_show(label)}).")
    category = item.get("category") or ""
    if category and str(category).casefold() not in _MD_CATEGORY:
        raise _Bad(f"'{where}.category' must be animal, person or vehicle (got {_show(category)}).")
    return Detection(
        bbox=(x, y, w, h),
        detector_conf=_probability(item.get("detector_conf"), f"{where}.detector_conf"),
        label=label,
        confidence=_probability(item.get("confidence"), f"{where}.confidence"),
        top_k=_top_k(item.get("top_k"), f"{where}.top_k"),
        category=str(category).casefold(),
    )


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict | list) else json.dumps(value)[:60]
    return text if len(text) <= 60 else text[:57] + "..."


def record_from_row(row: Row) -> Record:
    """A `Record` for a row predict made in memory (the app exports without writing a file first)."""
    detections = getattr(row, "detections", None)
    if detections is not None and not (
        isinstance(detections, tuple) and all(isinstance(d, Detection) for d in detections)
    ):
        # The pipeline's own boxes (classifier.results.rows.Detection) become this module's, as a file gives them.
        items = detections if isinstance(detections, list | str) else list(detections)
        if not isinstance(items, str):
            items = [d.to_json() if hasattr(d, "to_json") else d for d in items]
        detections = _detections(items)
    return Record(
        path=row.path,
        label=row.label,
        confidence=row.confidence,
        status=row.status,
        error=row.error,
        top_k=tuple(row.top_k),
        datetime=row.datetime,
        camera=row.camera,
        sequence_id=row.sequence_id,
        sequence_label=row.sequence_label,
        observation_type=getattr(row, "observation_type", "") or "",
        count=getattr(row, "count", None),
        detections=detections,
        rank=getattr(row, "rank", "") or "",
        geofenced=getattr(row, "geofenced", "") or "",
        classification_method=getattr(row, "classification_method", "") or "",
        classified_by=getattr(row, "classified_by", "") or "",
        classified_at=getattr(row, "classified_at", None),
    )


# ---------------------------------------------------------------------------------------------------- CSV


def write_csv(records: Iterable[Record], stream: IO[str]) -> int:
    """Today's columns plus the pipeline's and the review's (`EXPORT_COLUMNS`); returns the row count."""
    writer = csv.DictWriter(stream, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for record in records:
        writer.writerow(record.to_csv())
        count += 1
    return count


def _top_k_text(top_k: Iterable[tuple[str, float]]) -> str:
    return ";".join(f"{label}:{p:.4f}" for label, p in top_k)


# ------------------------------------------------------------------------------------------- MegaDetector


def megadetector_results(
    records: Sequence[Record],
    *,
    classifier: str | None = None,
    detector: str | None = None,
    completed: datetime | None = None,
    taxa: dict[str, Taxon] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """The MegaDetector batch output (format 1.6) for `records`, as a dict ready for `json.dump`.

    Error rows become `failure`s (with `detections: null`); a detector's empty list stays an empty
    `detections` (a blank photo); a whole-frame answer is an empty `detections` with an image-level
    `classifications` list (see the module's docstring). A human-reviewed row's label, at confidence 1.0,
    is the only classification of its frame, or of its animal boxes when they all had one label (a
    reviewer names the frame; with two species in it, each box keeps its own ranking).
    """
    warnings = warnings if warnings is not None else []
    categories: dict[str, str] = {}

    def category(label: str) -> str:
        if label not in categories:
            categories[label] = str(len(categories) + 1)
        return categories[label]

    def classifications(top_k: Sequence[tuple[str, float]]) -> list[list[Any]]:
        ranked = sorted(((label, p) for label, p in top_k if label), key=lambda item: -item[1])
        return [[category(label), round(float(p), 4)] for label, p in ranked]

    images = []
    whole_frame = 0
    for record in records:
        image: dict[str, Any] = {"file": record.path.replace("\\", "/")}
        if record.status == ERROR:
            image["failure"] = record.error or "could not be read"
            image["detections"] = None
            images.append(image)
            continue
        detections = []
        boxes = record.boxes
        for box in boxes:
            det: dict[str, Any] = {
                "category": _md_category(box),
                "conf": round(float(box.detector_conf), 4),
                "bbox": [round(v, 6) for v in _clamped(box.bbox)],  # 4 places would zero a tiny box
            }
            reviewed = _reviewed_label(record, box)
            if reviewed:
                det["classifications"] = classifications([(reviewed, 1.0)])
            elif box.top_k or box.label:
                det["classifications"] = classifications(box.top_k or [(box.label, box.confidence or 0.0)])
            if not det.get("classifications"):
                det.pop("classifications", None)
            detections.append(det)
        image["detections"] = detections
        if record.whole_frame:
            frame = _frame_answer(record)
            answer = [(record.label, 1.0)] if record.reviewed and record.label else frame
            if answer:
                image["classifications"] = classifications(answer)
                whole_frame += record.kind() != "blank"
        images.append(image)
    if whole_frame:
        warnings.append(
            f"{whole_frame} photos have a whole-frame answer and no detector box: written with empty "
            "'detections' and an image-level 'classifications' list, which tools that read only boxes "
            "(Timelapse) show as empty photos."
        )
    any_boxes = any(r.boxes for r in records)
    done = (completed or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    info: dict[str, Any] = {
        "format_version": MD_FORMAT_VERSION,
        "detector": detector or ("MegadetectorLite" if any_boxes else "none (whole-frame classifier)"),
    }
    if any_boxes:
        info["detection_completion_time"] = done
    info["classifier"] = classifier or _classifier_name(records)
    info["classification_completion_time"] = done
    results: dict[str, Any] = {
        "info": info,
        "detection_categories": dict(MD_DETECTION_CATEGORIES),
        "classification_categories": {cid: label for label, cid in categories.items()},
    }
    descriptions = (
        {cid: _md_description(taxa.get(label)) for label, cid in categories.items()} if taxa else {}
    )
    if any(descriptions.values()):
        results["classification_category_descriptions"] = descriptions
    results["images"] = images
    return results


def write_megadetector(results: dict[str, Any], stream: IO[str]) -> None:
    """`results` as JSON, one image a line (json's C encoder: 10,000 photos in about 0.1 s, not 1 s)."""
    head = json.dumps({k: v for k, v in results.items() if k != "images"}, indent=1, ensure_ascii=False)
    stream.write(head[:-2] + ',\n "images": [')
    for i, image in enumerate(results["images"]):
        stream.write(("\n  " if i == 0 else ",\n  ") + json.dumps(image, ensure_ascii=False))
    stream.write("\n ]\n}\n")


def _reviewed_label(record: Record, box: Detection) -> str:
    """The reviewer's label for an animal box ('' when the box keeps its own): see `megadetector_results`."""
    if not (record.reviewed and record.label) or _md_category(box) != "1":
        return ""
    labels = {d.label for d in record.boxes if _md_category(d) == "1"}
    return record.label if len(labels) <= 1 else ""


def _clamped(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    """A normalised box moved inside the image (rounding can push an edge a hair past it)."""
    x, y = min(max(bbox[0], 0.0), 1.0), min(max(bbox[1], 0.0), 1.0)
    return x, y, max(min(bbox[2], 1.0 - x), 1e-6), max(min(bbox[3], 1.0 - y), 1e-6)


def _md_category(detection: Detection) -> str:
    if detection.category:
        return _MD_CATEGORY[detection.category]
    kind = NON_ANIMAL_LABELS.get(detection.label.casefold(), "animal")
    return _MD_CATEGORY.get(kind, "1")


def _frame_answer(record: Record) -> list[tuple[str, float]]:
    """The whole-frame answer's ranking: the row's top-k, else its label (also when a pseudo-detection
    in the detections column carries it)."""
    if record.top_k:
        return list(record.top_k)
    pseudo = [d for d in record.detections or () if d.detector_conf is None]
    if pseudo and pseudo[0].top_k:
        return list(pseudo[0].top_k)
    if record.label:
        return [(record.label, record.confidence if record.confidence is not None else 0.0)]
    return []


def _md_description(taxon: Taxon | None) -> str:
    """A lower-case 'class;order;family;genus;species' string, the format's searchable taxonomy."""
    if taxon is None:
        return ""
    if taxon.taxonomy:
        names = [taxon.taxonomy.get(rank, "") for rank in reversed(_RANKS)]
        return ";".join(n.casefold() for n in names)
    return (taxon.scientific_name or "").casefold()


def _classifier_name(records: Sequence[Record]) -> str:
    names = Counter(r.classified_by for r in records if r.classified_by and not r.reviewed)
    return names.most_common(1)[0][0] if names else CLASSIFIER_NAME


# -------------------------------------------------------------------------------------- species taxonomy


@dataclass(frozen=True)
class Taxon:
    common_name: str = ""
    scientific_name: str = ""  # the notes' `scientific_name` (species: a binomial; groups: a higher taxon)
    taxonomy: dict[str, str] = field(default_factory=dict)  # class, order, family, genus, species

    def name_and_rank(self, rank: str = "") -> tuple[str, str]:
        """The scientific name to publish and its rank ('' when unknown).

        With `taxonomy`: the most specific rank it gives (or `rank`, when a row was rolled up to it);
        `species` may be the epithet ("quagga") or the binomial ("Equus quagga"). Without: the notes'
        `scientific_name`, rank unknown.
        """
        t = self.taxonomy
        if t:
            wanted = _RANKS[_RANKS.index(rank) :] if rank in _RANKS else _RANKS
            for level in wanted:
                name = t.get(level, "")
                if not name:
                    continue
                if level == "species" and " " not in name:
                    if not t.get("genus"):
                        continue
                    name = f"{t['genus']} {name}"
                return name, level
        return self.scientific_name, ""


def load_taxa(
    labels: Iterable[str], species: str | Path | None = None, *, root: str | Path | None = None
) -> tuple[dict[str, Taxon], str]:
    """Scientific names and taxonomy for `labels` from species notes, and the notes file used ('' if none).

    `species` is a notes file or a bundle name; by default every `root/*.yaml` is tried (root: the
    species_info folder, or WILDLIFE_SPECIES_DIR) and the one that knows the most labels is used. Only
    `common_name`, `scientific_name` and `taxonomy` are read, so notes of a newer layout still work.
    """
    root = Path(root or os.environ.get("WILDLIFE_SPECIES_DIR") or _species_dir())
    wanted = set(labels)
    if species is not None:
        text = str(species)
        path = Path(text) if text.endswith((".yaml", ".yml")) or os.sep in text else root / f"{text}.yaml"
        if not path.is_file():
            raise ExportError(f"species notes {text}: no such file ({path}).")
        return _read_taxa(path, strict=True), str(path)
    best: tuple[int, str, dict[str, Taxon]] = (0, "", {})
    for path in sorted(root.glob("*.yaml")) if root.is_dir() else ():
        taxa = _read_taxa(path, strict=False)
        known = len(wanted & taxa.keys())
        if known > best[0]:
            best = (known, str(path), taxa)
    return best[2], best[1]


def _species_dir() -> Path:
    from classifier.knowledge.species import SPECIES_DIR

    return SPECIES_DIR


def _read_taxa(path: Path, *, strict: bool) -> dict[str, Taxon]:
    try:
        # libyaml's loader when present: the serengeti notes load in 0.03 s instead of 0.3 s.
        data = yaml.load(
            path.read_text(encoding="utf-8-sig"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        if strict:
            raise ExportError(f"species notes {path}: cannot be read ({_one_line(str(exc))}).") from None
        return {}
    species = data.get("species") if isinstance(data, dict) else None
    if not isinstance(species, dict):
        if strict:
            raise ExportError(f"species notes {path}: no 'species' mapping of class name to entry.")
        return {}
    taxa = {}
    for key, entry in species.items():
        if not isinstance(key, str) or not isinstance(entry, dict):
            continue
        taxonomy = entry.get("taxonomy")
        taxonomy = (
            {
                k: str(v).strip()
                for k, v in taxonomy.items()
                if k in _RANKS and isinstance(v, str) and v.strip()
            }
            if isinstance(taxonomy, dict)
            else {}
        )
        taxa[key] = Taxon(
            common_name=_text_field(entry, "common_name"),
            scientific_name=_text_field(entry, "scientific_name"),
            taxonomy=taxonomy,
        )
    return taxa


def _text_field(entry: dict, key: str) -> str:
    value = entry.get(key)
    return value.strip() if isinstance(value, str) else ""


# ------------------------------------------------------------------------------------------- deployments


@dataclass
class Deployment:
    """One camera at one place for one period; photos belong to it by `folder` (and `camera`)."""

    deployment_id: str
    latitude: float
    longitude: float
    folder: str
    camera: str = ""  # EXIF make and model as predict writes it; empty: any camera in the folder
    location_name: str = ""
    location_id: str = ""
    timezone: str = ""  # "+03:00", "Z" or an IANA name ("Africa/Dar_es_Salaam"): the camera clock's zone
    start: datetime | None = None
    end: datetime | None = None
    coordinate_uncertainty: int | None = None
    camera_model: str = ""
    comments: str = ""


def read_deployments(path: str | Path) -> list[Deployment]:
    """Read the deployments CSV: deploymentID, latitude, longitude, folder (+ `DEPLOYMENT_OPTIONAL_COLUMNS`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExportError(f"--deployments {path}: cannot be read ({exc.strerror or exc}).") from None
    return parse_deployments(data, name=f"--deployments {path}")


def parse_deployments(data: bytes | str, *, name: str = "deployments") -> list[Deployment]:
    """The text of a deployments CSV (an upload, a table typed in the app); errors name `name`."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise ExportError(f"{name}: is not UTF-8 text.") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in DEPLOYMENT_COLUMNS if c not in header]
    if missing:
        raise ExportError(
            f"{name}: missing columns {', '.join(missing)} "
            f"(needed: {', '.join(DEPLOYMENT_COLUMNS)}; optional: {', '.join(DEPLOYMENT_OPTIONAL_COLUMNS)})."
        )
    reader.fieldnames = header
    deployments, seen = [], set()
    for raw in reader:
        values = {k: (v or "").strip() for k, v in raw.items() if k}
        if not any(values.values()):
            continue
        where = f"{name}: line {reader.line_num}"
        try:
            deployment = _deployment(values)
        except _Bad as exc:
            raise ExportError(f"{where}: {exc}") from None
        if deployment.deployment_id in seen:
            raise ExportError(f"{where}: deploymentID {deployment.deployment_id!r} is given twice.")
        seen.add(deployment.deployment_id)
        deployments.append(deployment)
    if not deployments:
        raise ExportError(f"{name}: has no deployments.")
    return deployments


def _deployment(values: dict[str, str]) -> Deployment:
    ident = values["deploymentID"]
    if not ident:
        raise _Bad("'deploymentID' is empty.")
    latitude, longitude = _number(values["latitude"], "latitude"), _number(values["longitude"], "longitude")
    if latitude is None or longitude is None:
        raise _Bad(f"deployment {ident!r} needs a latitude and a longitude (decimal degrees, WGS84).")
    if not -90 <= latitude <= 90 or not -180 <= longitude <= 180:
        raise _Bad(
            f"deployment {ident!r}: latitude must be -90..90 and longitude -180..180 (decimal degrees)."
        )
    if not values["folder"]:
        raise _Bad(f"deployment {ident!r}: 'folder' is empty (the folder its photos are in).")
    zone = values.get("timezone", "")
    if zone:
        _zone(zone)  # refused now rather than half-way through the export
    uncertainty = _number(values.get("coordinateUncertainty"), "coordinateUncertainty")
    if uncertainty is not None and (uncertainty < 1 or uncertainty != int(uncertainty)):
        raise _Bad("'coordinateUncertainty' must be a whole number of metres, 1 or more.")
    start = _datetime(values.get("deploymentStart"), "deploymentStart")
    end = _datetime(values.get("deploymentEnd"), "deploymentEnd")
    return Deployment(
        deployment_id=ident,
        latitude=latitude,
        longitude=longitude,
        folder=values["folder"],
        camera=values.get("camera", ""),
        location_name=values.get("locationName", ""),
        location_id=values.get("locationID", ""),
        timezone=zone,
        start=start,
        end=end,
        coordinate_uncertainty=None if uncertainty is None else int(uncertainty),
        camera_model=values.get("cameraModel", ""),
        comments=values.get("deploymentComments", ""),
    )


_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")


def _zone(text: str) -> tzinfo:
    if text.upper() in ("Z", "UTC"):
        return UTC
    match = _OFFSET.fullmatch(text)
    if match:
        sign = -1 if match[1] == "-" else 1
        return timezone(sign * timedelta(hours=int(match[2]), minutes=int(match[3])))
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise _Bad(
            f"'timezone' {text!r} is not a UTC offset (+03:00) or a time zone name (Africa/Nairobi)."
        ) from None


def _parts(path: str) -> tuple[str, ...]:
    text = path.replace("\\", "/")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    return (("/", *parts) if text.startswith("/") else tuple(parts)) or (".",)


class _Matcher:
    """Which deployment a photo belongs to: the longest `folder` that contains it (a relative folder may
    sit anywhere in the photo's path: 'siteA' matches '/media/card/siteA/IMG_1.JPG'), and among those the
    one naming the photo's camera before one that names none."""

    def __init__(self, deployments: Sequence[Deployment]) -> None:
        self.deployments = [(d, _parts(d.folder)) for d in deployments]
        self.cache: dict[tuple[str, str], Deployment | None] = {}

    def __call__(self, record: Record) -> Deployment | None:
        parent = record.path.replace("\\", "/").rpartition("/")[0] or "."
        key = (parent, record.camera)
        if key not in self.cache:
            self.cache[key] = self._match(_parts(parent), record.camera)
        return self.cache[key]

    def _match(self, parent: tuple[str, ...], camera: str) -> Deployment | None:
        best: list[tuple[tuple[int, int], Deployment]] = []
        for deployment, folder in self.deployments:
            if deployment.camera and deployment.camera.casefold() != camera.strip().casefold():
                continue
            if folder == (".",) or _contains(parent, folder):
                best.append(((len(folder) if folder != (".",) else 0, bool(deployment.camera)), deployment))
        if not best:
            return None
        best.sort(key=lambda item: item[0], reverse=True)
        if len(best) > 1 and best[0][0] == best[1][0]:
            a, b = best[0][1].deployment_id, best[1][1].deployment_id
            raise ExportError(
                f"--deployments: photos in {'/'.join(parent)} match both {a!r} and {b!r}; "
                "make their folder or camera columns tell them apart."
            )
        return best[0][1]


def _contains(parent: tuple[str, ...], folder: tuple[str, ...]) -> bool:
    n = len(folder)
    if folder[0] == "/":  # an absolute folder: a prefix of the photo's folder
        return parent[:n] == folder
    return any(parent[i : i + n] == folder for i in range(len(parent) - n + 1))


def deployment_groups(records: Iterable[Record]) -> list[tuple[str, str, int]]:
    """(folder, camera, photos) of the photos, in first-seen order: the deployments to describe."""
    groups: Counter[tuple[str, str]] = Counter()
    for record in records:
        groups[(record.path.replace("\\", "/").rpartition("/")[0] or ".", record.camera)] += 1
    return [(folder, camera, n) for (folder, camera), n in groups.items()]


# ------------------------------------------------------------------------------------------- Camtrap DP


def write_camtrap_dp(
    records: Sequence[Record],
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
    """Write a Camtrap DP 1.0 zip (`datapackage.json` + three CSVs) to `out`.

    `deployments=None` groups the photos by folder and camera and refuses, naming the groups, since a
    package needs each deployment's coordinates. `metadata` is merged over the generated
    `datapackage.json` (title, contributors, project, licenses, ...; `project` is merged key by key).
    `classified_at` is the time of the machine's classification when a row has none (the CLI passes
    the predictions file's mtime); `classifier` names the model in `classifiedBy` (default: the rows'
    `classified_by`, else "wildlife-classifier": predictions files do not name their model). A photo
    without an EXIF time gets its file's modification time when the file is here (a warning counts them);
    one with neither cannot be a Camtrap DP media row: it is left out and counted in a warning.
    """
    result = ExportResult(out=str(out))
    warn = result.warnings
    if not deployments:
        groups = deployment_groups(records)
        shown = "; ".join(f"{f}" + (f" (camera {c})" if c else "") for f, c, _ in groups[:3])
        more = f" and {len(groups) - 3} more" if len(groups) > 3 else ""
        raise ExportError(
            f"Camtrap DP needs each deployment's coordinates: the photos come from {len(groups)} "
            f"folder/camera groups ({shown}{more}); give --deployments FILE.csv with columns "
            f"{', '.join(DEPLOYMENT_COLUMNS)}[,camera,locationName,timezone,...], one row per group."
        )
    taxa = taxa or {}
    match = _Matcher(deployments)
    try:
        zones = {d.deployment_id: _zone(d.timezone) if d.timezone else None for d in deployments}
    except _Bad as exc:
        raise ExportError(f"deployments: {exc}") from None
    classified_at = classified_at or datetime.now(UTC)
    by_deployment: dict[str, list[datetime]] = defaultdict(list)
    media_rows: list[dict[str, Any]] = []
    observation_rows: list[dict[str, Any]] = []
    unmatched: list[str] = []
    untimed: list[str] = []
    no_zone: set[str] = set()
    unnamed: Counter[str] = Counter()
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
            record, media_id, deployment, when, taxa, classifier, classified_at, unnamed
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
            warn.append(
                f"deployment {deployment.deployment_id!r} has no photos and no deploymentStart/End: left out."
            )
            continue
        outside = sum(1 for t in times if not start <= t <= end)
        if outside:
            warn.append(
                f"deployment {deployment.deployment_id!r}: {outside} photos were taken outside its "
                "deploymentStart..deploymentEnd; check the camera clock or the dates."
            )
        starts.append(start)
        ends.append(end)
        deployment_rows.append(_deployment_row(deployment, start, end))
    if no_zone:
        warn.append(
            f"{len(no_zone)} deployments ({', '.join(sorted(no_zone)[:3])}{', ...' if len(no_zone) > 3 else ''}) "
            "have no timezone: their camera clock times were written as UTC; add a timezone column "
            "(+03:00 or Africa/Dar_es_Salaam) to the deployments CSV."
        )
    derived = [d.deployment_id for d in deployments if d.start is None or d.end is None]
    if derived:
        warn.append(
            f"{len(derived)} deployments have no deploymentStart/deploymentEnd: their first and last photo "
            "times were used; add the columns for the real setup and pickup times."
        )
    if from_file:
        warn.append(
            f"{from_file} photos have no EXIF date: their file's modification time was used as the "
            "timestamp (it changes when files are copied; check it)."
        )
    if untimed:
        warn.append(
            f"{len(untimed)} photos have no date and time (no EXIF date, no file here) and were left out "
            f"(first: {untimed[0]})."
        )
    if duplicates:
        warn.append(f"{duplicates} rows repeat a photo already exported and were left out.")
    if unnamed:
        warn.append(
            f"no scientific name in the species notes for {', '.join(sorted(unnamed))}: "
            "their observations have an empty scientificName."
        )
    used = {row["deploymentID"] for row in deployment_rows}
    media_rows = [m for m in media_rows if m["deploymentID"] in used]
    kept = {m["mediaID"] for m in media_rows}
    observation_rows = [o for o in observation_rows if o["mediaID"] in kept]
    package = _datapackage(
        deployment_rows, observation_rows, starts, ends, taxa, records, created or datetime.now(UTC)
    )
    if metadata:
        package = _merge(package, metadata)
    tables = {
        "deployments.csv": (DEPLOYMENT_FIELDS, deployment_rows),
        "media.csv": (MEDIA_FIELDS, media_rows),
        "observations.csv": (OBSERVATION_FIELDS, observation_rows),
    }
    with atomic_output(out, binary=True) as stream, zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("datapackage.json", json.dumps(package, indent=2, ensure_ascii=False) + "\n")
        for name, (columns, rows) in tables.items():
            zf.writestr(name, _csv_table(columns, rows))
    result.images, result.observations = len(media_rows), len(observation_rows)
    return result


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
    record: Record, media_id: str, deployment: Deployment, when: datetime, capture_method: str
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
    record: Record,
    media_id: str,
    deployment: Deployment,
    when: datetime,
    taxa: dict[str, Taxon],
    classifier: str,
    classified_at: datetime,
    unnamed: Counter[str],
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
        name = ""
        if kind == "animal" and label:
            taxon = taxa.get(label)
            name = taxon.name_and_rank(record.rank)[0] if taxon else ""
            if not name:
                unnamed[label] += 1
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
        "latitude": f"{deployment.latitude:.6f}".rstrip("0").rstrip("."),
        "longitude": f"{deployment.longitude:.6f}".rstrip("0").rstrip("."),
        "coordinateUncertainty": deployment.coordinate_uncertainty or "",
        "deploymentStart": _timestamp(start),
        "deploymentEnd": _timestamp(end),
        "cameraModel": deployment.camera_model or deployment.camera,
        "deploymentComments": deployment.comments,
    }


def _datapackage(
    deployment_rows: list[dict[str, Any]],
    observation_rows: list[dict[str, Any]],
    starts: list[datetime],
    ends: list[datetime],
    taxa: dict[str, Taxon],
    records: Sequence[Record],
    created: datetime,
) -> dict[str, Any]:
    latitudes = [float(d["latitude"]) for d in deployment_rows]
    longitudes = [float(d["longitude"]) for d in deployment_rows]
    west, east, south, north = min(longitudes), max(longitudes), min(latitudes), max(latitudes)
    if (west, south) == (east, north):
        spatial: dict[str, Any] = {"type": "Point", "coordinates": [west, south]}
    else:
        ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
        spatial = {"type": "Polygon", "bbox": [west, south, east, north], "coordinates": [ring]}
    reviewers = sorted({r.classified_by for r in records if r.reviewed and r.classified_by})
    contributors = [{"title": name, "role": "contributor"} for name in reviewers] or [
        {"title": f"{_classifier_name(records)} (automated classification)", "role": "contributor"}
    ]
    by_name: dict[str, dict[str, Any]] = {}
    for taxon in taxa.values():
        name, rank = taxon.name_and_rank()
        if not name or name in by_name:
            continue
        entry: dict[str, Any] = {"scientificName": name}
        if rank:
            entry["taxonRank"] = rank
        entry |= {
            level: taxon.taxonomy[level]
            for level in ("class", "order", "family", "genus")
            if level in taxon.taxonomy
        }
        if taxon.common_name:
            entry["vernacularNames"] = {"eng": taxon.common_name}
        by_name[name] = entry
    names = {o["scientificName"] for o in observation_rows if o.get("scientificName")}
    taxonomic = [by_name.get(name, {"scientificName": name}) for name in sorted(names)]
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
    return {
        "profile": CAMTRAP_DP_PROFILE,
        "name": "camera-trap-photos",
        "created": _timestamp(created.astimezone(UTC)),
        "title": "Camera-trap photos labelled with wildlife-classifier",
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
        raise ExportError(f"--metadata {path}: not valid JSON ({_one_line(str(exc))}).") from None
    if not isinstance(data, dict):
        raise ExportError(f"--metadata {path}: must be a JSON object (title, contributors, project, ...).")
    project = data.get("project")
    if isinstance(project, dict) and project.get("samplingDesign") not in (None, *SAMPLING_DESIGNS):
        raise ExportError(
            f"--metadata {path}: project.samplingDesign must be one of {', '.join(SAMPLING_DESIGNS)}."
        )
    return data


# --------------------------------------------------------------------------------------------- exporting


class atomic_output:
    """Write to a temporary file beside `out` and move it into place on success ('-': standard output)."""

    def __init__(self, out: str | Path, *, binary: bool = False) -> None:
        self.out, self.binary = str(out), binary
        self.temp: str | None = None

    def __enter__(self) -> IO[Any]:
        if self.out == "-":
            import sys

            self.stream = sys.stdout.buffer if self.binary else sys.stdout
            return self.stream
        target = Path(self.out)
        try:
            fd, self.temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
        except OSError as exc:
            raise ExportError(f"--out {self.out}: cannot be written ({exc.strerror or exc}).") from None
        self.stream = os.fdopen(fd, "wb") if self.binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
        return self.stream

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if self.temp is None:
            self.stream.flush()
            return
        self.stream.close()
        if kind is None:
            try:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self.temp, 0o666 & ~umask)  # mkstemp's 0600 would hide the file from others
                os.replace(self.temp, self.out)
                return
            except OSError as error:
                os.unlink(self.temp)
                raise ExportError(
                    f"--out {self.out}: cannot be written ({error.strerror or error})."
                ) from None
        os.unlink(self.temp)


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
    labels = {r.label for r in records} | {d.label for r in records for d in r.detections or ()}
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


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
