"""A predictions file (CSV or JSON, reviewed or not) read into `Row`s, and rows written back as CSV.

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

from classifier.schema.rows import (
    CSV_COLUMNS,
    ERROR,
    MACHINE,
    OBSERVATION_TYPES,
    OK,
    PERSON,
    RANKS,
    SEQUENCE_LABEL,
    UNCERTAIN,
    Decision,
    Detection,
    Row,
)

REQUIRED_COLUMNS = ("path", "label", "confidence", "status")
# What `write_csv` writes: every column, with the sequence's label (read back unchanged).
EXPORT_COLUMNS = (*CSV_COLUMNS, SEQUENCE_LABEL)
# The detector's categories as MegaDetector numbers them, by any name a file gives them.
MD_CATEGORIES = {"animal": "1", "human": "2", "person": "2", "vehicle": "3", "1": "1", "2": "2", "3": "3"}
_EPS = 1e-3  # how far a normalised box may stray outside [0, 1] (rounding) before it is refused


class ExportError(ValueError):
    """A predictions, deployments or species file that cannot be exported; `str()` is one line."""


@dataclass
class Predictions:
    records: list[Row]
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
                records.append(_row(values, from_json=False))
            except BadValue as exc:
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
            records.append(_row(item, from_json=True))
        except BadValue as exc:
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


class BadValue(ValueError):
    """A value of one row that cannot be used; the caller adds the file and line."""


def _row(values: dict[str, Any], *, from_json: bool) -> Row:
    text = _json_text if from_json else _csv_text
    path = text(values, "path")
    if not path:
        raise BadValue("'path' is empty.")
    status = text(values, "status") or (ERROR if text(values, "error") else OK)
    if status not in (OK, UNCERTAIN, ERROR):
        raise BadValue(f"'status' must be ok, uncertain or error (got {_show(status)}).")
    kind = text(values, "observation_type")
    if kind and kind not in OBSERVATION_TYPES:
        raise BadValue(
            f"'observation_type' must be one of {', '.join(OBSERVATION_TYPES)} (got {_show(kind)})."
        )
    method = text(values, "classification_method")
    if method and method not in (MACHINE, PERSON):
        raise BadValue(f"'classification_method' must be machine or human (got {_show(method)}).")
    rank = text(values, "rank")
    if rank and rank not in RANKS:
        raise BadValue(f"'rank' must be one of {', '.join(RANKS)} (got {_show(rank)}).")
    return Row(
        path=path,
        label=text(values, "label"),
        confidence=_probability(values.get("confidence"), "confidence"),
        status=status,
        error=text(values, "error"),
        top_k=_top_k(values.get("top_k"), "top_k"),
        datetime=parse_datetime(values.get("datetime"), "datetime"),
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
        classified_at=parse_datetime(values.get("classified_at"), "classified_at"),
    )


def _decision(value: Any) -> Decision | None:
    """The `decision` column: a JSON object (a CSV cell holds its text), or empty."""
    if value is None or value == "":
        return None
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
        return Decision.from_json(parsed)
    except (ValueError, TypeError, KeyError, AttributeError):
        raise BadValue(f"'decision' must be the JSON object predict wrote (got {_show(value)}).") from None


def _csv_text(values: dict[str, Any], key: str) -> str:
    return values.get(key, "").strip()


def _json_text(values: dict[str, Any], key: str) -> str:
    value = values.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadValue(f"{key!r} must be text (got {_show(value)}).")
    return str(value).strip()


def parse_number(value: Any, key: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadValue(f"{key!r} must be a number (got {_show(value)}).")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadValue(f"{key!r} must be a number (got {_show(value)}).") from None
    if not math.isfinite(number):
        raise BadValue(f"{key!r} must be a finite number (got {_show(value)}).")
    return number


def _probability(value: Any, key: str) -> float | None:
    number = parse_number(value, key)
    if number is not None and not -_EPS <= number <= 1 + _EPS:
        raise BadValue(f"{key!r} must be between 0 and 1 (got {_show(value)}).")
    return None if number is None else min(max(number, 0.0), 1.0)


def _count(value: Any) -> int | None:
    number = parse_number(value, "count")
    if number is None:
        return None
    if number < 0 or number != int(number):
        raise BadValue(f"'count' must be a whole number, 0 or more (got {_show(value)}).")
    return int(number)


def parse_datetime(value: Any, key: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadValue(f"{key!r} must be an ISO 8601 date and time (got {_show(value)}).")
    text = value.strip()
    try:
        return datetime.fromisoformat(text.replace(" ", "T", 1) if len(text) > 10 else text)
    except ValueError:
        raise BadValue(f"{key!r} must be an ISO 8601 date and time (got {_show(value)}).") from None


def _top_k(value: Any, key: str) -> tuple[tuple[str, float], ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):  # "label:p;label:p" (a label may contain ':'; the last one splits)
        pairs = []
        for part in value.split(";"):
            label, colon, p = part.rpartition(":")
            if not colon:
                raise BadValue(f"{key!r} must be 'label:p;label:p' (got {_show(value)}).")
            pairs.append((label, p))
    elif isinstance(value, list):
        pairs = []
        for item in value:
            if isinstance(item, dict):
                pairs.append((item.get("label"), item.get("confidence")))
            elif isinstance(item, list | tuple) and len(item) == 2:
                pairs.append((item[0], item[1]))
            else:
                raise BadValue(f"{key!r} items must be {{label, confidence}} (got {_show(item)}).")
    else:
        raise BadValue(f"{key!r} must be a list of {{label, confidence}} (got {_show(value)}).")
    result = []
    for label, p in pairs:
        if not isinstance(label, str) or not label:
            raise BadValue(f"{key!r} has an item without a label (got {_show(value)}).")
        probability = _probability(p, key)
        if probability is None:
            raise BadValue(f"{key!r} has a label without a confidence (got {_show(value)}).")
        result.append((label, probability))
    return tuple(result)


def _detections(value: Any) -> tuple[Detection, ...] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise BadValue(f"'detections' is not valid JSON ({exc.msg} at character {exc.pos}).") from None
    if not isinstance(value, list):
        raise BadValue(f"'detections' must be a JSON list of boxes (got {_show(value)}).")
    return tuple(_detection(item, i) for i, item in enumerate(value))


def _detection(item: Any, i: int) -> Detection:
    where = f"detections[{i}]"
    if not isinstance(item, dict):
        raise BadValue(f"'{where}' must be an object with bbox, detector_conf, label (got {_show(item)}).")
    bbox = item.get("bbox")
    if not isinstance(bbox, list | tuple) or len(bbox) != 4:
        raise BadValue(f"'{where}.bbox' must be [x, y, width, height] (got {_show(bbox)}).")
    x, y, w, h = (parse_number(v, f"{where}.bbox") for v in bbox)
    if None in (x, y, w, h):
        raise BadValue(f"'{where}.bbox' must be four numbers (got {_show(bbox)}).")
    if w <= 0 or h <= 0 or x < -_EPS or y < -_EPS or x + w > 1 + _EPS or y + h > 1 + _EPS:
        raise BadValue(
            f"'{where}.bbox' must be normalised [x, y, width, height] inside the image (got {_show(bbox)})."
        )
    label = item.get("label") or ""
    if not isinstance(label, str):
        raise BadValue(f"'{where}.label' must be text (got {_show(label)}).")
    category = item.get("category") or ""
    if category and str(category).casefold() not in MD_CATEGORIES:
        raise BadValue(f"'{where}.category' must be animal, person or vehicle (got {_show(category)}).")
    return Detection(
        bbox=(x, y, w, h),
        detector_conf=_probability(item.get("detector_conf"), f"{where}.detector_conf"),
        label=label,
        confidence=_probability(item.get("confidence"), f"{where}.confidence"),
        top_k=_top_k(item.get("top_k"), f"{where}.top_k"),
        rank=_text(item, "rank", where),
        status=_text(item, "status", where),
        category=str(category).casefold(),
    )


def _text(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key) or ""
    if not isinstance(value, str):
        raise BadValue(f"'{where}.{key}' must be text (got {_show(value)}).")
    return value


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict | list) else json.dumps(value)[:60]
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------------------------------- CSV


def write_csv(rows: Iterable[Row], stream: IO[str]) -> int:
    """Every column, with the sequence's label (`EXPORT_COLUMNS`); returns the row count."""
    writer = CsvRows(stream, sequence_label=True)
    count = 0
    for row in rows:
        writer.write(row)
        count += 1
    return count


def row_writer(stream: IO[str], *, json_rows: bool, sequence_label: bool) -> CsvRows | JsonRows:
    """A writer of rows one at a time, each on disk as soon as it is written (`close` ends the file)."""
    return (JsonRows if json_rows else CsvRows)(stream, sequence_label)


class CsvRows:
    """CSV with a header, flushed per row so an interrupted run leaves a valid file."""

    def __init__(self, stream: IO[str], sequence_label: bool) -> None:
        self.stream, self.sequence_label = stream, sequence_label
        columns = list(EXPORT_COLUMNS) if sequence_label else list(CSV_COLUMNS)
        self.writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n")
        self.writer.writeheader()
        stream.flush()

    def write(self, row: Row) -> None:
        self.writer.writerow(row.to_csv(self.sequence_label))
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class JsonRows:
    """A JSON array of row objects, one per line; `close` ends the array, also after Ctrl-C."""

    def __init__(self, stream: IO[str], sequence_label: bool) -> None:
        self.stream, self.sequence_label, self.first = stream, sequence_label, True
        stream.write("[")

    def write(self, row: Row) -> None:
        self.stream.write(("\n" if self.first else ",\n") + json.dumps(row.to_json(self.sequence_label)))
        self.stream.flush()
        self.first = False

    def close(self) -> None:
        self.stream.write("\n]\n" if not self.first else "]\n")
        self.stream.flush()
