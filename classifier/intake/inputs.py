"""Turn what a user typed (files, folders, zip archives, URLs) into an ordered list of photos to predict.

Rules, as the CLI documents them:
* a file named on the command line is always tried, whatever its extension; if it fails it is an error row;
* inside folders (recursive, sorted) and zips, only files with an image extension are taken; the others
  are skipped and counted by reason, so the closing summary can say what was left out;
* zips are read in place (nothing is extracted to disk). Entries with absolute, `../` or empty names,
  symlink entries, entries over the size caps and entries packed far tighter than photos pack (zip
  bombs) become error rows; archives with too many entries or too many bytes in all are refused;
  archives inside archives are skipped, not opened;
* http(s) URLs are fetched by `classifier.intake.urlfetch` when the photo is decoded (in parallel with others);
* any other `scheme://` input (s3://, gs://, file://) is an object-store folder or object, listed and read
  through pyarrow's filesystems by `classifier.intake.objectstore`, with the folders' rules;
* when the caller asks for lists (the CLI does), a local `.txt` or `.csv` is a list of inputs read by
  `classifier.intake.lists`, each entry expanded as if named here, in list order; a listed list is an
  error row (lists do not nest, so a list can never name itself).

Nothing is read here beyond folder listings and zip directories until `read_item` reads one photo.
"""

from __future__ import annotations

import lzma
import os
import stat
import threading
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from classifier.intake.images import MAX_FILE_BYTES, display_name, error_line
from classifier.intake.items import (
    FILE,
    OBJECT,
    URL,
    ZIP_ENTRY,
    Expansion,
    InputError,
    InputItem,
    invalid_item,
    skip_reason,
)
from classifier.intake.lists import is_list, read_list
from classifier.intake.objectstore import expand_uri, read_object
from classifier.intake.urlfetch import fetch_image


@dataclass(frozen=True)
class ZipLimits:
    """Caps against zip bombs, checked against the archive's directory before anything is decompressed.

    Python's zipfile never returns more bytes than an entry declares (it fails the CRC check instead),
    so capping the declared sizes caps what is actually decompressed.
    """

    max_entries: int = 200_000
    max_entry_bytes: int = MAX_FILE_BYTES  # one photo; load_photo refuses larger files anyway
    max_total_bytes: int = 64 * 2**30  # all image entries together (about 10,000 12-MP frames)
    # Photos barely compress (JPEG, PNG and WebP already are); an uncompressed TIFF or BMP of a photo
    # packs 2-5:1. Entries over 1 MiB packed tighter than this are bombs, refused before inflating.
    max_ratio: float = 100.0


_RATIO_FROM_BYTES = 2**20  # below this, however tightly packed, an entry costs nothing to inflate


def read_item(item: InputItem) -> bytes | Path:
    """The photo's bytes, or its path when it is a plain file; an InputError with a one-line reason."""
    if item.error:
        raise InputError(item.error)
    if item.kind == FILE:
        return Path(item.location)
    if item.kind == ZIP_ENTRY:
        return _read_member(item.location, item.member or "", item.name)
    if item.kind == URL:
        return fetch_image(item.location, allow_loopback=item.allow_loopback).content
    if item.kind == OBJECT:
        return read_object(item.location, item.member or "", item.path)  # pyarrow imported only here
    raise InputError(f"{item.path}: cannot be read.")


def is_url(text: str) -> bool:
    return text[:8].lower().startswith(("http://", "https://"))


def item_for_path(path: str | Path) -> InputItem:
    """An item for one file, named by the caller (tried whatever its extension)."""
    text = str(path)
    return InputItem(path=text, location=text, group=str(Path(text).parent), mtime=_mtime(Path(text)))


def expand_inputs(
    inputs: Iterable[str | Path],
    *,
    zip_limits: ZipLimits = ZipLimits(),
    allow_loopback: bool = False,
    lists: bool = False,
) -> Expansion:
    """Expand `inputs` in the order given; folders and zips contribute their photos in sorted order.

    With `lists`, a local .txt or .csv input is a list (a ListError when unusable as a whole). Off by
    default: the app expands uploaded files, and an uploaded list must not name the server's own files.
    """
    expansion = Expansion()
    for raw in inputs:
        text = str(raw)
        if lists and is_list(text) and Path(text).is_file():
            for entry in read_list(Path(text)):
                _expand_input(entry, expansion, zip_limits, allow_loopback, listed=True)
        else:
            _expand_input(text, expansion, zip_limits, allow_loopback)
    return expansion


def _expand_input(
    text: str, expansion: Expansion, limits: ZipLimits, allow_loopback: bool, listed: bool = False
) -> None:
    if listed and is_list(text) and not Path(text).is_dir():
        expansion.items.append(invalid_item(text, "lists cannot nest; name this list on the command line."))
    elif is_url(text):
        expansion.items.append(
            InputItem(
                path=text, kind=URL, location=text, group=_url_group(text), allow_loopback=allow_loopback
            )
        )
    elif "://" in text and not Path(text).exists():
        expand_uri(text, expansion)
    else:
        _expand_path(Path(text), text, expansion, limits)


def _expand_path(path: Path, text: str, expansion: Expansion, limits: ZipLimits) -> None:
    if path.is_dir():
        _expand_folder(path, expansion, limits)
    elif path.suffix.lower() == ".zip" and path.is_file():
        _expand_zip(path, text, expansion, limits)
    elif path.exists():
        expansion.items.append(item_for_path(text))
    elif path.is_symlink():
        expansion.items.append(invalid_item(text, "a symbolic link to a file that does not exist."))
    elif any(parent.suffix.lower() == ".zip" and parent.is_file() for parent in path.parents):
        # A row's path from a zip (card.zip/DCIM/x.jpg) given back, say in a list: say why, not "not found".
        expansion.items.append(
            invalid_item(text, "a photo inside a .zip cannot be named alone; name the .zip.")
        )
    else:
        expansion.items.append(invalid_item(text, "file not found; check the path."))


def _expand_folder(root: Path, expansion: Expansion, limits: ZipLimits) -> None:
    # os.walk does not descend into symlinked folders (no loops); symlinked files are followed.
    for folder, subfolders, files in os.walk(root, onerror=lambda exc: _unreadable(exc, expansion)):
        subfolders.sort()
        for name in sorted(files):
            path = Path(folder) / name
            reason = skip_reason(name)
            if name.lower().endswith(".zip"):
                expansion.skipped["zip archives inside folders (name them to read them)"] += 1
            elif reason:
                expansion.skipped[reason] += 1
            elif path.is_file():
                expansion.items.append(item_for_path(path))
            else:
                expansion.skipped["broken links or special files"] += 1


def _unreadable(exc: OSError, expansion: Expansion) -> None:
    expansion.items.append(invalid_item(str(exc.filename), f"folder cannot be read ({exc.strerror})."))


def _expand_zip(archive: Path, text: str, expansion: Expansion, limits: ZipLimits) -> None:
    infos = _zip_directory(archive, text, expansion, limits)
    total = 0
    for info in sorted(infos, key=lambda i: i.filename):
        name = info.filename
        shown = f"{text}/{name}"
        problem = _unsafe_member(info)
        if name.endswith("/") and not problem:
            continue  # a folder entry
        reason = None if problem else _zip_skip_reason(name)
        if reason:
            expansion.skipped[reason] += 1
            continue
        problem = problem or _oversized(info, limits)
        if not problem:
            total += info.file_size
            if total > limits.max_total_bytes:
                problem = (
                    f"the archive's photos add up to more than {_size(limits.max_total_bytes)} "
                    "uncompressed; split the archive."
                )
        expansion.items.append(invalid_item(shown, problem) if problem else _zip_item(archive, text, info))


def _zip_directory(
    archive: Path, text: str, expansion: Expansion, limits: ZipLimits
) -> list[zipfile.ZipInfo]:
    """The archive's entries, or none (and an error row) when it is unreadable or has too many."""
    try:
        entries = _entry_count(archive)  # from the end record: a huge directory is never parsed
        if entries <= limits.max_entries:
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
            entries = len(infos)
    except Exception as exc:  # a damaged directory fails in many ways inside zipfile (even NotImplemented)
        expansion.items.append(
            invalid_item(text, f"not a readable zip archive ({error_line(exc)}); copy it again.")
        )
        return []
    if entries > limits.max_entries:
        problem = f"{entries:,} entries is more than the {limits.max_entries:,}-entry limit; split it."
        expansion.items.append(invalid_item(text, problem))
        return []
    return infos


def _zip_skip_reason(name: str) -> str | None:
    base = PurePosixPath(name).name
    if base.lower().endswith(".zip"):
        return "archives inside archives (not opened)"
    if name.startswith("__MACOSX/"):
        return "macOS metadata files (._*)"
    return skip_reason(base)


def _oversized(info: zipfile.ZipInfo, limits: ZipLimits) -> str | None:
    if info.file_size > limits.max_entry_bytes:
        return (
            f"{_size(info.file_size)} uncompressed is more than the "
            f"{_size(limits.max_entry_bytes)} limit for one photo in an archive."
        )
    if info.file_size > _RATIO_FROM_BYTES and info.file_size > limits.max_ratio * max(info.compress_size, 1):
        return (
            f"refused: {_size(info.compress_size)} unpacks to {_size(info.file_size)}, "
            f"more than {limits.max_ratio:g} times its size, which no photo does (a zip bomb)."
        )
    return None


def _zip_item(archive: Path, text: str, info: zipfile.ZipInfo) -> InputItem:
    return InputItem(
        path=f"{text}/{info.filename}",
        kind=ZIP_ENTRY,
        location=str(archive),
        member=info.filename,
        group=f"{text}/{PurePosixPath(info.filename).parent}",
        mtime=_zip_time(info),
    )


def _unsafe_member(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not name:
        return "refused: an entry without a name (a malicious or broken zip)."
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "refused: an absolute path inside the archive (a malicious or broken zip)."
    if ".." in parts:
        return "refused: a '../' path inside the archive points outside it (a malicious or broken zip)."
    if stat.S_ISLNK(info.external_attr >> 16):
        return "refused: a symbolic link inside the archive."
    if info.flag_bits & 0x1:
        return "refused: the entry is encrypted; unzip it with its password first."
    return None


def _entry_count(archive: Path) -> int:
    """Entries the archive declares, read from its end record before the directory is parsed."""
    try:
        with open(archive, "rb") as handle:
            end = zipfile._EndRecData(handle)  # stable for decades; avoids parsing a huge directory first
    except AttributeError:  # a future Python without it: zipfile's own parse below still works
        return 0
    if end is None:
        raise zipfile.BadZipFile("no end-of-archive record")
    return int(end[zipfile._ECD_ENTRIES_TOTAL])


_open_archives = threading.local()


def _read_member(archive: str, member: str, label: str) -> bytes:
    # One open ZipFile per thread and archive: reopening would re-parse the directory for every photo.
    shown = display_name(label)
    cache: dict[str, zipfile.ZipFile] = getattr(_open_archives, "files", None) or {}
    _open_archives.files = cache
    try:
        zf = cache.get(archive)
        if zf is None:
            zf = cache[archive] = zipfile.ZipFile(archive)
        with zf.open(member) as handle:
            return handle.read()
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError) as exc:
        raise InputError(f"{shown}: damaged inside the archive ({error_line(exc)}).") from None
    except NotImplementedError as exc:
        raise InputError(
            f"{shown}: compressed with a method Python cannot read ({error_line(exc)})."
        ) from None
    except Exception as exc:  # OSError, RuntimeError (encrypted), KeyError, ...: one row, never a crash
        raise InputError(f"{shown}: cannot be read from the archive ({error_line(exc)}).") from None


def close_archives() -> None:
    """Close the archives this thread opened (pool threads' archives close when the threads end)."""
    for zf in (getattr(_open_archives, "files", None) or {}).values():
        zf.close()
    _open_archives.files = {}


def _url_group(url: str) -> str:
    return url.split("?", 1)[0].rsplit("/", 1)[0]


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _zip_time(info: zipfile.ZipInfo) -> float | None:
    try:
        return datetime(*info.date_time).timestamp()
    except (ValueError, OverflowError):
        return None


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"
