"""A predictions file (CSV or JSON, reviewed or not) read into `Record`s, and records written back as CSV.

    records = read_predictions("labels.csv").records
    write_csv(records, open("labels-reviewed.csv", "w", newline=""))

The reader takes what `python -m classifier predict` or the app wrote, old files (the nine first columns
only: a whole-frame answer, no boxes) and new ones (`observation_type`, `count`, `detections`, `rank`,
`geofenced` and the review columns `classification_method`, `classified_by`, `classified_at`). A file from
another tool is refused with one line naming the columns it lacks; every value it cannot use is refused
with its line (CSV) or row (JSON) number. Problems are `ExportError`s: one line, for the user.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from classifier.schema.rows import CSV_COLUMNS, ERROR, OK, SEQUENCE_LABEL, UNCERTAIN, Decision, Row

REQUIRED_COLUMNS = ("path", "label", "confidence", "status")
SECOND_WAVE_COLUMNS = ("observation_type", "count", "detections", "rank", "geofenced", "decision")
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
_MD_CATEGORY = {"animal": "1", "human": "2", "person": "2", "vehicle": "3", "1": "1", "2": "2", "3": "3"}
_RANKS = ("species", "genus", "family", "order", "class")
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
    decision: Decision | None = None  # how the machine's answer was reached (None: older files)
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
            "decision": ""
            if self.decision is None
            else json.dumps(self.decision.to_json(), separators=(",", ":")),
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
        decision=_decision(values.get("decision")),
        classification_method=method,
        classified_by=text(values, "classified_by"),
        classified_at=_datetime(values.get("classified_at"), "classified_at"),
    )


def _decision(value: Any) -> Decision | None:
    """The `decision` column: a JSON object (a CSV cell holds its text), or empty."""
    if value is None or value == "":
        return None
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
        return Decision.from_json(parsed)
    except (ValueError, TypeError, KeyError, AttributeError):
        raise _Bad(f"'decision' must be the JSON object predict wrote (got {_show(value)}).") from None


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
        # The pipeline's own boxes (classifier.schema.rows.Detection) become this module's, as a file gives them.
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
        decision=getattr(row, "decision", None),
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
