"""Where a photo was taken, and which classes live there: country codes, lat/lon -> country, EXIF GPS, geofence.

Everything is offline. `data/countries.csv` is the ISO 3166-1 list (alpha-3, alpha-2, English short name).
`data/borders.npz` holds every ISO country's outline from Natural Earth's 1:10m admin-0 map (public domain),
simplified to about 2 km and rounded to 0.01 degree: 4,258 rings, 119,820 points, 270 kB on disk
(`data/build_borders.py` rebuilds both). A point is placed by the even-odd ray test against the rings whose
bounding box holds it; a point inside two (simplified neighbours overlap by a few km along a border)
goes to the one it lies deeper in, and a point just off a coast (a beach camera, an islet the
simplification dropped) to the nearest country within `NEAR_COAST_KM`. Measured on the project's 2-core
machine: loading the outlines takes 40-100 ms and holds 2.1 MB (5.5 MB at the peak of loading), once per
process; one lookup takes about 0.15 ms. Near a border the answer can be off by the few km of
simplification, which matters little for a species' range.

Which classes live in a country is the species notes' (`classifier.knowledge.taxonomy.geofence`).
"""

from __future__ import annotations

import csv
import functools
import io
import math
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from classifier.intake.images import READABLE_FORMATS, gps_from_exif

DATA_DIR = Path(__file__).resolve().parent / "data"
NEAR_COAST_KM = 25.0
UNKNOWN = "unknown"  # the label when the place leaves no class standing
_SCALE = 100  # borders.npz stores hundredths of a degree
_KM_PER_DEGREE = 111.32
SIMPLIFY_LEVELS = (0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)  # degrees, for maps drawn small


class GeographyError(ValueError):
    """A country code or position that cannot be used; `str()` is one line saying what to give instead."""


@dataclass(frozen=True)
class Country:
    alpha3: str
    alpha2: str
    name: str


@functools.cache
def country_table() -> dict[str, Country]:
    """Every ISO 3166-1 country by its alpha-3 code."""
    with (DATA_DIR / "countries.csv").open(encoding="utf-8", newline="") as file:
        return {
            row["alpha3"]: Country(row["alpha3"], row["alpha2"], row["name"]) for row in csv.DictReader(file)
        }


def parse_country(text: str) -> str:
    """The alpha-3 code for `text`: an alpha-3 code in any case ("ken") or a country's ISO short name."""
    table = country_table()
    cleaned = text.strip() if isinstance(text, str) else ""
    if cleaned.upper() in table:
        return cleaned.upper()
    by_name = {c.name.casefold(): c.alpha3 for c in table.values()}
    if cleaned.casefold() in by_name:
        return by_name[cleaned.casefold()]
    by_alpha2 = {c.alpha2: c.alpha3 for c in table.values()}
    hint = (
        f"; {cleaned.upper()} is an alpha-2 code, its alpha-3 is {by_alpha2[cleaned.upper()]}"
        if cleaned.upper() in by_alpha2
        else ""
    )
    shown = repr(text)[:40]
    raise GeographyError(
        f"unknown country {shown}: give an ISO 3166-1 alpha-3 code such as KEN, TZA or USA{hint}"
    )


# ---- latitude and longitude -> country ---------------------------------------------------------------


@dataclass(frozen=True)
class _Borders:
    codes: np.ndarray  # country code of each index
    ring_country: np.ndarray  # country index of each ring
    ring_start: np.ndarray  # ring i is coords[ring_start[i]:ring_start[i + 1]], closed
    coords: np.ndarray  # (n, 2) float64 lon, lat in hundredths of a degree
    boxes: np.ndarray  # (rings, 4) west, south, east, north


@functools.cache
def _borders() -> _Borders:
    with np.load(DATA_DIR / "borders.npz") as data:
        coords = np.cumsum(data["deltas"], axis=0).astype(np.float64)
        start = data["ring_start"].astype(np.int64)
        low = np.minimum.reduceat(coords, start[:-1], axis=0)
        high = np.maximum.reduceat(coords, start[:-1], axis=0)
        return _Borders(
            codes=data["codes"].astype(str),
            ring_country=data["ring_country"].astype(np.int64),
            ring_start=start,
            coords=coords,
            boxes=np.hstack([low, high]),
        )


def country_at(lat: float, lon: float) -> str | None:
    """The alpha-3 code of the country at a position, None at sea or where ISO has no code (Kosovo)."""
    _check_position(lat, lon)
    borders = _borders()
    x, y = lon * _SCALE, lat * _SCALE
    inside = _rings_holding(borders, x, y, margin=0.0)
    hits = sorted({int(c) for c in borders.ring_country[inside] if _odd_crossings(borders, inside, c, x, y)})
    if len(hits) > 1:  # simplified neighbours overlap by a few km along a border: the deepest one wins
        return str(borders.codes[max(hits, key=lambda c: _km_to_country(borders, c, x, y, lat))])
    if hits:
        return str(borders.codes[hits[0]])
    return _nearest_coast(borders, x, y, lat)


def outlines(west: float, south: float, east: float, north: float) -> list[np.ndarray]:
    """The country outlines (rings of (lon, lat) in degrees) whose bounding box meets the given box: what
    a map of places in that box draws, offline."""
    return [ring for _, ring in country_outlines(west, south, east, north)]


def country_outlines(
    west: float, south: float, east: float, north: float, tolerance: float = 0.0
) -> list[tuple[str, np.ndarray]]:
    """(alpha-3 code, ring of (lon, lat) in degrees) of every outline whose bounding box meets the given
    box. `tolerance` (degrees, rounded down to one of `SIMPLIFY_LEVELS`, so maps drawn again reuse the
    work) simplifies each ring (Ramer-Douglas-Peucker) for a map drawn small: a ring that shrinks below a
    triangle is left out, unless it is its country's largest."""
    borders = _borders()
    box = borders.boxes / _SCALE
    near = (box[:, 0] <= east) & (box[:, 2] >= west) & (box[:, 1] <= north) & (box[:, 3] >= south)
    level = max((step for step in SIMPLIFY_LEVELS if step <= tolerance), default=0.0)
    found = []
    for r in np.flatnonzero(near):
        ring = _simple_ring(int(r), level)
        if ring is not None:
            found.append((str(borders.codes[borders.ring_country[r]]), ring))
    return found


@functools.lru_cache(maxsize=4 * 4258)
def _simple_ring(index: int, level: float) -> np.ndarray | None:
    """Ring `index` in degrees simplified to `level`; None when it shrinks below a triangle and is not its
    country's largest."""
    borders = _borders()
    ring = _ring(borders, index) / _SCALE
    if level <= 0:
        return ring
    simple = _simplified(ring, level)
    if len(simple) >= 4:
        return simple
    return ring if _largest_rings()[borders.ring_country[index]] == index else None


def country_box(code: str) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) in degrees of a country's largest outline (its mainland: France without
    its overseas regions), None for a code without outlines."""
    borders = _borders()
    index = np.flatnonzero(borders.codes == code)
    if not len(index):
        return None
    west, south, east, north = borders.boxes[_largest_rings()[index[0]]] / _SCALE
    return float(west), float(south), float(east), float(north)


@functools.cache
def _largest_rings() -> np.ndarray:
    """For each country index, its ring with the largest bounding box."""
    borders = _borders()
    box = borders.boxes
    area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
    largest = np.full(len(borders.codes), -1, dtype=np.int64)
    for ring in np.argsort(area):  # smallest first: each country keeps the last, largest, one
        largest[borders.ring_country[ring]] = ring
    return largest


def _simplified(ring: np.ndarray, tolerance: float) -> np.ndarray:
    """The ring's points that keep its shape within `tolerance` (Ramer-Douglas-Peucker, without recursion)."""
    keep = np.zeros(len(ring), dtype=bool)
    keep[[0, -1]] = True
    spans = [(0, len(ring) - 1)]
    while spans:
        first, last = spans.pop()
        if last - first < 2:
            continue
        start, end, inner = ring[first], ring[last], ring[first + 1 : last]
        dx, dy = end - start
        length = math.hypot(dx, dy)
        if length == 0:
            far = np.hypot(*(inner - start).T)
        else:
            far = np.abs(dx * (inner[:, 1] - start[1]) - dy * (inner[:, 0] - start[0])) / length
        worst = int(np.argmax(far))
        if far[worst] > tolerance:
            middle = first + 1 + worst
            keep[middle] = True
            spans += [(first, middle), (middle, last)]
    return ring[keep]


def _check_position(lat: float, lon: float) -> None:
    for name, value, limit in (("latitude", lat, 90), ("longitude", lon, 180)):
        if not isinstance(value, int | float) or not math.isfinite(value) or abs(value) > limit:
            raise GeographyError(f"{name} must be a number from -{limit} to {limit} (got {value!r})")


def _rings_holding(borders: _Borders, x: float, y: float, margin: float) -> np.ndarray:
    box = borders.boxes
    near = (
        (box[:, 0] - margin <= x)
        & (x <= box[:, 2] + margin)
        & (box[:, 1] - margin <= y)
        & (y <= box[:, 3] + margin)
    )
    return np.flatnonzero(near)


def _odd_crossings(borders: _Borders, rings: np.ndarray, country: int, x: float, y: float) -> bool:
    """Even-odd rule over all of a country's rings that could matter (holes count like any ring)."""
    crossings = 0
    for ring in rings[borders.ring_country[rings] == country]:
        pts = _ring(borders, ring)
        (x0, y0), (x1, y1) = pts[:-1].T, pts[1:].T
        spans = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            cross_x = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        crossings += int(np.count_nonzero(spans & (x < cross_x)))
    return crossings % 2 == 1


def _nearest_coast(borders: _Borders, x: float, y: float, lat: float) -> str | None:
    """The country whose outline passes nearest a point at sea, if within NEAR_COAST_KM."""
    reach = NEAR_COAST_KM / _KM_PER_DEGREE * _SCALE / max(math.cos(math.radians(lat)), 0.05)
    rings = _rings_holding(borders, x, y, margin=reach)
    if not len(rings):
        return None
    km = [_km_to_ring(_ring(borders, r), x, y, lat) for r in rings]
    best = int(np.argmin(km))
    return str(borders.codes[borders.ring_country[rings[best]]]) if km[best] <= NEAR_COAST_KM else None


def _km_to_country(borders: _Borders, country: int, x: float, y: float, lat: float) -> float:
    """How far inside `country` the point lies: km to the nearest of its outlines whose box holds it."""
    rings = _rings_holding(borders, x, y, margin=0.0)
    return min(
        _km_to_ring(_ring(borders, r), x, y, lat) for r in rings[borders.ring_country[rings] == country]
    )


def _ring(borders: _Borders, ring: int) -> np.ndarray:
    return borders.coords[borders.ring_start[ring] : borders.ring_start[ring + 1]]


def _km_to_ring(pts: np.ndarray, x: float, y: float, lat: float) -> float:
    scale = np.array([math.cos(math.radians(lat)), 1.0]) * _KM_PER_DEGREE / _SCALE  # equirectangular
    a, b, p = pts[:-1] * scale, pts[1:] * scale, np.array([x, y]) * scale
    ab = b - a
    length2 = np.einsum("ij,ij->i", ab, ab)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.clip(np.where(length2 > 0, np.einsum("ij,ij->i", p - a, ab) / length2, 0.0), 0.0, 1.0)
    return float(np.min(np.linalg.norm(a + t[:, None] * ab - p, axis=1))) if len(ab) else math.inf


# ---- EXIF GPS ----------------------------------------------------------------------------------------


def photo_location(source: str | Path | bytes | Image.Image) -> tuple[float, float] | None:
    """(latitude, longitude) from a photo's EXIF GPS; None when it has none or cannot be read.

    Only the file's header is read (no pixels are decoded), and only the formats photos come in.
    """
    if isinstance(source, Image.Image):
        return gps_from_exif(source.getexif())
    try:
        if isinstance(source, bytes):
            handle: Any = io.BytesIO(source)
        elif stat.S_ISREG(Path(source).stat().st_mode):  # never open a pipe or device: that would block
            handle = Path(source)
        else:
            return None
        with Image.open(handle, formats=READABLE_FORMATS) as image:
            return gps_from_exif(image.getexif())
    except Exception:  # unreadable photo: no position (the classifier reports the photo's own error)
        return None
