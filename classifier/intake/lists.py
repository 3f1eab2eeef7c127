"""List inputs for `predict`: a `.txt` file of photos, one a line, or a `.csv` with a path column.

* `.txt`: one entry a line (a file, a folder, a .zip, an http(s) URL or an object-store URI); blank lines and
  lines starting with `#` are ignored (only whole lines: `#` is legal in file names and URLs);
* `.csv`: the column named `path`, `file`, `filepath` or `url` (any case, the first of these there), so the
  CSV `predict --out` writes can be given back to re-run a subset; a CSV without one is refused;
* a relative entry is resolved against the list's folder; when nothing is there but the entry exists as
  given, it is taken as given (relative to where the command runs), which is how `predict --out` writes
  paths wherever the CSV is saved;
* an entry listed twice is taken once (`--per-detection` output repeats a photo's path per animal).

This module only reads the list; `classifier.intake.inputs` expands each entry as if named on the command
line, and refuses entries that are lists themselves (lists do not nest).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path, PurePosixPath

from classifier.intake.images import display_name, error_line

LIST_SUFFIXES = (".txt", ".csv")
PATH_COLUMNS = ("path", "file", "filepath", "url")  # in order of preference when a CSV has several


class ListError(ValueError):
    """A list that cannot be used as a whole, with a one-line reason."""


def is_list(name: str) -> bool:
    """Whether `name` (a path or URI) is named like a list."""
    return PurePosixPath(name.split("?", 1)[0].rstrip("/")).suffix.lower() in LIST_SUFFIXES


def read_list(path: Path) -> list[str]:
    """The entries of the list at `path`, in order, each once, relative ones resolved."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheet programs start CSVs with a BOM
    except (OSError, UnicodeError) as exc:
        raise ListError(f"{_shown(path)}: cannot be read as a list ({error_line(exc)}).") from None
    entries = _csv_values(path, text) if path.suffix.lower() == ".csv" else _lines(text)
    return list(dict.fromkeys(_resolve(entry, path.parent) for entry in entries))


def _lines(text: str) -> list[str]:
    return [entry for line in text.splitlines() if (entry := line.strip()) and not entry.startswith("#")]


def _csv_values(path: Path, text: str) -> list[str]:
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise ListError(f"{_shown(path)}: not a readable CSV ({error_line(exc)}).") from None
    header = [name.strip().lower() for name in rows[0]] if rows else []
    column = next((header.index(name) for name in PATH_COLUMNS if name in header), None)
    if column is None:
        raise ListError(
            f"{_shown(path)}: a CSV of photos needs a column named {', '.join(PATH_COLUMNS[:-1])} or "
            f"{PATH_COLUMNS[-1]}; its columns are: {_columns(rows[0] if rows else [])}."
        )
    return [value for row in rows[1:] if len(row) > column and (value := row[column].strip())]


def _columns(header: list[str], shown: int = 10) -> str:
    names = ", ".join(display_name(name.strip()[:40]) for name in header[:shown]) or "none"
    return names + (f" and {len(header) - shown} more" if len(header) > shown else "")


def _resolve(entry: str, folder: Path) -> str:
    if "://" in entry or Path(entry).is_absolute():
        return entry
    beside = folder / entry
    if beside.exists() or beside.is_symlink() or not Path(entry).exists():
        return str(beside)
    return entry  # a CSV from `predict --out` saved elsewhere: its paths are relative to where it ran


def _shown(path: Path) -> str:
    return display_name(str(path))
