"""The bundles shipped in models/: complete, small enough, documented, and right on their own data."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier.models.bundles import find_bundles, read_bundle
from classifier.models.predict import Predictor
from classifier.models.runtimes import load_model
from classifier.results.report import read_report
from conftest import SHARED_DATA

MODELS = Path(__file__).resolve().parents[1] / "models"
BUNDLES = ("serengeti", "habitat", "otters")
# Where each bundle's own photos are, under ../shared/data: the first photos of each class are checked.
OWN_DATA = {
    "serengeti": "camera_traps/snapshot_serengeti_fieldguide",
    "habitat": "intel/valid",  # never trained on
    "otters": "otters",
}
MAX_MODEL_BYTES = 30 * 1024 * 1024
# A model right 93% of the time misses a single photo of some class in one bundle out of three by
# chance; most of a class's first five is what a working model must get right, and a broken one cannot.
PHOTOS_PER_CLASS = 5


@pytest.mark.parametrize("name", BUNDLES)
def test_bundle_is_complete_small_and_has_a_model_card(name: str) -> None:
    folder = MODELS / name
    report = read_report(folder / "report.json")
    assert report["name"] == name
    assert (folder / "model.pkl").stat().st_size <= MAX_MODEL_BYTES
    card = (folder / "README.md").read_text(encoding="utf-8")
    for heading in ("Data", "Recipe", "Retrain", "Metrics", "Intended use", "Limits"):
        assert f"**{heading}" in card, f"{name} model card lacks {heading}"


def test_serengeti_is_the_default_bundle() -> None:
    assert find_bundles(MODELS)[0].name == "serengeti"


@pytest.mark.shared
@pytest.mark.parametrize("name", BUNDLES)
def test_bundle_names_most_photos_of_each_class_from_its_own_data(name: str) -> None:
    data = SHARED_DATA / OWN_DATA[name]
    if not data.is_dir():
        pytest.skip(f"no {data}")
    bundle = read_bundle(MODELS / name)
    predictor = Predictor(load_model(bundle))
    missed = {}
    for label in bundle.classes:
        photos = sorted(p for p in (data / label).iterdir() if p.is_file())[:PHOTOS_PER_CLASS]
        predicted = {p.name: predictor.predict_photo(p, name="photo").label for p in photos}
        wrong = {photo: got for photo, got in predicted.items() if got != label}
        if len(wrong) * 2 >= len(photos):
            missed[label] = wrong
    assert not missed, f"{name}: {missed}"
