"""The export modules of `classifier.results` and `python -m classifier export`: each format re-read by its published rules.

Validators (test dependencies, offline):
- MegaDetector: the `megadetector-utils` package's own `validate_batch_results` (the validator the format's
  page links to), plus the spec's rules it does not check (boxes inside the image, classifications best
  first, `failure` rows with `detections: null`).
- Camtrap DP 1.0.2: `frictionless` validates the three CSVs (header order, types, required fields, enums,
  ranges, patterns, datetime format, primary and foreign keys) against the standard's published table
  schemas (the project's copies in `classifier/intake/camtrap_dp_schemas/`), the project's own validator
  (`classifier.intake.camtrap_dp_schema`) must agree, and `jsonschema` validates datapackage.json against
  the Camtrap DP part of the published profile (its generic Data Package and GeoJSON parts are remote
  `$ref`s, unreachable offline).
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import zipfile
from datetime import datetime
from pathlib import Path

import frictionless
import jsonschema
import pytest

from classifier import cli
from classifier.intake.camtrap_dp_schema import SCHEMA_DIR, TABLES, validate_tables
from classifier.results.camtrap_dp import MEDIA_FIELDS, OBSERVATION_FIELDS, write_camtrap_dp
from classifier.results.deployments import parse_deployments, read_deployments
from classifier.results.megadetector import megadetector_results
from classifier.results.taxa import load_taxa
from classifier.schema.predictions_file import (
    EXPORT_COLUMNS,
    CsvRows,
    ExportError,
    JsonRows,
    parse_predictions,
    read_predictions,
    write_csv,
)
from classifier.schema.rows import Row

SHARED_SCHEMAS = Path(__file__).resolve().parents[2] / "shared" / "camtrap-dp"
ODD = 'gazelle, "Thomson\'s"'  # a label with a comma, double quotes and an apostrophe


def predict_rows() -> list[Row]:
    """Rows as `python -m classifier predict` makes them: ok, uncertain, error, blank, the odd label."""
    taken = datetime(2024, 3, 1, 6, 10, 0)
    rows = [
        Row("traps/A/IMG_0001.JPG", "zebra", 0.9412, "ok", "", (("zebra", 0.9412), ("wildebeest", 0.03))),
        Row("traps/A/IMG_0002.JPG", ODD, 0.41, "uncertain", "", ((ODD, 0.41), ("impala", 0.33))),
        Row("traps/A/IMG_0003.JPG", ODD, 0.88, "ok", "", ((ODD, 0.88), ("impala", 0.1))),
        Row("traps/B/IMG_0004.JPG", error="IMG_0004.JPG: truncated file (cannot identify image)."),
        Row("traps/B/IMG_0005.JPG", "blank", 0.97, "ok", "", (("blank", 0.97),)),
    ]
    for i, row in enumerate(rows):
        if row.status != "error":
            row.datetime = taken.replace(second=i)
            row.camera = "RECONYX HC600" if "/A/" in row.path else ""
            row.sequence_id = "seq00001" if "/A/" in row.path else "seq00002"
    return rows


def write_predict_csv(path: Path, rows: list[Row], sequence_label: bool = False) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = CsvRows(stream, sequence_label)
        for row in rows:
            writer.write(row)
        writer.close()
    return path


def write_predict_json(path: Path, rows: list[Row]) -> Path:
    with open(path, "w", encoding="utf-8") as stream:
        writer = JsonRows(stream, False)
        for row in rows:
            writer.write(row)
        writer.close()
    return path


BOX = {"bbox": [0.1, 0.2, 0.3, 0.4], "detector_conf": 0.93, "label": "zebra", "confidence": 0.9}
BOX["top_k"] = [{"label": "zebra", "confidence": 0.9}, {"label": "wildebeest", "confidence": 0.07}]
SECOND_WAVE = [
    # A detector bundle: two zebras, reviewed by a person.
    {
        "path": "traps/A/IMG_0101.JPG", "label": "zebra", "confidence": "0.9000", "status": "ok",
        "datetime": "2024-03-02T07:00:00", "camera": "RECONYX HC600", "sequence_id": "seq00003",
        "observation_type": "animal", "count": "2", "rank": "species",
        "detections": json.dumps([BOX, {**BOX, "bbox": [0.6, 0.5, 0.4, 0.5], "detector_conf": 0.71}]),
        "classification_method": "human", "classified_by": "A. Ranger",
        "classified_at": "2024-04-01T10:00:00+00:00",
    },
    # The detector found nothing: a blank frame with an empty list.
    {
        "path": "traps/A/IMG_0102.JPG", "label": "blank", "confidence": "0.9900", "status": "ok",
        "datetime": "2024-03-02T07:00:05", "camera": "RECONYX HC600", "observation_type": "blank",
        "count": "0", "detections": "[]",
    },
    # A person, with the detector's category written out.
    {
        "path": "traps/B/IMG_0103.JPG", "label": "human", "confidence": "0.8000", "status": "ok",
        "datetime": "2024-03-02T09:00:00", "observation_type": "human", "count": "1",
        "detections": json.dumps([{**BOX, "label": "human", "category": "person", "top_k": []}]),
        "geofenced": "",
    },
    # A bundle without a detector writing the new columns as a whole-frame answer.
    {
        "path": "traps/B/IMG_0104.JPG", "label": "impala", "confidence": "0.6100", "status": "ok",
        "datetime": "2024-03-02T09:30:00", "observation_type": "animal", "count": "",
        "top_k": "impala:0.6100;gazelle-grants:0.2000", "geofenced": "springbok",
        "detections": json.dumps(
            [{"bbox": [0, 0, 1, 1], "detector_conf": None, "label": "impala", "confidence": 0.61, "top_k": []}]
        ),
    },
]  # fmt: skip


def write_second_wave_csv(path: Path) -> Path:
    # Columns in another order than EXPORT_COLUMNS, as another writer may choose.
    columns = ["path", "label", "confidence", "status", "error", "top_k", "datetime", "camera", "sequence_id"]
    columns += ["detections", "count", "observation_type", "rank", "geofenced", "classification_method"]
    columns += ["classified_by", "classified_at"]
    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(SECOND_WAVE)
    return path


@pytest.fixture
def species_dir(tmp_path) -> Path:
    """Notes in the layout with `taxonomy` for zebra, only `scientific_name` for impala, nothing for ODD."""
    folder = tmp_path / "species_info"
    folder.mkdir()
    (folder / "park.yaml").write_text(
        "bundle: park\ntitle: Park\nspecies:\n"
        "  zebra:\n    common_name: Plains zebra\n    scientific_name: Equus quagga\n"
        "    taxonomy: {class: Mammalia, order: Perissodactyla, family: Equidae, genus: Equus, species: quagga}\n"
        "  wildebeest:\n    common_name: Blue wildebeest\n    scientific_name: Connochaetes taurinus\n"
        "  impala:\n    common_name: Impala\n    scientific_name: Aepyceros melampus\n"
        "  human:\n    kind: group\n    common_name: Human\n",
        encoding="utf-8",
    )
    return folder


DEPLOYMENTS = (
    "deploymentID,locationName,latitude,longitude,folder,camera,timezone\n"
    "siteA,Seronera kopje,-2.4512,34.8231,traps/A,RECONYX HC600,+03:00\n"
    'siteB,"Moru, south",-2.7001,34.9102,traps/B,,Africa/Dar_es_Salaam\n'
)


@pytest.fixture
def deployments(tmp_path) -> Path:
    path = tmp_path / "deployments.csv"
    path.write_text(DEPLOYMENTS, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- validators


def megadetector_validator():
    """The megadetector-utils validator, imported without its side effect: its visualisation module sets
    Pillow's LOAD_TRUNCATED_IMAGES for the whole process, after which truncated photos decode as if
    whole (it failed the truncated-photo tests that ran after this file)."""
    from PIL import ImageFile

    before = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        from megadetector.postprocessing import validate_batch_results as module
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before
    return module.ValidateBatchResultsOptions, module.validate_batch_results


def assert_megadetector_valid(results: dict) -> None:
    """The megadetector package's validator, then the spec's rules it leaves to the reader."""
    ValidateBatchResultsOptions, validate_batch_results = megadetector_validator()
    options = ValidateBatchResultsOptions()
    options.raise_errors = True
    report = validate_batch_results(json.loads(json.dumps(results)), options)["validation_results"]
    assert report["errors"] == [] and report["warnings"] == [], report
    assert results["info"]["format_version"] == "1.6"
    assert results["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}
    for image in results["images"]:
        if image.get("failure"):
            assert image["detections"] is None
            continue
        lists = [d.get("classifications", []) for d in image["detections"]]
        lists.append(image.get("classifications", []))
        for det in image["detections"]:
            x, y, w, h = det["bbox"]
            assert 0 <= x <= 1 and 0 <= y <= 1 and 0 < w <= 1 - x + 1e-9 and 0 < h <= 1 - y + 1e-9
            assert 0 <= det["conf"] <= 1
        for ranked in lists:
            confidences = [c for _, c in ranked]
            assert confidences == sorted(confidences, reverse=True)
            assert all(cid in results["classification_categories"] for cid, _ in ranked)


def camtrap_dp_profile_rules(folder: Path = SCHEMA_DIR) -> dict:
    """The published profile's Camtrap DP rules: its `allOf` part that is not a remote `$ref`, with the
    `spatial` property's remote GeoJSON `$ref` left out (jsonschema would fetch both)."""
    profile = json.loads((folder / "camtrap-dp-profile.json").read_text(encoding="utf-8"))
    rules = next(part for part in profile["allOf"] if "$ref" not in part)
    rules["properties"]["spatial"].pop("$ref")
    return {"$schema": profile["$schema"], "$defs": profile["$defs"], **rules}


def assert_camtrap_dp_valid(package_zip: Path, into: Path, schemas: Path = SCHEMA_DIR) -> dict:
    """Unzip; datapackage.json against the profile, the CSVs with frictionless and the project's validator."""
    with zipfile.ZipFile(package_zip) as zf:
        assert sorted(zf.namelist()) == [
            "datapackage.json", "deployments.csv", "media.csv", "observations.csv"
        ]  # fmt: skip
        zf.extractall(into)
    descriptor = json.loads((into / "datapackage.json").read_text(encoding="utf-8"))
    jsonschema.validate(
        descriptor,
        camtrap_dp_profile_rules(schemas),
        format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER,
    )
    assert (
        descriptor["profile"]
        == "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/camtrap-dp-profile.json"
    )
    for resource in descriptor["resources"]:
        assert resource["schema"] == (
            f"https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/{resource['name']}-table-schema.json"
        )
    # frictionless would fetch the profile and schema URLs; offline it gets the same files from disk.
    local = json.loads(json.dumps(descriptor))
    local["profile"] = "tabular-data-package"
    for resource in local["resources"]:
        resource["schema"] = json.loads(
            (schemas / f"{resource['name']}-table-schema.json").read_text("utf-8")
        )
    report = frictionless.Package(local, basepath=str(into)).validate()
    problems = [f"{t.name}: {e.message}" for t in report.tasks for e in t.errors] + [
        e.message for e in report.errors
    ]
    assert report.valid, problems[:5]
    texts = {name: (into / f"{name}.csv").read_text(encoding="utf-8") for name in TABLES}
    assert [str(p) for p in validate_tables(texts)] == []
    return descriptor


def read_table(folder: Path, name: str) -> list[dict[str, str]]:
    with open(folder / f"{name}.csv", encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


# ---------------------------------------------------------------------------------------------- reading


def test_reads_what_predict_writes_as_csv_and_json_alike(tmp_path):
    rows = predict_rows()
    from_csv = read_predictions(write_predict_csv(tmp_path / "p.csv", rows)).records
    from_json = read_predictions(write_predict_json(tmp_path / "p.json", rows)).records
    assert [r.path for r in from_csv] == [r.path for r in rows]
    assert from_csv[1].label == ODD and from_csv[1].top_k[0] == (ODD, 0.41)
    assert from_csv[3].status == "error" and from_csv[3].error.startswith("IMG_0004.JPG")
    assert all(r.detections is None and r.whole_frame for r in from_csv)  # old file: no boxes
    assert [r.kind() for r in from_csv] == ["animal", "unknown", "animal", "unclassified", "blank"]
    for a, b in zip(from_csv, from_json, strict=True):
        assert (a.path, a.label, a.status, a.top_k, a.datetime, a.camera) == (
            b.path, b.label, b.status, b.top_k, b.datetime, b.camera
        )  # fmt: skip
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)


def test_reads_second_wave_columns_in_any_order(tmp_path):
    records = read_predictions(write_second_wave_csv(tmp_path / "new.csv")).records
    reviewed, blank, person, frame = records
    assert len(reviewed.boxes) == 2 and reviewed.count == 2 and reviewed.reviewed
    assert reviewed.boxes[0].top_k == (("zebra", 0.9), ("wildebeest", 0.07))
    assert reviewed.classified_by == "A. Ranger" and reviewed.classified_at.tzinfo is not None
    assert blank.detections == () and not blank.whole_frame and blank.kind() == "blank"
    assert person.boxes[0].category == "person"
    assert frame.whole_frame and frame.boxes == () and frame.geofenced == "springbok"


def test_second_wave_json_reads_like_the_csv(tmp_path):
    """JSON rows carry lists where the CSV has text: detections and top_k as lists, count a number."""
    rows = []
    for values in SECOND_WAVE:
        row = {k: v for k, v in values.items() if v != ""}
        row["confidence"] = float(row["confidence"])
        row["detections"] = json.loads(row["detections"])
        if "count" in row:
            row["count"] = int(row["count"])
        if "top_k" in row:
            row["top_k"] = [
                {"label": t.split(":")[0], "confidence": float(t.split(":")[1])}
                for t in row["top_k"].split(";")
            ]
        rows.append(row)
    (tmp_path / "new.json").write_text(json.dumps(rows), encoding="utf-8")
    from_json = read_predictions(tmp_path / "new.json").records
    assert from_json == read_predictions(write_second_wave_csv(tmp_path / "new.csv")).records


def test_csv_export_round_trips(tmp_path):
    for source in (
        write_predict_csv(tmp_path / "old.csv", predict_rows(), sequence_label=True),
        write_second_wave_csv(tmp_path / "new.csv"),
    ):
        first = read_predictions(source).records
        out = tmp_path / f"{source.stem}.export.csv"
        code = cli.main(["export", "--format", "csv", "--out", str(out), str(source)])
        assert code == 0
        with open(out, encoding="utf-8", newline="") as stream:
            header = next(csv.reader(stream))
        assert header == list(EXPORT_COLUMNS) and len(set(header)) == len(header)
        again = read_predictions(out).records
        assert again == first
        buffer = io.StringIO()
        write_csv(again, buffer)
        assert buffer.getvalue() == out.read_text(encoding="utf-8")  # a fixed point


def test_a_csv_from_another_tool_is_refused_in_one_line(tmp_path, capsys):
    other = tmp_path / "timelapse.csv"
    other.write_text("File,RelativePath,DateTime,Species,Count\nIMG_1.JPG,A,2024-01-01,zebra,2\n")
    with pytest.raises(ExportError) as caught:
        read_predictions(other)
    message = str(caught.value)
    assert "\n" not in message
    assert "missing columns path, label, confidence, status" in message
    assert "File, RelativePath" in message
    for fmt in ("csv", "megadetector", "camtrap-dp"):
        assert cli.main(["export", "--format", fmt, str(other)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "missing columns" in err
    assert not list(tmp_path.glob("timelapse.*.*"))  # nothing half-written


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"\xff\xfe\x00junk", "is not UTF-8"),
        (b'{"images": []}', "expected a JSON array of rows"),
        (b"[1, 2]", "row 1: expected an object"),
        (b'[{"path": "a.jpg"}]', "missing columns label, confidence, status"),
        (b"path,label,confidence,status\na.jpg,zebra,high,ok\n", "line 2: 'confidence' must be a number"),
        (b"path,label,confidence,status\na.jpg,zebra,0.5,maybe\n", "'status' must be ok, uncertain or error"),
        (b"path,label,confidence,status,detections\na.jpg,z,0.5,ok,[{\n", "'detections' is not valid JSON"),
        (
            b'path,label,confidence,status,detections\na.jpg,z,0.5,ok,"[{""bbox"": [0.5, 0, 0.9, 1]}]"\n',
            "inside the image",
        ),
        (b"path,label,confidence,status,datetime\na.jpg,z,0.5,ok,yesterday\n", "'datetime' must be an ISO"),
    ],
)
def test_unusable_values_are_refused_with_their_line(content, expected):
    with pytest.raises(ExportError) as caught:
        parse_predictions(content, name="p.csv")
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_label_with_commas_and_quotes_survives_every_format(tmp_path, deployments, species_dir):
    source = write_predict_csv(tmp_path / "p.csv", predict_rows())
    assert '"gazelle, ""Thomson\'s"""' in source.read_text(encoding="utf-8")  # quoted by the csv module
    records = read_predictions(source).records
    results = megadetector_results(records)
    assert ODD in results["classification_categories"].values()
    assert_megadetector_valid(results)
    taxa, _ = load_taxa([r.label for r in records], root=species_dir)
    result = write_camtrap_dp(
        records, tmp_path / "p.zip", deployments=read_deployments(deployments), taxa=taxa
    )
    assert_camtrap_dp_valid(tmp_path / "p.zip", tmp_path / "unzipped")
    observations = read_table(tmp_path / "unzipped", "observations")
    assert any(ODD in o["observationComments"] for o in observations)  # the uncertain row's best guess
    assert any(ODD in w for w in result.warnings)  # no scientific name for it: listed


# ------------------------------------------------------------------------------------------ MegaDetector


def test_megadetector_export_validates(tmp_path):
    records = read_predictions(write_predict_csv(tmp_path / "old.csv", predict_rows())).records
    records += read_predictions(write_second_wave_csv(tmp_path / "new.csv")).records
    warnings: list[str] = []
    results = megadetector_results(records, warnings=warnings)
    assert_megadetector_valid(results)
    images = {Path(i["file"]).name: i for i in results["images"]}
    names = results["classification_categories"]
    # Error rows are failures, with null detections.
    assert images["IMG_0004.JPG"]["failure"].startswith("IMG_0004.JPG: truncated")
    assert images["IMG_0004.JPG"]["detections"] is None
    # The detector's boxes, normalised [x, y, w, h]; the reviewed zebras carry the reviewer's label.
    zebras = images["IMG_0101.JPG"]["detections"]
    assert [d["bbox"] for d in zebras] == [[0.1, 0.2, 0.3, 0.4], [0.6, 0.5, 0.4, 0.5]]
    assert [(d["category"], d["conf"]) for d in zebras] == [("1", 0.93), ("1", 0.71)]
    assert [[names[c], p] for c, p in zebras[0]["classifications"]] == [["zebra", 1.0]]
    assert images["IMG_0103.JPG"]["detections"][0]["category"] == "2"  # person
    # A detector that found nothing: an empty list and nothing else.
    assert images["IMG_0102.JPG"]["detections"] == [] and "classifications" not in images["IMG_0102.JPG"]
    # Whole-frame answers: no box, the frame's ranking as an image-level list, and a warning.
    for name in ("IMG_0001.JPG", "IMG_0104.JPG"):
        assert images[name]["detections"] == []
        assert images[name]["classifications"]
    first = images["IMG_0001.JPG"]["classifications"]
    assert [[names[c], p] for c, p in first] == [["zebra", 0.9412], ["wildebeest", 0.03]]
    assert any("whole-frame answer and no detector box" in w for w in warnings)
    assert results["info"]["detector"] == "MegadetectorLite"


def test_megadetector_cli_and_taxonomy(tmp_path, species_dir, monkeypatch, capsys):
    monkeypatch.setenv("WILDLIFE_SPECIES_DIR", str(species_dir))
    source = write_second_wave_csv(tmp_path / "new.csv")
    assert cli.main(["export", "--format", "megadetector", str(source)]) == 0
    out = tmp_path / "new.megadetector.json"  # the default name, beside the predictions
    results = json.loads(out.read_text(encoding="utf-8"))
    assert_megadetector_valid(results)
    by_name = {v: k for k, v in results["classification_categories"].items()}
    descriptions = results["classification_category_descriptions"]
    assert set(descriptions) == set(results["classification_categories"])
    assert descriptions[by_name["zebra"]] == "mammalia;perissodactyla;equidae;equus;quagga"
    err = capsys.readouterr().err
    assert "4 photos written to" in err and "Warning: 1 photos have a whole-frame answer" in err


# -------------------------------------------------------------------------------------------- Camtrap DP


def test_camtrap_dp_export_validates(tmp_path, deployments, species_dir, capsys):
    old = read_predictions(write_predict_csv(tmp_path / "old.csv", predict_rows())).records
    new = read_predictions(write_second_wave_csv(tmp_path / "new.csv")).records
    both = tmp_path / "both.csv"
    with open(both, "w", encoding="utf-8", newline="") as stream:
        write_csv(old + new, stream)
    out = tmp_path / "package.zip"
    code = cli.main(
        ["export", "--format", "camtrap-dp", "--deployments", str(deployments), "--species",
         str(species_dir / "park.yaml"), "--out", str(out), str(both)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    package = assert_camtrap_dp_valid(out, tmp_path / "unzipped")
    media = read_table(tmp_path / "unzipped", "media")
    observations = read_table(tmp_path / "unzipped", "observations")
    deployments_rows = read_table(tmp_path / "unzipped", "deployments")
    assert [list(r) for r in media[:1]] == [list(MEDIA_FIELDS)]
    assert [list(r) for r in observations[:1]] == [list(OBSERVATION_FIELDS)]
    # The error row has no time (nothing could be read): left out, and said so.
    assert len(media) == 8 and "1 photos have no date and time" in err
    assert {d["deploymentID"]: d["deploymentStart"] for d in deployments_rows} == {
        "siteA": "2024-03-01T06:10:00+03:00",
        "siteB": "2024-03-01T06:10:04+03:00",  # Africa/Dar_es_Salaam
    }
    assert deployments_rows[1]["locationName"] == "Moru, south"
    by_path = {m["filePath"]: m for m in media}  # relative to the photos' common folder, stated
    assert package["mediaRoot"] == "traps" and "relative to traps" in package["description"]
    assert by_path["A/IMG_0001.JPG"]["fileMediatype"] == "image/jpeg"
    assert by_path["A/IMG_0001.JPG"]["filePublic"] == "false"

    def of(name: str) -> list[dict[str, str]]:
        media_id = next(m["mediaID"] for m in media if m["fileName"] == name)
        return [o for o in observations if o["mediaID"] == media_id]

    zebra = of("IMG_0001.JPG")[0]  # a whole-frame machine answer: no box, the frame's probability
    assert (zebra["observationType"], zebra["scientificName"], zebra["bboxX"]) == (
        "animal",
        "Equus quagga",
        "",
    )
    assert (zebra["classificationMethod"], zebra["classificationProbability"]) == ("machine", "0.9412")
    assert zebra["eventID"] == "seq00001" and zebra["observationLevel"] == "media"
    assert of("IMG_0002.JPG")[0]["observationType"] == "unknown"  # under the threshold
    assert of("IMG_0005.JPG")[0]["observationType"] == "blank"
    boxes = of("IMG_0101.JPG")  # two detector boxes, reviewed by a person
    assert [(o["bboxX"], o["bboxY"], o["bboxWidth"], o["bboxHeight"]) for o in boxes] == [
        ("0.1", "0.2", "0.3", "0.4"), ("0.6", "0.5", "0.4", "0.5")
    ]  # fmt: skip
    assert {
        (o["classificationMethod"], o["classifiedBy"], o["classificationProbability"]) for o in boxes
    } == {("human", "A. Ranger", "")}
    assert boxes[0]["classificationTimestamp"] == "2024-04-01T10:00:00Z"
    person = of("IMG_0103.JPG")[0]
    assert (person["observationType"], person["scientificName"]) == ("human", "")
    impala = of("IMG_0104.JPG")[0]  # whole-frame pseudo-box: no bbox; notes without taxonomy still name it
    assert (impala["bboxX"], impala["scientificName"]) == ("", "Aepyceros melampus")
    taxonomic = {t["scientificName"]: t for t in package["taxonomic"]}
    assert taxonomic["Equus quagga"] == {
        "scientificName": "Equus quagga", "taxonRank": "species", "class": "Mammalia",
        "order": "Perissodactyla", "family": "Equidae", "genus": "Equus",
        "vernacularNames": {"eng": "Plains zebra"},
    }  # fmt: skip
    assert package["contributors"] == [{"title": "A. Ranger", "role": "contributor"}]
    assert package["temporal"] == {"start": "2024-03-01", "end": "2024-03-02"}
    assert package["spatial"]["type"] == "Polygon"


def test_rolled_up_answers_keep_their_taxon_and_paths_stay_inside(tmp_path, species_dir):
    """Issue 25: a roll-up ("horse family (Equidae)") is a taxon with its rank, not an empty name; and
    photos named by '../' or absolute paths get a filePath under their common folder, stated in the package."""
    rows = [
        Row("../shared/data/traps/A/IMG_1.JPG", "horse family (Equidae)", 0.8, "ok"),
        Row("../shared/data/traps/A/IMG_2.JPG", "carnivore (Carnivora)", 0.7, "ok"),
        Row("../shared/data/traps/B/.hidden/IMG_3.JPG", "zebra", 0.9, "ok"),
    ]
    for i, (row, rank) in enumerate(zip(rows, ("family", "order", "species"), strict=True)):
        row.datetime, row.rank, row.observation_type = datetime(2024, 3, 1, 6, i), rank, "animal"
    (tmp_path / "d.csv").write_text("deploymentID,latitude,longitude,folder\nA,1,2,traps/A\nB,1,2,traps/B\n")
    taxa, _ = load_taxa(["zebra"], root=species_dir)
    records = [r for r in rows]
    write_camtrap_dp(records, tmp_path / "p.zip", deployments=read_deployments(tmp_path / "d.csv"), taxa=taxa)
    package = assert_camtrap_dp_valid(tmp_path / "p.zip", tmp_path / "unzipped")
    observations = read_table(tmp_path / "unzipped", "observations")
    assert [o["scientificName"] for o in observations] == ["Equidae", "Carnivora", "Equus quagga"]
    taxonomic = {t["scientificName"]: t for t in package["taxonomic"]}
    assert taxonomic["Equidae"] == {
        "scientificName": "Equidae", "taxonRank": "family", "class": "Mammalia", "order": "Perissodactyla",
        "vernacularNames": {"eng": "horse family"},
    }  # fmt: skip
    assert taxonomic["Carnivora"] == {
        "scientificName": "Carnivora", "taxonRank": "order", "vernacularNames": {"eng": "carnivore"}
    }  # fmt: skip
    media = read_table(tmp_path / "unzipped", "media")
    assert [m["filePath"] for m in media] == ["A/IMG_1.JPG", "A/IMG_2.JPG", "B/.hidden/IMG_3.JPG"]
    assert package["mediaRoot"] == "../shared/data/traps"
    rows[0].path = "/home/someone/photos/traps/A/IMG_1.JPG"
    rows[1].path = "/home/someone/photos/traps/A/../A/./IMG_2.JPG"
    rows[2].path = "https://example.org/traps/B/IMG_3.JPG"
    records = [r for r in rows]
    write_camtrap_dp(records, tmp_path / "q.zip", deployments=read_deployments(tmp_path / "d.csv"), taxa=taxa)
    package = assert_camtrap_dp_valid(tmp_path / "q.zip", tmp_path / "q")
    media = read_table(tmp_path / "q", "media")
    assert [m["filePath"] for m in media] == [
        "IMG_1.JPG", "IMG_2.JPG", "https://example.org/traps/B/IMG_3.JPG"
    ]  # fmt: skip
    assert package["mediaRoot"] == "/home/someone/photos/traps/A"


@pytest.mark.skipif(not SHARED_SCHEMAS.is_dir(), reason="needs ../shared/camtrap-dp")
def test_the_published_schemas_in_shared_validate_the_export(tmp_path, deployments):
    """The project's copies are the published files, and an export passes them as they are in ../shared."""
    published = [*SHARED_SCHEMAS.glob("*.json"), SHARED_SCHEMAS / "LICENSE"]
    assert len(published) == 5  # the profile, three table schemas, the licence (the README says more here)
    for path in published:
        assert (SCHEMA_DIR / path.name).read_bytes() == path.read_bytes(), path.name
    source = write_second_wave_csv(tmp_path / "new.csv")
    argv = [
        "export",
        "--format",
        "camtrap-dp",
        "--deployments",
        str(deployments),
        "--species",
        str(species_dir),
    ]
    assert cli.main([*argv[:-2], "--out", str(tmp_path / "p.zip"), str(source)]) == 0
    assert_camtrap_dp_valid(tmp_path / "p.zip", tmp_path / "unzipped", schemas=SHARED_SCHEMAS)


def test_camtrap_dp_needs_coordinates(tmp_path, capsys):
    source = write_predict_csv(tmp_path / "p.csv", predict_rows())
    assert cli.main(["export", "--format", "camtrap-dp", str(source)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "2 folder/camera groups (traps/A (camera RECONYX HC600); traps/B)" in err
    assert "--deployments FILE.csv with columns deploymentID, latitude, longitude, folder" in err
    assert not (tmp_path / "p.camtrap-dp.zip").exists()


@pytest.mark.parametrize(
    ("deployments", "expected"),
    [
        ("deploymentID,latitude,longitude\nd1,1,2\n", "missing columns folder"),
        ("deploymentID,latitude,longitude,folder\nd1,,2,traps\n", "needs a latitude and a longitude"),
        ("deploymentID,latitude,longitude,folder\nd1,91,2,traps\n", "latitude must be -90..90"),
        ("deploymentID,latitude,longitude,folder,timezone\nd1,1,2,traps,Mars/Olympus\n", "'timezone'"),
        ("deploymentID,latitude,longitude,folder\nd1,1,2,traps/A\nd1,1,2,traps/B\n", "given twice"),
        ("deploymentID,latitude,longitude,folder\nd1,1,2,traps/A\n", "match no deployment"),
        ("deploymentID,latitude,longitude,folder\nd1,1,2,traps\nd2,1,2,traps\n", "match both 'd1' and 'd2'"),
    ],
)
def test_bad_deployments_are_refused_in_one_line(tmp_path, capsys, deployments, expected):
    source = write_predict_csv(tmp_path / "p.csv", predict_rows())
    (tmp_path / "d.csv").write_text(deployments)
    code = cli.main(
        ["export", "--format", "camtrap-dp", "--deployments", str(tmp_path / "d.csv"), str(source)]
    )
    err = capsys.readouterr().err
    assert code == 1 and expected in err and err.count("\n") == 1


def test_relative_folder_matches_anywhere_and_camera_decides(tmp_path):
    rows = predict_rows()
    for row in rows:
        row.path = "/media/card/" + row.path
    records = [r for r in rows]
    (tmp_path / "d.csv").write_text(
        "deploymentID,latitude,longitude,folder,camera\n"
        "any,1,2,traps,\nreconyx,1,2,traps,RECONYX HC600\nb,1,2,/media/card/traps/B,\n"
    )
    result = write_camtrap_dp(records, tmp_path / "p.zip", deployments=read_deployments(tmp_path / "d.csv"))
    assert_camtrap_dp_valid(tmp_path / "p.zip", tmp_path / "unzipped")
    media = read_table(tmp_path / "unzipped", "media")
    assert {m["fileName"]: m["deploymentID"] for m in media} == {
        "IMG_0001.JPG": "reconyx", "IMG_0002.JPG": "reconyx", "IMG_0003.JPG": "reconyx", "IMG_0005.JPG": "b"
    }  # fmt: skip
    assert any("deployment 'any' has no photos" in w for w in result.warnings)
    assert any("have no timezone" in w for w in result.warnings)


def test_metadata_is_merged_into_the_package(tmp_path, deployments):
    source = write_predict_csv(tmp_path / "p.csv", predict_rows())
    metadata = tmp_path / "meta.json"
    metadata.write_text(
        json.dumps(
            {
                "title": "Serengeti 2024, season 1",
                "contributors": [{"title": "B. Biologist", "role": "principalInvestigator"}],
                "project": {"title": "Serengeti grid", "samplingDesign": "systematicRandom"},
                "licenses": [
                    {"name": "CC-BY-4.0", "scope": "data"},
                    {"name": "CC-BY-NC-4.0", "scope": "media"},
                ],
            }
        )
    )
    out = tmp_path / "p.zip"
    argv = [
        "export",
        "--format",
        "camtrap-dp",
        "--deployments",
        str(deployments),
        "--metadata",
        str(metadata),
    ]
    assert cli.main([*argv, "--out", str(out), str(source)]) == 0
    package = assert_camtrap_dp_valid(out, tmp_path / "unzipped")
    assert package["project"]["samplingDesign"] == "systematicRandom"
    assert package["project"]["observationLevel"] == ["media"]  # kept from the generated project
    assert package["contributors"][0]["role"] == "principalInvestigator"
    metadata.write_text('{"project": {"samplingDesign": "random-ish"}}')
    assert cli.main([*argv, "--out", str(out), str(source)]) == 1


# ------------------------------------------------------------------------------- missing photos, scale


def test_photos_need_not_be_on_disk(tmp_path, deployments):
    """Every row names a photo that does not exist here: exports read the predictions only."""
    source = write_second_wave_csv(tmp_path / "new.csv")
    records = read_predictions(source).records
    assert not any(Path(r.path).exists() or (tmp_path / r.path).exists() for r in records)
    assert cli.main(["export", "--format", "megadetector", str(source)]) == 0
    assert cli.main(["export", "--format", "camtrap-dp", "--deployments", str(deployments), str(source)]) == 0
    assert_camtrap_dp_valid(tmp_path / "new.camtrap-dp.zip", tmp_path / "unzipped")


def ten_thousand_rows(path: Path) -> Path:
    kinds = [
        dict(label="zebra", confidence="0.9100", status="ok", top_k="zebra:0.9100;topi:0.0500"),
        dict(label=ODD, confidence="0.3100", status="uncertain", top_k=f"{ODD}:0.3100;zebra:0.2000"),
        dict(label="blank", confidence="0.9800", status="ok", top_k="blank:0.9800"),
        dict(label="zebra", confidence="0.8800", status="ok", detections=json.dumps([BOX]), count="1"),
        dict(status="error", error="broken.jpg: truncated file."),
    ]
    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for i in range(10_000):
            values = dict(kinds[i % len(kinds)])
            values["path"] = f"traps/{'AB'[i % 2]}/IMG_{i:05d}.JPG"
            if values["status"] != "error":
                values["datetime"] = f"2024-03-{1 + i // 1000:02d}T{(i // 60) % 24:02d}:{i % 60:02d}:00"
            writer.writerow(values)
    return path


def test_ten_thousand_rows_export_in_seconds(tmp_path, deployments, capsys):
    source = ten_thousand_rows(tmp_path / "big.csv")
    (tmp_path / "d.csv").write_text(
        "deploymentID,latitude,longitude,folder,timezone\nA,1,2,traps/A,Z\nB,1,2,traps/B,Z\n"
    )
    timings = {}
    started = time.perf_counter()
    records = read_predictions(source).records
    timings["read"] = time.perf_counter() - started
    assert len(records) == 10_000
    for fmt, extra in (
        ("csv", []),
        ("megadetector", []),
        ("camtrap-dp", ["--deployments", str(tmp_path / "d.csv")]),
    ):
        started = time.perf_counter()
        assert cli.main(["export", "--format", fmt, *extra, str(source)]) == 0
        timings[fmt] = time.perf_counter() - started
    capsys.readouterr()
    with capsys.disabled():
        print("\n10,000 rows: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    # Generous: about 0.1-0.4 s each here, on 2 shared cores; a slow machine has 10x room.
    assert timings["read"] < 5 and max(timings[f] for f in ("csv", "megadetector", "camtrap-dp")) < 10
    results = json.loads((tmp_path / "big.megadetector.json").read_text(encoding="utf-8"))
    assert sum(1 for i in results["images"] if i.get("failure")) == 2_000
    assert_megadetector_valid(results)


def test_record_from_row_matches_the_file(tmp_path):
    rows = predict_rows()
    from_file = read_predictions(write_predict_csv(tmp_path / "p.csv", rows)).records
    in_memory = [r for r in rows]
    assert [r.path for r in in_memory] == [r.path for r in from_file]
    assert [r.kind() for r in in_memory] == [r.kind() for r in from_file]
    assert isinstance(in_memory[0], Row)


def test_a_spreadsheet_saved_with_semicolons_is_read(tmp_path):
    source = write_predict_csv(tmp_path / "p.csv", predict_rows())
    with open(source, encoding="utf-8", newline="") as stream:
        table = list(csv.reader(stream))
    semicolons = tmp_path / "excel.csv"
    with open(semicolons, "w", encoding="utf-8-sig", newline="") as stream:
        csv.writer(stream, delimiter=";", lineterminator="\r\n").writerows(table)
    assert read_predictions(semicolons).records == read_predictions(source).records


def test_a_reviewers_label_wins_in_both_formats(tmp_path, deployments, species_dir):
    """A reviewer renamed the frame (zebra -> wildebeest); the boxes still carry the machine's label."""
    row = {**SECOND_WAVE[0], "label": "wildebeest", "path": "traps/A/IMG_0201.JPG"}
    path = tmp_path / "reviewed.csv"
    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(row), lineterminator="\n")
        writer.writeheader()
        writer.writerow(row)
    records = read_predictions(path).records
    results = megadetector_results(records)
    names = results["classification_categories"]
    assert {names[d["classifications"][0][0]] for d in results["images"][0]["detections"]} == {"wildebeest"}
    taxa, _ = load_taxa(["wildebeest"], root=species_dir)
    write_camtrap_dp(records, tmp_path / "p.zip", deployments=read_deployments(deployments), taxa=taxa)
    assert_camtrap_dp_valid(tmp_path / "p.zip", tmp_path / "unzipped")
    observations = read_table(tmp_path / "unzipped", "observations")
    assert {o["scientificName"] for o in observations} == {"Connochaetes taurinus"}
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "p.zip").stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would make it


def test_photos_without_exif_time_use_the_files_time_when_here(tmp_path):
    folder = tmp_path / "card"
    folder.mkdir()
    (folder / "here.jpg").write_bytes(b"jpeg")
    os.utime(folder / "here.jpg", (1_700_000_000, 1_700_000_000))
    rows = [
        Row(str(folder / "here.jpg"), "zebra", 0.9, "ok"),
        Row(str(folder / "gone.jpg"), "zebra", 0.9, "ok"),
    ]
    (tmp_path / "d.csv").write_text(f"deploymentID,latitude,longitude,folder\nd1,1,2,{folder}\n")
    records = [r for r in rows]
    result = write_camtrap_dp(records, tmp_path / "p.zip", deployments=read_deployments(tmp_path / "d.csv"))
    assert_camtrap_dp_valid(tmp_path / "p.zip", tmp_path / "unzipped")
    media = read_table(tmp_path / "unzipped", "media")
    assert [(m["fileName"], m["timestamp"]) for m in media] == [("here.jpg", "2023-11-14T22:13:20Z")]
    assert any("1 photos have no EXIF date: their file's modification time" in w for w in result.warnings)
    assert any("1 photos have no date and time" in w and "gone.jpg" in w for w in result.warnings)


def test_tiny_and_edge_boxes_stay_valid(tmp_path, deployments):
    box = {"bbox": [0.99999, 0.4, 0.00001, 0.6004], "detector_conf": 0.5, "label": "zebra", "confidence": 0.5}
    row = {**SECOND_WAVE[0], "detections": json.dumps([box]), "classification_method": ""}
    records = parse_predictions(json.dumps([row]), name="edge.json").records
    assert_megadetector_valid(megadetector_results(records))
    write_camtrap_dp(records, tmp_path / "p.zip", deployments=read_deployments(deployments))
    assert_camtrap_dp_valid(tmp_path / "p.zip", tmp_path / "unzipped")
    observation = read_table(tmp_path / "unzipped", "observations")[0]
    assert (observation["bboxX"], observation["bboxWidth"], observation["bboxHeight"]) == (
        "0.99999",
        "0.00001",
        "0.6",
    )


def test_record_from_row_takes_the_pipelines_own_boxes(tmp_path):
    """Rows the app holds in memory carry `classifier.schema.rows.Detection`s; exports read them as a file's."""
    from classifier.schema.rows import Detection as PipelineBox

    row = Row("traps/A/IMG_0301.JPG", "zebra", 0.9, "ok", "", (("zebra", 0.9),), observation_type="animal")
    row.detections = (
        PipelineBox((0.1, 0.2, 0.3, 0.4), 0.93, "zebra", 0.9, (("zebra", 0.9),), "species", "ok"),
        PipelineBox((0.6, 0.1, 0.2, 0.5), 0.8, "human", 0.7, (("human", 0.7),), "", "ok"),
    )
    in_memory = row
    from_file = read_predictions(write_predict_csv(tmp_path / "p.csv", [row])).records[0]
    assert in_memory == from_file
    results = megadetector_results([in_memory])
    assert [d["category"] for d in results["images"][0]["detections"]] == ["1", "2"]
    assert_megadetector_valid(results)


def test_deployments_parsed_from_text_name_their_source():
    with pytest.raises(ExportError) as error:
        parse_deployments(b"deploymentID,latitude\nd1,1\n", name="upload.csv")
    assert str(error.value).startswith("upload.csv: missing columns longitude, folder ")
    assert [d.deployment_id for d in parse_deployments(DEPLOYMENTS)] == [
        d.deployment_id for d in parse_deployments(DEPLOYMENTS.encode("utf-8"), name="x")
    ]


def test_a_person_labelling_an_unreadable_photo_is_an_observation(tmp_path, deployments):
    rows = predict_rows()
    rows[3].label, rows[3].classification_method, rows[3].classified_by = "zebra", "human", "A. Ranger"
    rows[3].datetime = datetime(2024, 3, 1, 6, 10, 9)
    records = [r for r in rows]
    assert records[3].kind() == "animal" and records[4].kind() == "blank"
    assert megadetector_results(records)["images"][3]["failure"]  # the detector still could not read it
    write_camtrap_dp(records, tmp_path / "p.zip", deployments=read_deployments(deployments))
    assert_camtrap_dp_valid(tmp_path / "p.zip", tmp_path / "unzipped")
    observations = read_table(tmp_path / "unzipped", "observations")
    person = [o for o in observations if o["classifiedBy"] == "A. Ranger"]
    assert [(o["observationType"], o["classificationMethod"]) for o in person] == [("animal", "human")]
    assert "truncated" in person[0]["observationComments"]
