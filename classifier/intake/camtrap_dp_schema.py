"""Camtrap DP 1.0.2 tables checked against the standard's own table schemas, every problem in one line.

    problems = validate_tables({"deployments": text, "media": text, "observations": text})
    for problem in problems:
        print(problem)   # media.csv line 12, filePath: '../x.jpg' must be a URL or a path inside ...

The schemas are the published files of tdwg/camtrap-dp, tag 1.0.2 (MIT), copied unchanged into
`camtrap_dp_schemas/`; this module reads them and checks what they state: each field's type (string,
number, integer, boolean, datetime in `%Y-%m-%dT%H:%M:%S%z`), `required`, `enum`, `minimum`/`maximum`,
`pattern`, `unique` and the primary key, the foreign keys between the tables, and the schemas' missing
values ("", NA, NaN, nan). Beyond the schemas it checks only what the standard's text says of a field and
an analysis relies on: a deployment or an event does not end before it starts.

A problem names the file, the line (the header is line 1), the field and what to write instead, so a
person can fix it in a spreadsheet. `parse_table` also gives each cell its typed value (None where empty or
unusable), which is what the package reader (`classifier.intake.camtrap_dp_package`) keeps.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

VERSION = "1.0.2"
SCHEMA_DIR = Path(__file__).resolve().parent / "camtrap_dp_schemas"
TABLES = ("deployments", "media", "observations")
TRUE_VALUES = ("true", "True", "TRUE", "1")  # Table Schema's defaults for a boolean field
FALSE_VALUES = ("false", "False", "FALSE", "0")
# What to write, by field, where the schema's own `example` says too little.
_HINTS = {
    "filePath": "a URL, or the path of the file inside the package (media/IMG_0001.JPG): not starting "
    "with '.', '/' or '~', and without '..'",
    "fileMediatype": "the file's media type, such as image/jpeg or video/mp4",
}
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:?\d{2})")


@dataclass(frozen=True)
class Problem:
    """Something in a package a person can fix: `str()` is one line naming file, line, field and the fix."""

    file: str  # "media.csv", or "datapackage.json"
    line: int | None  # the CSV line (header: line 1); None for the whole file or column
    field: str  # the column; "" for the file
    message: str  # what is wrong, and what to write

    def __str__(self) -> str:
        where = (
            self.file
            + (f" line {self.line}" if self.line else "")
            + (f", {self.field}" if self.field else "")
        )
        return f"{where}: {self.message}"


@dataclass
class Table:
    """One table's rows with typed values (None where a cell is empty or unusable), and each row's line."""

    name: str
    columns: tuple[str, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


@functools.cache
def table_schema(name: str) -> dict[str, Any]:
    """The published Table Schema of `name` (deployments, media or observations)."""
    if name not in TABLES:
        raise ValueError(f"no Camtrap DP table {name!r}; the tables are {', '.join(TABLES)}")
    return json.loads((SCHEMA_DIR / f"{name}-table-schema.json").read_text(encoding="utf-8"))


def field_names(name: str) -> tuple[str, ...]:
    """The table's fields in the schema's order (the order a CSV of the table has its columns in)."""
    return tuple(f["name"] for f in table_schema(name)["fields"])


def validate_tables(tables: Mapping[str, str]) -> list[Problem]:
    """Every problem of the three tables given as CSV text (`{"media": "mediaID,...\\n..."}`), keys included."""
    parsed, problems = {}, []
    for name in TABLES:
        if name not in tables:
            problems.append(Problem(f"{name}.csv", None, "", "missing: a Camtrap DP package has this table."))
            continue
        table, found = read_csv_table(name, tables[name])
        parsed[name] = table
        problems += found
    return problems + check_keys(parsed)


def read_csv_table(
    name: str, text: str, *, file: str = "", delimiter: str = ","
) -> tuple[Table, list[Problem]]:
    """Parse one table's CSV text (a byte-order mark allowed) against its schema."""
    file = file or f"{name}.csv"
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), delimiter=delimiter)
    try:
        header = next(reader, [])
        rows = [(reader.line_num, cells) for cells in reader if any(c.strip() for c in cells)]
    except csv.Error as exc:
        return Table(name, ()), [
            Problem(file, reader.line_num, "", f"not valid CSV ({exc}); save it as CSV again.")
        ]
    header = [h.strip() for h in header]
    return parse_table(
        name, header, ((line, dict(zip(header, cells, strict=False))) for line, cells in rows), file
    )


def parse_table(
    name: str, header: Sequence[str], rows: Iterable[tuple[int, Mapping[str, str]]], file: str = ""
) -> tuple[Table, list[Problem]]:
    """Typed rows of one table and the problems of its header and cells (`rows`: (line, {column: text}))."""
    file = file or f"{name}.csv"
    schema = table_schema(name)
    missing_values = set(schema.get("missingValues", [""]))
    fields = schema["fields"]
    problems = [
        Problem(file, None, f["name"], f"column missing: add a column named {f['name']}"
                + (" and fill it in (it is required)." if _required(f) else " (it may be left empty)."))
        for f in fields
        if f["name"] not in header
    ]  # fmt: skip
    if not header:
        problems = [Problem(file, 1, "", "has no header line: the first line names the columns.")]
    checks = [_field(f, file) for f in fields]
    table = Table(name, tuple(header))
    seen: dict[str, dict[Any, int]] = {f["name"]: {} for f in fields if _unique(f, schema)}
    for line, cells in rows:
        row: dict[str, Any] = {}
        for check in checks:
            text = cells.get(check.name) or ""
            if text in missing_values:
                value = None
                if check.required and check.name in header:  # a missing column is one problem, above
                    problems.append(
                        Problem(file, line, check.name, f"is empty but required: write {check.what}.")
                    )
            else:
                value = check.parse(text, line, problems)
            if check.name in seen and value is not None:
                first = seen[check.name].setdefault(value, line)
                if first != line:
                    problems.append(
                        Problem(file, line, check.name, f"{_show(text)} is used again (first on line {first}): "
                                f"give each row its own {check.name}.")
                    )  # fmt: skip
            row[check.name] = value
        for start, end in (("deploymentStart", "deploymentEnd"), ("eventStart", "eventEnd")):
            if row.get(start) and row.get(end) and row[end] < row[start]:
                problems.append(Problem(file, line, end, f"is before {start}: write a time at or after it."))
        table.rows.append(row)
        table.lines.append(line)
    return table, problems


def check_keys(tables: Mapping[str, Table]) -> list[Problem]:
    """The schemas' foreign keys: a value that names no row of the table it refers to (an empty one may)."""
    problems = []
    for name, table in tables.items():
        for key in table_schema(name).get("foreignKeys", []):
            column, target = key["fields"], key["reference"]
            if target["resource"] not in tables:
                continue
            known = {row[target["fields"]] for row in tables[target["resource"]].rows}
            for row, line in zip(table.rows, table.lines, strict=True):
                value = row.get(column)
                if value is not None and value not in known:
                    problems.append(
                        Problem(f"{name}.csv", line, column, f"{_show(value)} is no {target['fields']} of "
                                f"{target['resource']}.csv: add it there, or correct it here.")
                    )  # fmt: skip
    return problems


# ------------------------------------------------------------------------------------------- one field


@dataclass(frozen=True)
class _Field:
    name: str
    required: bool
    what: str  # what to write, for the messages
    parse: Callable[[str, int, list[Problem]], Any]


def _required(spec: Mapping[str, Any]) -> bool:
    return bool(spec.get("constraints", {}).get("required"))


def _unique(spec: Mapping[str, Any], schema: Mapping[str, Any]) -> bool:
    return bool(spec.get("constraints", {}).get("unique")) or spec["name"] == schema.get("primaryKey")


def _field(spec: Mapping[str, Any], file: str) -> _Field:
    """The field's rules as one parse function: a cell's text to its value, or None and a problem."""
    name, kind = spec["name"], spec.get("type", "string")
    rules = spec.get("constraints", {})
    what = _HINTS.get(name) or _SHAPES.get(kind, "text")
    if "example" in spec and name not in _HINTS and kind in ("string", "any"):
        what = f"a value such as {spec['example']}"
    convert = _CONVERTERS.get(kind, _as_text)
    enum = rules.get("enum")
    if enum is not None:
        what = f"one of {', '.join(map(str, enum))}"
    pattern = re.compile(rules["pattern"]) if "pattern" in rules else None
    low, high = rules.get("minimum"), rules.get("maximum")
    if low is not None and high is not None:
        span = f"from {low} to {high}"
    else:
        span = f"of {low} or more" if low is not None else f"of {high} or less"

    def parse(text: str, line: int, problems: list[Problem]) -> Any:
        try:
            value = convert(text)
        except ValueError as exc:
            message = f"{_show(text)} is not {exc}: write {what}."
        else:
            if enum is not None and value not in enum:
                message = f"{_show(text)} is not allowed: write {what}."
            elif pattern is not None and not pattern.fullmatch(value):
                message = f"{_show(text)} is not allowed here: write {what}."
            elif (low is not None and value < low) or (high is not None and value > high):
                message = f"{_show(text)} is out of range: write a number {span}."
            else:
                return value
        problems.append(Problem(file, line, name, message))
        return None

    return _Field(name, _required(spec), what, parse)


def _as_text(text: str) -> str:
    return text


def _as_number(text: str) -> float:
    if not _NUMBER.fullmatch(text):
        raise ValueError("a number")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a finite number")
    return value


def _as_integer(text: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError("a whole number")
    return int(text)


def _as_boolean(text: str) -> bool:
    if text in TRUE_VALUES:
        return True
    if text in FALSE_VALUES:
        return False
    raise ValueError("true or false")


def _as_datetime(text: str) -> datetime:
    try:
        if _DATETIME.fullmatch(text):
            return datetime.fromisoformat(text)
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")  # the schema's format, as frictionless reads it
    except ValueError:
        raise ValueError("a date and time with its time zone") from None


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "string": _as_text,
    "any": _as_text,
    "number": _as_number,
    "integer": _as_integer,
    "boolean": _as_boolean,
    "datetime": _as_datetime,
}
_SHAPES = {
    "string": "text",
    "any": "text",
    "number": "a number with '.' as the decimal point",
    "integer": "a whole number",
    "boolean": "true or false",
    "datetime": "the date and time with its time zone, as 2024-03-01T06:10:00Z or 2024-03-01T09:10:00+03:00",
}


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else repr(str(value))
    return text if len(text) <= 60 else text[:57] + "...'"
