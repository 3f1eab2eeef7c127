"""Read and decode one photo to pixels, as prediction's batches take it: no torch here.

Kept apart from `classifier.models.predict` so that what only decodes (the Ray engine's decoding tasks,
classifier/models/engines.py) starts without importing torch. Every failure becomes `Decoded.error`, a one-line
reason for the photo's row, never an exception.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from classifier.intake.images import ImageError, load_photo, one_line
from classifier.intake.inputs import read_item
from classifier.intake.items import InputError, InputItem


@dataclass
class Decoded:
    pixels: Any = None  # HWC uint8 array (threads) or CHW uint8 tensor (processes); None on error
    taken: datetime | None = None
    camera: str | None = None
    location: tuple[float, float] | None = None
    error: str = ""
    sha256: str = ""  # of the file's bytes: what the photo's kept embeddings are found by


def decode_size_for(image_size: int, detector_input_size: int | None) -> int:
    """The size photos are decoded at: the network's, or with a detector no smaller than what it sees."""
    return image_size if detector_input_size is None else max(detector_input_size, image_size)


def decode_item(item: InputItem, size: int, *, squish: bool = True) -> Decoded:
    """Read and decode one item to an HWC uint8 array, squished to `size` x `size` (or, with `squish` off,
    at a reduced scale no smaller than `size`); every failure becomes `Decoded.error`."""
    try:
        data = read_item(item)
    except InputError as exc:
        return Decoded(error=one_line(str(exc)))
    except ValueError as exc:  # FetchError and friends: already one line for the user
        return Decoded(error=one_line(str(exc)))
    except Exception as exc:  # a row per photo, whatever reading throws
        return Decoded(error=one_line(f"{item.name}: could not be read ({type(exc).__name__}: {exc})"))
    return decode_photo(data, item.name, size, squish=squish)


def decode_photo(source: bytes | Path, name: str, size: int, *, squish: bool = True) -> Decoded:
    """Decode one photo's bytes (or file) as `decode_item` does: the one way a photo becomes the pixels
    prediction sees, whether it came from a folder, a zip, a URL or the classify page."""
    try:
        photo = load_photo(source, name=name, target_size=size)
        image = (
            photo.image
            if photo.image.size == (size, size) or not squish
            else photo.image.resize((size, size), Image.BILINEAR)
        )
        # np.array: a writable copy
        return Decoded(
            np.array(image), photo.taken, photo.camera, photo.location, sha256=photo_sha256(source)
        )
    except ImageError as exc:
        return Decoded(error=one_line(str(exc)))
    except MemoryError:
        return Decoded(error=f"{name}: not enough memory to decode this photo.")
    except Exception as exc:  # a row per photo, whatever Pillow throws
        return Decoded(error=one_line(f"{name}: could not be read ({type(exc).__name__}: {exc})"))


def photo_sha256(source: bytes | Path) -> str:
    """The SHA-256 of a photo's bytes (a file is read again: after decoding, from the page cache)."""
    return file_sha256(source) if isinstance(source, Path) else hashlib.sha256(source).hexdigest()


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's content, read in blocks."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
