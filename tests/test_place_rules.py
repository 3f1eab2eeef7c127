"""Where and what, through prediction and the command line: a photo's place rules out the classes that do
not live there, and an answer under the cut-off rolls up to a rank that is sure."""

from __future__ import annotations

import csv
import io
import json
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from PIL import Image

from classifier import cli
from classifier.knowledge.species import load_species_book
from classifier.models.bundles import read_bundle
from classifier.models.predict import Predictor
from classifier.models.runtimes import load_model
from conftest import make_tiny_image, png

NAIROBI = (-1.2921, 36.8219)
DENVER = (39.7392, -104.9903)


def entry(name: str, genus: str, countries: list[str] | str) -> dict:
    return {
        "kind": "species",
        "common_name": name.title(),
        "scientific_name": f"{genus} {name}",
        "iucn": "LC",
        "population_trend": "stable",
        "description": "A generated colour.",
        "habitat": "Tests.",
        "diet": "Pixels.",
        "threats": "None.",
        "conservation": "None needed.",
        "taxonomy": {
            "class": "Mammalia",
            "order": "Carnivora",
            "family": "Felidae",
            "genus": genus,
            "species": f"{genus} {name}",
        },
        "range": {"countries": countries, "note": "Made up for the test."},
        "sources": [{"title": name, "url": f"https://example.org/{name}"}],
    }


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Notes for the tiny bundle: red lives only in the USA, blue only in Kenya, green everywhere; all
    three are cats (Felidae), and a family answer needs 0.6."""
    root = tmp_path_factory.mktemp("notes")
    book = {
        "bundle": "tiny",
        "title": "Tiny colours",
        "taxa": {"Felidae": "cat"},
        "rollup_thresholds": {"family": 0.6},
        "species": {
            "red": entry("red", "Rubra", ["USA"]),
            "blue": entry("blue", "Caerulea", ["KEN"]),
            "green": entry("green", "Viridis", "all"),
        },
    }
    (root / "tiny.yaml").write_text(yaml.safe_dump(book, sort_keys=False), encoding="utf-8")
    return root


def photo_at(path: Path, label: str, place: tuple[float, float] | None) -> Path:
    image = make_tiny_image(label, seed=5)
    exif = Image.Exif()
    if place:
        lat, lon = place
        gps = exif.get_ifd(0x8825)
        gps[1], gps[3] = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
        gps[2] = tuple(Fraction(v).limit_denominator(10_000) for v in _dms(abs(lat)))
        gps[4] = tuple(Fraction(v).limit_denominator(10_000) for v in _dms(abs(lon)))
    image.save(path, exif=exif)
    return path


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    return float(degrees), float(minutes), (value - degrees - minutes / 60) * 3600


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, dict[str, dict], str]:
    code = cli.main(args)
    out, err = capsys.readouterr()
    rows = {Path(r["path"]).name: r for r in csv.DictReader(io.StringIO(out))} if code == 0 else {}
    return code, rows, err


def test_a_photo_taken_where_its_best_class_does_not_live_gets_the_next_one(
    tiny_bundle, notes, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("WILDLIFE_SPECIES_DIR", str(notes))
    photo_at(tmp_path / "red_in_kenya.jpg", "red", NAIROBI)
    photo_at(tmp_path / "red_in_usa.jpg", "red", DENVER)
    photo_at(tmp_path / "red_nowhere.jpg", "red", None)
    code, rows, err = run_cli(["predict", "--model", str(tiny_bundle), str(tmp_path)], capsys)
    assert code == 0, err
    kenya, usa, nowhere = rows["red_in_kenya.jpg"], rows["red_in_usa.jpg"], rows["red_nowhere.jpg"]
    assert kenya["geofenced"] == "red" and kenya["label"] != "red"
    assert "red" not in kenya["top_k"]  # the place's classes alone, renormalised
    assert (usa["label"], usa["geofenced"]) == ("red", "")
    assert (nowhere["label"], nowhere["geofenced"]) == ("red", "")
    assert usa["rank"] == "species"


def test_a_country_given_applies_to_every_photo(tiny_bundle, notes, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("WILDLIFE_SPECIES_DIR", str(notes))
    photo_at(tmp_path / "red.jpg", "red", None)
    code, rows, _ = run_cli(
        ["predict", "--model", str(tiny_bundle), "--country", "ken", str(tmp_path)], capsys
    )
    assert code == 0 and rows["red.jpg"]["geofenced"] == "red"
    code, rows, _ = run_cli(
        ["predict", "--model", str(tiny_bundle), "--lat", "39.74", "--lon", "-104.99", str(tmp_path)], capsys
    )
    assert code == 0 and rows["red.jpg"]["label"] == "red"


def test_a_bad_country_code_is_one_line(tiny_bundle, notes, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("WILDLIFE_SPECIES_DIR", str(notes))
    photo_at(tmp_path / "red.jpg", "red", None)
    with pytest.raises(SystemExit) as caught:
        cli.main(["predict", "--model", str(tiny_bundle), "--country", "KE", str(tmp_path)])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert caught.value.code == 2 and "--country" in error and "KEN" in error


def test_without_notes_a_place_cannot_be_checked_and_says_so(
    tiny_bundle, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("WILDLIFE_SPECIES_DIR", str(tmp_path / "none"))
    photo_at(tmp_path / "red.jpg", "red", None)
    code, _, err = run_cli(
        ["predict", "--model", str(tiny_bundle), "--country", "KEN", str(tmp_path)], capsys
    )
    assert code == 1 and "no species notes for 'tiny'" in err and err.count("\n") == 1


def test_an_answer_under_the_cut_off_rolls_up_to_the_family(tiny_bundle, notes) -> None:
    book = load_species_book(notes / "tiny.yaml")
    predictor = Predictor(load_model(read_bundle(tiny_bundle)), threshold=0.999, book=book)
    row = predictor.predict_photo(png(make_tiny_image("green", seed=3)), name="frame.png")
    assert (row.label, row.rank, row.status) == ("cat (Felidae)", "family", "ok")
    assert row.confidence == pytest.approx(1.0, abs=1e-4)
    plain = Predictor(load_model(read_bundle(tiny_bundle)), threshold=0.999).predict_photo(
        png(make_tiny_image("green")), name="frame.png"
    )
    assert (plain.label, plain.rank, plain.status) == ("green", "", "uncertain")


def test_no_class_left_is_unknown(tiny_bundle, notes, tmp_path) -> None:
    data = yaml.safe_load((notes / "tiny.yaml").read_text())
    data["species"]["green"]["range"]["countries"] = ["USA"]
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    book = load_species_book(tmp_path / "tiny.yaml")
    predictor = Predictor(load_model(read_bundle(tiny_bundle)), book=book, country="FRA")
    row = predictor.predict_photo(png(make_tiny_image("green")), name="frame.png")
    assert (row.label, row.status) == ("unknown", "uncertain") and row.geofenced == "green"
    assert json.dumps(row.to_json())  # still writes
