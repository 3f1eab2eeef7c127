"""One photo to read, as `classifier.intake.inputs` lists it: the item, its kinds, and the expansion that
collects items and counts what was left out. Reading an item is `classifier.intake.inputs.read_item`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from classifier.intake.images import display_name, has_image_extension

FILE, ZIP_ENTRY, URL, OBJECT, INVALID = "file", "zip", "url", "object", "invalid"


class InputError(ValueError):
    """An input that cannot be read, with a one-line reason."""


@dataclass(frozen=True)
class InputItem:
    """One photo to predict. `path` is what the output shows; `inputs.read_item` gives its bytes or file path."""

    path: str
    kind: str = FILE
    location: str = ""  # the file, or the zip archive holding `member`, or the URL, or the object-store input
    member: str | None = None  # the zip entry, or the object's path in the object store's filesystem
    error: str | None = None  # known before reading: a refused zip entry, a missing file
    group: str = ""  # folder (or folder inside a zip) the photo sits in: sequences never span groups
    mtime: float | None = None  # file (or zip entry) time, the fallback when a photo has no EXIF time
    allow_loopback: bool = field(default=False, repr=False)  # URL fetch test switch, see urlfetch

    @property
    def name(self) -> str:
        return PurePosixPath(self.path.rstrip("/")).name or self.path


@dataclass
class Expansion:
    items: list[InputItem] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> files left out

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def skipped_summary(self) -> str:
        return ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())


def skip_reason(name: str) -> str | None:
    if name.startswith("._"):
        return "macOS metadata files (._*)"
    if not has_image_extension(name):
        return "files without an image extension"
    return None


def invalid_item(path: str, reason: str) -> InputItem:
    shown = path if "://" in path else PurePosixPath(path).name or path
    return InputItem(path=path, kind=INVALID, error=f"{display_name(shown)}: {reason}")
