"""Object-store inputs (`s3://bucket/prefix/`, `gs://bucket/folder`, `file:///abs/folder`, or one object):
listed and read through pyarrow's filesystems (`pyarrow.fs.FileSystem.from_uri`).

A prefix is listed like a folder (recursive, in the order a folder walk gives, image suffixes only, the
same skip reasons); a single object is always tried, as a named file is. Listing happens when the inputs
are expanded; each object's bytes are read by `read_object` when its photo is decoded, in this process
(local engine) or in Ray's decoding tasks (ray engine), so every node then needs the store's credentials
(AWS's or Google Cloud's usual environment variables and files). Rows show each object's URI as `path`.

pyarrow is imported here only, and this module only when such an input is given.
"""

from __future__ import annotations

import functools
from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from classifier.intake.images import MAX_FILE_BYTES, display_name, error_line
from classifier.intake.items import OBJECT, Expansion, InputError, InputItem, invalid_item, skip_reason

if TYPE_CHECKING:
    from pyarrow.fs import FileInfo, FileSystem

# Google's client retries an unreachable service for 15 minutes by default: far too long to learn that
# the credentials or the network are missing. A `retry_limit_seconds` in the URI still wins.
GCS_RETRY_SECONDS = 20
ZIPS_SKIPPED = "zip archives in object stores (not opened; copy them here to read them)"
# What to do, per scheme, in the one line an input or a photo that cannot be read gets.
HINTS = {
    "s3": "check the bucket, the prefix and the AWS credentials",
    "gs": "check the bucket, the folder and the Google Cloud credentials",
    "gcs": "check the bucket, the folder and the Google Cloud credentials",
    "file": "check the path; file:// URIs take an absolute one, file:///folder",
}
UNKNOWN_SCHEME = "only http:// and https:// URLs and s3://, gs:// or file:// paths can be read"


def expand_uri(uri: str, expansion: Expansion) -> None:
    """Add the photos under `uri` (or the one object it names) to `expansion`; a problem is an error row."""
    try:
        filesystem, root = filesystem_for(uri)
        found = _objects(filesystem, root)
    except ImportError:
        expansion.items.append(invalid_item(uri, "object-store inputs need pyarrow: pip install pyarrow."))
        return
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and more: one row, never a traceback
        expansion.items.append(invalid_item(uri, f"cannot list ({_hint(uri)}): {error_line(exc)}"))
        return
    if found is None:
        expansion.items.append(invalid_item(uri, f"not found ({_hint(uri)})."))
    elif isinstance(found, list):
        _add_listed(uri, root, found, expansion)
    else:
        expansion.items.append(_item(uri, root, found))  # one object, named: tried whatever its suffix


def read_object(uri: str, path: str, label: str) -> bytes:
    """The bytes of object `path` of the store input `uri` names, at most one byte past the photo cap
    (`load_photo` refuses what is over it), so a huge object is never read whole."""
    try:
        filesystem, _ = filesystem_for(uri)
        with filesystem.open_input_stream(path) as stream:
            return stream.read(MAX_FILE_BYTES + 1)
    except Exception as exc:  # a deleted object, expired credentials, a network error: the photo's row
        raise InputError(f"{display_name(label)}: cannot be read ({_hint(uri)}): {error_line(exc)}") from None


@functools.lru_cache(maxsize=64)
def filesystem_for(uri: str) -> tuple[FileSystem, str]:
    """pyarrow's filesystem for `uri` and the path in it; cached per process, since making one resolves
    credentials and an S3 bucket's region (a request), which every photo would otherwise repeat."""
    from pyarrow.fs import FileSystem

    return FileSystem.from_uri(_with_defaults(uri))


def _with_defaults(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme.lower() in ("gs", "gcs") and "retry_limit_seconds" not in parts.query:
        query = "&".join(q for q in (parts.query, f"retry_limit_seconds={GCS_RETRY_SECONDS}") if q)
        return parts._replace(query=query).geturl()
    return uri


def _objects(filesystem: FileSystem, root: str) -> list[FileInfo] | FileInfo | None:
    """The objects under `root` (a prefix: a list), or `root` itself (one object); None when neither."""
    from pyarrow.fs import FileSelector, FileType

    info = filesystem.get_file_info(root)
    if info.type == FileType.NotFound:
        return None
    if info.type != FileType.Directory:
        return info
    listed = filesystem.get_file_info(FileSelector(root, recursive=True))
    return [i for i in listed if i.type == FileType.File]  # folders and S3's folder markers hold no photo


def _add_listed(uri: str, root: str, infos: list[FileInfo], expansion: Expansion) -> None:
    for info in sorted(infos, key=lambda i: _walk_order(root, i.path)):
        name = info.base_name
        reason = ZIPS_SKIPPED if name.lower().endswith(".zip") else skip_reason(name)
        if reason:
            expansion.skipped[reason] += 1
        else:
            expansion.items.append(_item(uri, root, info))


def _walk_order(root: str, path: str) -> tuple[tuple[str, ...], str]:
    # A folder's files before its subfolders', each sorted by name: the order `os.walk` gives plain
    # folders in classifier.intake.inputs, so a folder and its file:// URI give the same rows in order.
    parts = PurePosixPath(path[len(root.rstrip("/")) :].lstrip("/")).parts
    return parts[:-1], (parts[-1] if parts else "")


def _item(uri: str, root: str, info: FileInfo) -> InputItem:
    shown = _object_uri(uri, root, info.path)
    return InputItem(
        path=shown,
        kind=OBJECT,
        location=uri,  # what the filesystem is made from again when the photo is read (maybe elsewhere)
        member=info.path,
        group=shown.rsplit("/", 1)[0],
        mtime=info.mtime.timestamp() if info.mtime else None,
    )


def _object_uri(uri: str, root: str, path: str) -> str:
    """The object's URI as the user spelled the input (scheme, host), without the input's query."""
    base = uri.split("?", 1)[0].rstrip("/")
    return base + path[len(root.rstrip("/")) :] if path.startswith(root.rstrip("/")) else path


def _hint(uri: str) -> str:
    return HINTS.get(urlsplit(uri).scheme.lower(), UNKNOWN_SCHEME)
