"""Decode photos safely: any mode to RGB, EXIF orientation applied, bombs and broken files refused.

Every problem a user can meet with a file becomes an `ImageError` whose message is one line saying what
is wrong and what to do. Nothing here changes Pillow's process-wide settings.
"""

from __future__ import annotations

import base64
import io
import math
import stat
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

# 8K x 5K: far beyond any camera trap (12 MP) or phone (48 MP would be refused only when declared larger).
DEFAULT_MAX_PIXELS = 64_000_000
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".jfif", ".jpe"}
)
# The formats photos come in. Pillow can open some forty more; each is parsing code that only a hostile
# file would reach (EPS even hands the file to Ghostscript), so those are never tried.
READABLE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")  # JPEG includes MPO (phones)
# No photo file is bigger (an uncompressed 64-megapixel TIFF is 192 MB): a cap so that a named
# /dev/zero or a huge non-photo cannot fill the memory.
MAX_FILE_BYTES = 256 * 2**20

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_DATETIME = 0x0132
_MAKE = 0x010F
_MODEL = 0x0110

Source = bytes | str | Path


class ImageError(ValueError):
    """A photo that cannot be used, with a one-line reason a user can act on."""


@dataclass(frozen=True)
class Photo:
    image: Image.Image
    taken: datetime | None
    camera: str | None
    original_size: tuple[int, int]
    location: tuple[float, float] | None = None  # EXIF GPS (latitude, longitude) when the camera wrote it


def has_image_extension(name: str | Path) -> bool:
    return Path(str(name)).suffix.lower() in IMAGE_EXTENSIONS


def load_photo(
    source: Source,
    *,
    name: str | None = None,
    target_size: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Photo:
    """Decode `source` (bytes or a path) into an RGB photo with its EXIF date and camera.

    `target_size` lets JPEGs decode at a reduced scale (never below that size on either side): a 12 MP
    camera-trap frame fed to a 224-pixel model needs a fraction of the decoding work.
    """
    label = display_name(name or (Path(source).name if isinstance(source, str | Path) else "the photo"))
    data = _read_bytes(source, label)
    with _open(data, label, max_pixels) as im:
        original_size = im.size
        _refuse_bombs(im, label, max_pixels)
        if target_size and im.format == "JPEG":
            im.draft("RGB", (target_size, target_size))
        taken, camera, location = _exif_facts(im)
        rgb = _decode_rgb(im, label, max_pixels)
    return Photo(image=rgb, taken=taken, camera=camera, original_size=original_size, location=location)


def open_image(source: Source, **options: object) -> Image.Image:
    """The RGB image alone; see `load_photo` for the options."""
    return load_photo(source, **options).image  # type: ignore[arg-type]


def thumbnail_data_url(source: Source, size: int = 96) -> str | None:
    """A small JPEG of the photo as a `data:` URL for tables; None when the photo cannot be decoded."""
    try:
        image = load_photo(source, target_size=size).image
    except ImageError:
        return None
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def display_name(name: str) -> str:
    """`name` as messages show it: on one line, whatever characters a file or archive entry name holds."""
    return "".join(c if c.isprintable() else "?" for c in name)


def _read_bytes(source: Source, label: str) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        try:
            data = _read_file(Path(source), label)
        except FileNotFoundError:
            raise ImageError(f"{label}: file not found; check the path.") from None
        except OSError as exc:
            raise ImageError(
                f"{label}: cannot be read ({exc.strerror or exc}); check its permissions."
            ) from None
    if not data:
        raise ImageError(f"{label}: the file is empty (0 bytes); copy it again from its source.")
    if len(data) > MAX_FILE_BYTES:
        raise _too_big(label)
    return data


def _read_file(path: Path, label: str) -> bytes:
    # Judged by stat before opening: opening a FIFO blocks until something writes to it.
    facts = path.stat()
    if stat.S_ISDIR(facts.st_mode):
        raise ImageError(f"{label}: is a folder, not a photo.")
    if not stat.S_ISREG(facts.st_mode):
        raise ImageError(f"{label}: not a regular file (a device, pipe or socket); name a photo file.")
    if facts.st_size > MAX_FILE_BYTES:
        raise _too_big(label)
    with open(path, "rb") as handle:
        return handle.read(MAX_FILE_BYTES + 1)  # a file still growing cannot get past the cap either


def _too_big(label: str) -> ImageError:
    return ImageError(
        f"{label}: larger than {MAX_FILE_BYTES // 2**20} MB, more than any photo file; "
        "save the photo as a JPEG first."
    )


def _open(data: bytes, label: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=READABLE_FORMATS)
    except UnidentifiedImageError:
        raise ImageError(
            f"{label}: not an image this app reads; use a JPEG, PNG, WebP, GIF, BMP or TIFF photo."
        ) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise _bomb(label, max_pixels) from None
    except Exception as exc:  # malformed headers raise many kinds of errors inside Pillow's plugins
        raise ImageError(f"{label}: not a readable image ({error_line(exc)}); use another copy.") from None


def _bomb(label: str, max_pixels: int) -> ImageError:
    return ImageError(
        f"{label}: the image declares far more pixels than the {max_pixels:,}-pixel limit "
        "(a decompression bomb, or a damaged header); downscale the photo first."
    )


def _refuse_bombs(im: Image.Image, label: str, max_pixels: int) -> None:
    width, height = im.size
    if width < 1 or height < 1:
        raise ImageError(f"{label}: the image has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        raise ImageError(
            f"{label}: {width}x{height} pixels is more than the {max_pixels:,}-pixel limit; "
            "downscale the photo first."
        )


def _decode_rgb(im: Image.Image, label: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im.seek(0)  # first frame of animated GIF/WebP/TIFF
            im.load()
            oriented = ImageOps.exif_transpose(im) or im
            return _to_rgb(oriented)
    except OSError as exc:
        if "truncated" in str(exc).lower() or "broken data stream" in str(exc).lower():
            raise ImageError(
                f"{label}: the file is truncated (an incomplete download or copy); copy it again."
            ) from None
        raise ImageError(
            f"{label}: the image data is damaged ({error_line(exc)}); use another copy."
        ) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise _bomb(label, max_pixels) from None
    except Exception as exc:  # each plugin fails its own way; any one escaping would end a page's run
        raise ImageError(
            f"{label}: the image data is damaged ({error_line(exc)}); use another copy."
        ) from None


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im.copy()
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _high_depth_to_rgb(im)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        # Transparent areas become white, as a browser shows them, instead of whatever colour they hide.
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return im.convert("RGB")


def _high_depth_to_rgb(im: Image.Image) -> Image.Image:
    # Pillow's own convert clips 16-bit values at 255, which turns most 16-bit photos white.
    values = np.asarray(im, dtype=np.float64)
    top = 65535.0 if im.mode.startswith("I;16") or values.max() > 255 else 255.0
    if im.mode == "F":
        low, top = float(values.min()), float(values.max())
        values = values - low
        top = max(top - low, 1e-12)
    grey = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def _exif_facts(im: Image.Image) -> tuple[datetime | None, str | None, tuple[float, float] | None]:
    try:
        exif = im.getexif()
        stamp = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
        make = str(exif.get(_MAKE) or "").strip("\x00 ")
        model = str(exif.get(_MODEL) or "").strip("\x00 ")
    except Exception:  # EXIF is optional decoration: a damaged block must not cost the photo
        return None, None, None
    camera = (
        model if make and model.lower().startswith(make.lower()) else " ".join(p for p in (make, model) if p)
    )
    return _parse_exif_time(stamp), camera or None, gps_from_exif(exif)


def gps_from_exif(exif: Image.Exif) -> tuple[float, float] | None:
    """(latitude, longitude) in degrees from an EXIF block's GPS IFD; None when absent or unusable.

    Cameras without a fix often write 0/0 ("null island") or no hemisphere; neither is taken as a place.
    """
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        lat = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "N", "S", 90)
        lon = _degrees(
            gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "E", "W", 180
        )
    except Exception:  # a damaged GPS block costs the position, never the photo
        return None
    if lat is None or lon is None or (lat == 0.0 and lon == 0.0):
        return None
    return lat, lon


def _degrees(dms: Any, ref: Any, plus: str, minus: str, limit: float) -> float | None:
    ref = ref.decode("ascii", "replace") if isinstance(ref, bytes) else ref
    ref = ref.strip("\x00 ").upper() if isinstance(ref, str) else ""
    if ref not in (plus, minus) or not isinstance(dms, tuple) or not 1 <= len(dms) <= 3:
        return None
    parts = [float(v) for v in dms]  # IFDRational: 0/0 becomes nan, caught below
    value = sum(part / 60**i for i, part in enumerate(parts))
    if not math.isfinite(value) or any(p < 0 for p in parts) or value > limit:
        return None
    return -value if ref == minus else value


def _parse_exif_time(stamp: object) -> datetime | None:
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.strptime(stamp.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def one_line(text: str, limit: int = 300) -> str:
    """Text on one line (every run of white space one space), at most `limit` characters."""
    return " ".join(text.split())[:limit]


def error_line(exc: BaseException, limit: int = 120) -> str:
    """An exception as a short part of a one-line message: its first line, or its type when it has none."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return display_name(text[:limit])
