"""Camtrap DP in: the validator (`classifier.intake.camtrap_dp_schema`) names each problem a person can fix
in one line, and the reader (`classifier.intake.camtrap_dp_package`) reads folders and zips, including the
project's own exports, back as they were written."""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from classifier.intake.camtrap_dp_package import CamtrapDPError, parse_camtrap_dp, read_camtrap_dp
from classifier.intake.camtrap_dp_schema import TABLES, field_names, validate_tables
from classifier.results.camtrap_dp import write_camtrap_dp
from classifier.results.deployments import parse_deployments
from classifier.results.taxa import Taxon
from classifier.schema.rows import Detection, Row

START = datetime(2024, 3, 1, 6, 0, tzinfo=UTC)


def table_text(name: str, rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=field_names(name), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def good_tables() -> dict[str, list[dict[str, str]]]:
    """A tiny valid package: one deployment, two photos, an animal and a blank."""
    return {
        "deployments": [
            dict(deploymentID="d1", latitude="-2.45", longitude="34.82", deploymentStart="2024-03-01T00:00:00Z",
                 deploymentEnd="2024-03-11T00:00:00Z")
        ],
        "media": [
            dict(mediaID="m1", deploymentID="d1", timestamp="2024-03-02T06:00:00+03:00", filePath="A/1.jpg",
                 filePublic="false", fileMediatype="image/jpeg"),
            dict(mediaID="m2", deploymentID="d1", timestamp="2024-03-02T06:01:00+03:00", filePath="A/2.jpg",
                 filePublic="false", fileMediatype="image/jpeg"),
        ],
        "observations": [
            dict(observationID="o1", deploymentID="d1", mediaID="m1", eventStart="2024-03-02T06:00:00+03:00",
                 eventEnd="2024-03-02T06:00:00+03:00", observationLevel="media", observationType="animal",
                 scientificName="Equus quagga", count="2"),
            dict(observationID="o2", deploymentID="d1", mediaID="m2", eventStart="2024-03-02T06:01:00+03:00",
                 eventEnd="2024-03-02T06:01:00+03:00", observationLevel="media", observationType="blank"),
        ],
    }  # fmt: skip


def texts(tables: dict[str, list[dict[str, str]]]) -> dict[str, str]:
    return {name: table_text(name, rows) for name, rows in tables.items()}


# -------------------------------------------------------------------------------------------- validator


def test_a_valid_package_has_no_problems():
    assert validate_tables(texts(good_tables())) == []


@pytest.mark.parametrize(
    ("table", "row", "field", "value", "expected"),
    [
        ("media", 0, "filePath", "../photos/1.jpg", "media.csv line 2, filePath: '../photos/1.jpg' is not allowed"),
        ("media", 0, "filePath", "/home/me/1.jpg", "without '..'"),
        ("media", 1, "timestamp", "2024-03-02 06:01", "media.csv line 3, timestamp: '2024-03-02 06:01' is not a date"),
        ("media", 0, "filePublic", "yes", "write true or false"),
        ("media", 0, "fileMediatype", "jpeg", "such as image/jpeg"),
        ("observations", 0, "observationType", "animl", "write one of animal, human, vehicle, blank"),
        ("observations", 0, "count", "0", "observations.csv line 2, count: '0' is out of range: write a number of 1"),
        ("observations", 1, "observationLevel", "", "observations.csv line 3, observationLevel: is empty but required"),
        ("observations", 0, "bboxX", "1.5", "write a number from 0 to 1"),
        ("observations", 0, "mediaID", "m9", "observations.csv line 2, mediaID: 'm9' is no mediaID of media.csv"),
        ("observations", 1, "observationID", "o1", "'o1' is used again (first on line 2)"),
        ("deployments", 0, "latitude", "91", "deployments.csv line 2, latitude: '91' is out of range"),
        ("deployments", 0, "latitude", "-2,45", "is not a number"),
        ("deployments", 0, "deploymentEnd", "2024-02-01T00:00:00Z", "deploymentEnd: is before deploymentStart"),
        ("deployments", 0, "featureType", "road", "write one of roadPaved"),
    ],
)  # fmt: skip
def test_each_problem_is_one_line_naming_file_line_field_and_fix(table, row, field, value, expected):
    tables = good_tables()
    tables[table][row][field] = value
    problems = [str(p) for p in validate_tables(texts(tables))]
    assert len(problems) == 1, problems
    assert expected in problems[0] and "\n" not in problems[0]
    assert problems[0].rstrip().endswith(".")


def test_a_missing_column_is_one_problem_not_one_per_row():
    text = texts(good_tables())
    text["media"] = "\n".join(
        ",".join(c for i, c in enumerate(line.split(",")) if i != 3) for line in text["media"].splitlines()
    )  # the timestamp column dropped
    problems = [str(p) for p in validate_tables(text)]
    assert problems == ["media.csv, timestamp: column missing: add a column named timestamp and fill it in "
                        "(it is required)."]  # fmt: skip


# ----------------------------------------------------------------------------------------------- reader


def write_package(folder: Path, tables: dict[str, list[dict[str, str]]], **descriptor) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts(tables).items():
        (folder / f"{name}.csv").write_text(text, encoding="utf-8")
    meta = {
        "profile": "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.1/camtrap-dp-profile.json",
        "resources": [{"name": n, "path": f"{n}.csv", "profile": "tabular-data-resource"} for n in TABLES],
        "taxonomic": [{"scientificName": "Equus quagga", "taxonRank": "species"}],
        **descriptor,
    }
    (folder / "datapackage.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder


def zipped(folder: Path, out: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for path in folder.iterdir():
            zf.write(path, prefix + path.name)
    return out


def test_reads_a_folder_its_descriptor_and_a_zip_alike(tmp_path):
    folder = write_package(tmp_path / "pkg", good_tables())
    packages = [
        read_camtrap_dp(folder),
        read_camtrap_dp(folder / "datapackage.json"),
        read_camtrap_dp(zipped(folder, tmp_path / "a.zip")),
        parse_camtrap_dp(zipped(folder, tmp_path / "b.zip", prefix="season1/").read_bytes(), name="up.zip"),
    ]
    for package in packages:
        assert package.problems == [] and package.version == "1.0.1"
        assert (package.deployments, package.media, package.observations) == (
            packages[0].deployments, packages[0].media, packages[0].observations
        )  # fmt: skip
    first = packages[0]
    assert first.deployments[0]["latitude"] == -2.45
    assert first.observations[0]["count"] == 2 and first.observations[1]["count"] is None
    assert first.media[0]["timestamp"] == datetime(2024, 3, 2, 6, tzinfo=timezone(timedelta(hours=3)))
    assert first.media[0]["filePublic"] is False
    assert first.taxa["Equus quagga"]["taxonRank"] == "species"


def test_a_package_with_problems_is_read_and_says_them(tmp_path):
    tables = good_tables()
    tables["media"][1]["timestamp"] = "yesterday"
    package = read_camtrap_dp(write_package(tmp_path / "pkg", tables))
    assert package.media[1]["timestamp"] is None
    assert [str(p) for p in package.problems] == [
        "media.csv line 3, timestamp: 'yesterday' is not a date and time with its time zone: write the date "
        "and time with its time zone, as 2024-03-01T06:10:00Z or 2024-03-01T09:10:00+03:00."
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(profile="https://raw.githubusercontent.com/tdwg/camtrap-dp/0.1.6/camtrap-dp-profile.json"),
         "is Camtrap DP 0.1.6; this reads 1.0.x packages"),
        (lambda d: d["resources"].pop(), "lists no 'observations' resource"),
        (lambda d: d["resources"][0].update(path="../elsewhere/deployments.csv"), "leaves the package; refused"),
        (lambda d: d["resources"][0].update(path="https://example.org/deployments.csv"), "download it into"),
        (lambda d: d["resources"][1].update(path="missing.csv"), "missing.csv: not found"),
    ],
)  # fmt: skip
def test_what_cannot_be_read_is_refused_in_one_line(tmp_path, change, expected):
    folder = write_package(tmp_path / "pkg", good_tables())
    meta = json.loads((folder / "datapackage.json").read_text())
    change(meta)
    (folder / "datapackage.json").write_text(json.dumps(meta))
    with pytest.raises(CamtrapDPError, match=expected) as error:
        read_camtrap_dp(folder)
    assert "\n" not in str(error.value)


def test_not_a_package_is_refused_in_one_line(tmp_path):
    (tmp_path / "notes.zip").write_bytes(b"not a zip")
    with pytest.raises(CamtrapDPError, match="not a zip archive"):
        read_camtrap_dp(tmp_path / "notes.zip")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CamtrapDPError, match=r"no datapackage\.json; it is not a Camtrap DP package"):
        read_camtrap_dp(empty)
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as zf:
        zf.writestr("IMG_1.JPG", b"jpeg")
    with pytest.raises(CamtrapDPError, match=r"holds no datapackage\.json"):
        read_camtrap_dp(tmp_path / "photos.zip")


def test_the_projects_own_export_reads_back_as_written(tmp_path):
    """Round trip: records -> `export --format camtrap-dp` -> reader gives the same deployments, media and
    observations, with no problem, from the zip and from its unpacked folder alike."""
    deployments = parse_deployments(
        "deploymentID,latitude,longitude,folder,timezone,deploymentStart,deploymentEnd\n"
        "A,-2.4512,34.8231,traps/A,+03:00,2024-03-01T00:00:00,2024-03-08T12:00:00\n"
        "B,-2.7001,34.9102,traps/B,Z,,\n"
    )
    box = Detection((0.1, 0.2, 0.3, 0.4), 0.93, "zebra", 0.9)
    records = [
        Row("traps/A/1.jpg", "zebra", 0.94, "ok", datetime=datetime(2024, 3, 2, 6, 10), sequence_id="s1",
               observation_type="animal", count=1, detections=(box,), rank="species"),
        Row("traps/A/2.jpg", "cat (Felidae)", 0.7, "ok", datetime=datetime(2024, 3, 2, 22, 0), sequence_id="s2",
               observation_type="animal", rank="family"),
        Row("traps/B/3.jpg", "blank", 0.99, "ok", datetime=datetime(2024, 3, 3, 12, 0), observation_type="blank"),
        Row("traps/B/4.jpg", "zebra", 0.88, "ok", datetime=datetime(2024, 3, 4, 12, 0),
               classification_method="human", classified_by="A. Ranger"),
    ]  # fmt: skip
    taxa = {
        "zebra": Taxon(
            "Plains zebra", "Equus quagga", {"family": "Equidae", "genus": "Equus", "species": "quagga"}
        )
    }
    out = tmp_path / "season.zip"
    write_camtrap_dp(records, out, deployments=deployments, taxa=taxa, created=START, classified_at=START)
    package = read_camtrap_dp(out)
    assert package.problems == [] and package.version == "1.0.2"
    with zipfile.ZipFile(out) as zf:
        zf.extractall(tmp_path / "unzipped")
        written = {n: list(csv.DictReader(io.StringIO(zf.read(f"{n}.csv").decode()))) for n in TABLES}
        assert package.descriptor == json.loads(zf.read("datapackage.json"))
    unpacked = read_camtrap_dp(tmp_path / "unzipped")
    assert (unpacked.deployments, unpacked.media, unpacked.observations) == (
        package.deployments, package.media, package.observations
    )  # fmt: skip
    # Every written cell reads back: a text cell as it is, a number, date or flag as the value it writes.
    for name in TABLES:
        rows = getattr(package, name)
        assert len(rows) == len(written[name])
        for typed, text in zip(rows, written[name], strict=True):
            assert set(typed) == set(text)
            for key, value in typed.items():
                assert _text(value) == text[key], (name, key)
    east_africa = timezone(timedelta(hours=3))
    assert [m["timestamp"] for m in package.media] == [
        datetime(2024, 3, 2, 6, 10, tzinfo=east_africa), datetime(2024, 3, 2, 22, 0, tzinfo=east_africa),
        datetime(2024, 3, 3, 12, 0, tzinfo=UTC), datetime(2024, 3, 4, 12, 0, tzinfo=UTC),
    ]  # fmt: skip
    assert [(o["observationType"], o["scientificName"]) for o in package.observations] == [
        ("animal", "Equus quagga"), ("animal", "Felidae"), ("blank", None), ("animal", "Equus quagga")
    ]  # fmt: skip
    assert package.observations[0]["bboxWidth"] == 0.3 and package.observations[0]["count"] == 1
    assert package.deployments[0]["deploymentEnd"] == datetime(2024, 3, 8, 12, tzinfo=east_africa)
    assert package.deployments[1]["deploymentStart"] == datetime(2024, 3, 3, 12, tzinfo=UTC)  # first photo
    assert package.taxa["Felidae"] == {"scientificName": "Felidae", "taxonRank": "family",
                                       "vernacularNames": {"eng": "cat"}}  # fmt: skip
    shutil.rmtree(tmp_path / "unzipped")


def _text(value: object) -> str:
    """A typed value as the exporter writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return str(value)
