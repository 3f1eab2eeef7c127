"""Geography: country codes, lat/lon -> country offline, EXIF GPS from photos, and the geofence."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
from PIL import ExifTags, Image

from classifier.intake.images import gps_from_exif
from classifier.knowledge.geography import (
    DATA_DIR,
    UNKNOWN,
    GeographyError,
    country_at,
    country_table,
    parse_country,
    photo_location,
)
from classifier.knowledge.species import find_species_book, load_species_book
from classifier.knowledge.taxonomy import geofence
from tests.test_species import valid_book, write

GPS = ExifTags.GPS
NAIROBI = (-1.2921, 36.8219)
MADISON = (43.0731, -89.4012)  # Wisconsin


def dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees, rest = int(value), (abs(value) - int(value)) * 60
    return float(degrees), float(int(rest)), round((rest - int(rest)) * 60, 4)


def photo_with_gps(lat: float, lon: float, fmt: str = "JPEG", overrides: dict | None = None) -> bytes:
    """A generated photo whose EXIF GPS block says (lat, lon), written by Pillow as a camera would."""
    gps = {
        GPS.GPSLatitudeRef: "N" if lat >= 0 else "S",
        GPS.GPSLatitude: dms(lat),
        GPS.GPSLongitudeRef: "E" if lon >= 0 else "W",
        GPS.GPSLongitude: dms(lon),
        **(overrides or {}),
    }
    exif = Image.Exif()
    exif[ExifTags.IFD.GPSInfo] = {k: v for k, v in gps.items() if v is not None}
    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), (90, 120, 60)).save(buffer, fmt, exif=exif)
    return buffer.getvalue()


# ---- countries ---------------------------------------------------------------------------------------


def test_country_list_is_the_full_iso_list():
    rows = list(csv.DictReader((DATA_DIR / "countries.csv").open(encoding="utf-8")))
    assert len(rows) == 249 and len({r["alpha3"] for r in rows}) == 249
    table = country_table()
    assert (table["KEN"].alpha2, table["KEN"].name) == ("KE", "Kenya")
    assert {"TZA", "USA", "MYS", "GUF", "SJM"} <= table.keys()


@pytest.mark.parametrize(
    ("text", "code"), [("KEN", "KEN"), ("ken", "KEN"), (" usa ", "USA"), ("Kenya", "KEN")]
)
def test_parse_country(text, code):
    assert parse_country(text) == code


@pytest.mark.parametrize("bad", ["KNY", "", "Narnia", "K3N", None])
def test_bad_country_code_is_one_line_naming_examples(bad):
    with pytest.raises(GeographyError) as info:
        parse_country(bad)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert "alpha-3" in message and "KEN" in message and "USA" in message


def test_alpha2_code_gets_its_alpha3_named():
    with pytest.raises(GeographyError, match="KE is an alpha-2 code, its alpha-3 is KEN"):
        parse_country("ke")


# ---- latitude and longitude --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lon", "code"),
    [
        (-2.33, 34.83, "TZA"),  # Serengeti
        (*NAIROBI, "KEN"),
        (*MADISON, "USA"),
        (41.88, -87.63, "USA"),  # Chicago, on Lake Michigan's shore
        (5.4, 117.0, "MYS"),  # Sabah, Borneo
        (4.9, 114.9, "BRN"),
        (-29.5, 28.2, "LSO"),  # inside South Africa's hole
        (-26.2, 28.05, "ZAF"),
        (1.35, 103.82, "SGP"),
        (4.0, -53.0, "GUF"),  # French Guiana has its own ISO code
        (21.3, -157.85, "USA"),  # Hawaii
        (-17.8, 178.0, "FJI"),  # near the antimeridian
        (-1.30, 36.50, "KEN"),
    ],
)
def test_country_at(lat, lon, code):
    assert country_at(lat, lon) == code


def test_point_just_off_a_coast_takes_that_country_and_open_sea_none():
    assert country_at(-6.9, 39.35) == "TZA"  # a few km off Dar es Salaam
    assert country_at(0.0, 0.0) is None  # Gulf of Guinea
    assert country_at(-40.0, -30.0) is None  # South Atlantic


def test_where_simplified_neighbours_overlap_one_country_is_chosen():
    # The Kenya-Tanzania border near the coast: both simplified outlines hold these points
    assert country_at(-4.67, 39.18) in {"KEN", "TZA"}
    assert {country_at(-4.67, 39.18), country_at(-4.67, 39.19)} <= {"KEN", "TZA"}


@pytest.mark.parametrize(("lat", "lon"), [(91, 0), (0, 181), (float("nan"), 0), (0, float("inf")), ("1", 2)])
def test_bad_position(lat, lon):
    with pytest.raises(GeographyError, match="must be a number from"):
        country_at(lat, lon)


# ---- EXIF GPS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("where", "code"), [(NAIROBI, "KEN"), (MADISON, "USA")])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_generated_photo_with_gps_gives_the_right_country(tmp_path, where, code, fmt):
    path = tmp_path / f"trap.{fmt.lower()}"
    path.write_bytes(photo_with_gps(*where, fmt=fmt))
    lat, lon = photo_location(path)
    assert (lat, lon) == pytest.approx(where, abs=1e-4)
    assert country_at(lat, lon) == code
    assert photo_location(path.read_bytes()) == (lat, lon)
    with Image.open(path) as image:
        assert photo_location(image) == (lat, lon)


def test_photo_without_gps_or_unreadable_has_no_location(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG")
    assert photo_location(buffer.getvalue()) is None
    assert photo_location(b"not a photo at all") is None
    assert photo_location(photo_with_gps(*NAIROBI)[:40]) is None  # truncated inside the header
    assert photo_location(tmp_path / "missing.jpg") is None
    assert photo_location(tmp_path) is None  # a folder


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_pipe_is_never_opened(tmp_path):
    fifo = tmp_path / "trap.jpg"
    os.mkfifo(fifo)
    assert photo_location(fifo) is None  # returns at once instead of blocking on the pipe


@pytest.mark.parametrize(
    "overrides",
    [
        {GPS.GPSLatitudeRef: None},  # no hemisphere: the sign is unknown, so no position
        {GPS.GPSLongitudeRef: "Q"},
        {GPS.GPSLatitude: (95.0, 0.0, 0.0)},
        {GPS.GPSLatitude: (1.0, 2.0)},  # degrees and minutes only: still a position
    ],
)
def test_damaged_gps_blocks(overrides):
    with Image.open(io.BytesIO(photo_with_gps(*NAIROBI, overrides=overrides))) as image:
        found = gps_from_exif(image.getexif())
    if GPS.GPSLatitude in overrides and len(overrides[GPS.GPSLatitude]) == 2:
        assert found == pytest.approx((-(1 + 2 / 60), NAIROBI[1]), abs=1e-4)
    else:
        assert found is None


def test_null_island_is_no_position():
    assert photo_location(photo_with_gps(0.0, 0.0)) is None


# ---- the geofence ------------------------------------------------------------------------------------


@pytest.fixture
def book(tmp_path):
    """zebra (Kenya and Tanzania only), wildebeest (no range given), rodents (everywhere), forest (a habitat)."""
    data = valid_book()
    data["species"]["zebra"]["range"] = {"countries": ["KEN", "TZA"], "note": "East Africa."}
    data["species"]["wildebeest"].pop("range", None)
    data["species"]["rodents"]["range"] = {"countries": "all", "note": "Everywhere."}
    return load_species_book(write(tmp_path, data))


CLASSES = ["zebra", "wildebeest", "rodents", "forest"]


def test_without_a_place_nothing_changes(book):
    p = [0.6, 0.2, 0.15, 0.05]
    for result in (geofence(p, CLASSES, book, None), geofence(p, CLASSES, None, "USA")):
        assert result.probabilities == pytest.approx(p)
        assert (result.removed, result.geofenced, result.kept, result.unknown) == ((), None, 1.0, False)


def test_in_range_nothing_changes(book):
    result = geofence([0.6, 0.2, 0.15, 0.05], CLASSES, book, "ken")
    assert result.removed == () and result.country == "KEN" and result.best(CLASSES) == ("zebra", 0.6)


def test_removing_the_best_class_names_it_and_renormalises(book):
    result = geofence([0.6, 0.2, 0.15, 0.05], CLASSES, book, "USA")
    assert result.removed == ("zebra",)
    assert result.geofenced == "zebra"
    assert result.kept == pytest.approx(0.4)
    assert result.probabilities == pytest.approx([0.0, 0.5, 0.375, 0.125])
    assert sum(result.probabilities) == pytest.approx(1.0)
    assert result.best(CLASSES) == ("wildebeest", pytest.approx(0.5))


def test_removing_another_class_is_not_geofenced(book):
    result = geofence([0.1, 0.7, 0.15, 0.05], CLASSES, book, "USA")
    assert result.removed == ("zebra",) and result.geofenced is None


def test_class_without_range_or_with_all_is_never_removed(book):
    # wildebeest has no range, rodents `countries: all`, forest is a habitat, "okapi" has no notes at all
    for country in ("USA", "MYS", "ATA", "GRL"):
        result = geofence([0.25, 0.25, 0.25, 0.25, 0.0], [*CLASSES, "okapi"], book, country)
        assert set(result.removed) <= {"zebra"}


def test_nothing_left_is_unknown(tmp_path):
    otters = find_species_book("otters")
    result = geofence([0.7, 0.3], ["river_otter", "sea_otter"], otters, "KEN")
    assert result.unknown and result.geofenced == "river_otter"
    assert result.probabilities == (0.0, 0.0)
    assert result.best(["river_otter", "sea_otter"]) == (UNKNOWN, 0.0)


def test_geofence_refuses_a_bad_country_and_mismatched_lengths(book):
    with pytest.raises(GeographyError, match="alpha-3"):
        geofence([0.5, 0.5, 0.0, 0.0], CLASSES, book, "Atlantis")
    with pytest.raises(ValueError, match="3 probabilities for 4 classes"):
        geofence([0.5, 0.5, 0.0], CLASSES, book, "KEN")


def test_people_livestock_and_dogs_are_never_removed_anywhere():
    book = find_species_book("serengeti")
    always = ["human", "cattle", "other-bird", "rodents", "reptiles", "insect-spider", "bat"]
    for country in country_table():
        result = geofence([1 / 54] * 54, list(book.entries), book, country)
        assert not set(always) & set(result.removed), country


def test_serengeti_classes_in_tanzania_and_the_usa():
    book = find_species_book("serengeti")
    classes = list(book.entries)
    assert geofence([1 / 54] * 54, classes, book, "TZA").removed == ()  # every class lives in the Serengeti
    in_usa = geofence([1 / 54] * 54, classes, book, "USA").removed
    assert "zebra" in in_usa and "porcupine" in in_usa and "vulture" in in_usa and "hare" not in in_usa


def test_data_files_are_small():
    assert (DATA_DIR / "borders.npz").stat().st_size < 400_000
    assert Path(DATA_DIR / "countries.csv").stat().st_size < 10_000
