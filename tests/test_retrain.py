"""Retraining a bundle on a person's corrections: `python -m train --data corrected.csv --base-model ...`.

The corrections are what an ecologist would make: the tiny bundle labels a folder of generated photos
through the command line (one file is broken), a person relabels the purple ones, a colour the bundle
has never seen, as `purple`, and marks one photo `unknown`. The retrained bundle must name purple photos
it never saw, still name the old colours, and its report must put it beside the tiny bundle on the same
held-out photos.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from classifier.intake.datasets import Dataset, Record, read_dataset, split_dataset
from conftest import TINY_CLASSES, make_tiny_image, tiny_config

REVIEW = {"classification_method": "human", "classified_by": "ann", "classified_at": "2026-11-30T10:00:00"}
PURPLE_PHOTOS = 10
OLD_PHOTOS = 6  # of each tiny colour


def purple_photo(seed: int, size: int = 96) -> Image.Image:
    """A generated photo of a colour the tiny bundle does not know: purple, in rings of darker bands."""
    rng = np.random.default_rng([seed, 99])
    colour = np.array((150, 50, 170), dtype=np.float64) * rng.uniform(0.8, 1.1)
    canvas = np.broadcast_to(colour, (size, size, 3)) + rng.normal(0, 18, (size, size, 3))
    rows, columns = np.mgrid[0:size, 0:size]
    rings = (np.hypot(rows - size / 2, columns - size / 2) // (size // 8)).astype(int) % 2
    return Image.fromarray(np.clip(canvas * np.where(rings, 1.0, 0.6)[..., None], 0, 255).astype(np.uint8))


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def corrected(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`corrected.csv`: the tiny bundle's predictions (CLI) for photos/, reviewed as described above."""
    from classifier.cli import main as classifier_cli

    work = tmp_path_factory.mktemp("corrections")
    photos = work / "photos"
    photos.mkdir()
    taken = 1_764_000_000  # ten minutes apart, as a camera trap's triggers: one sequence each
    names = [(label, i) for label in TINY_CLASSES for i in range(OLD_PHOTOS)]
    names += [("purple", i) for i in range(PURPLE_PHOTOS)]
    for number, (label, i) in enumerate(names):
        path = photos / f"{label}_{i}.jpg"
        (purple_photo(i) if label == "purple" else make_tiny_image(label, seed=500 + i)).save(path)
        os.utime(path, (taken + 600 * number,) * 2)
    (photos / "broken.jpg").write_bytes(b"this is not a photo")
    here = Path.cwd()
    os.chdir(work)  # predict writes the paths as given: relative to the CSV's folder
    try:
        assert (
            classifier_cli(["predict", "--model", str(tiny_bundle), "photos", "--out", "predictions.csv"])
            == 0
        )
    finally:
        os.chdir(here)
    rows = list(csv.DictReader((work / "predictions.csv").open(encoding="utf-8")))
    for row in rows:
        name = Path(row["path"]).stem
        if name.startswith("purple"):
            row.update(label="purple", **REVIEW)
        elif name == "green_5":
            row.update(label="unknown", **REVIEW)
    return write_rows(work / "corrected.csv", rows)


@pytest.fixture(scope="module")
def retrained(corrected: Path, tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    from train import train

    out = tmp_path_factory.mktemp("retrained")
    config = tiny_config(
        corrected, out, base_model=str(tiny_bundle), name="tiny-purple", title="Tiny colours and purple"
    )
    return train(config, quiet=True)


def test_a_predictions_csv_from_the_cli_is_training_data(corrected: Path) -> None:
    rows = list(csv.DictReader(corrected.open(encoding="utf-8")))
    assert any(row["status"] == "error" for row in rows)  # the broken file
    dataset = read_dataset(corrected, "csv")
    assert dataset.classes == ["blue", "green", "purple", "red"]
    assert len(dataset.records) == 3 * OLD_PHOTOS + PURPLE_PHOTOS - 1  # all but the unknown one
    assert all(dataset.path(r).is_file() for r in dataset.records)  # relative to the CSV's folder
    assert [s["file"] for s in dataset.skipped] == ["photos/broken.jpg"]
    assert dataset.skipped[0]["reason"].startswith("predict could not read it: broken.jpg")
    assert dataset.left_out == {"labelled unknown": 1}
    reviewed = read_dataset(corrected, "csv", rows="reviewed")
    assert reviewed.classes == ["purple"]
    assert reviewed.left_out == {"not reviewed": 3 * OLD_PHOTOS - 1, "labelled unknown": 1}


def test_the_model_s_unreviewed_guesses_count_only_when_asked_and_blank_only_as_a_class(
    tmp_path: Path,
) -> None:
    photo = tmp_path / "a.jpg"
    make_tiny_image("red").save(photo)
    base = {"path": "a.jpg", "confidence": "0.4", "error": "", "top_k": "", "datetime": ""}
    rows = [
        {**base, "label": "red", "status": "ok"},
        {**base, "label": "green", "status": "uncertain"},  # not reviewed: the model was not sure
        {**base, "label": "blank", "status": "uncertain", **REVIEW},
        {**base, "label": "Empty", "status": "ok", **REVIEW},
    ]
    path = write_rows(tmp_path / "reviewed.csv", rows)
    sure = read_dataset(path)
    assert [r.label for r in sure.records] == ["red"]
    assert sure.left_out == {"uncertain and not reviewed": 1, "blank (the model has no blank class)": 2}
    everything = read_dataset(path, rows="all", blank="empty")
    assert [r.label for r in everything.records] == ["red", "green", "empty", "empty"]


def test_a_label_typed_with_commas_and_quotes_is_one_class(tmp_path: Path) -> None:
    typed = 'lion, "old male"'
    for i in range(2):
        make_tiny_image("red", seed=i).save(tmp_path / f"{i}.jpg")
    rows = [
        {"path": f"{i}.jpg", "label": typed, "confidence": "0.3", "status": "uncertain", **REVIEW}
        for i in range(2)
    ]
    dataset = read_dataset(write_rows(tmp_path / "typed.csv", rows), "csv")
    assert dataset.classes == [typed]


def test_labels_take_the_base_model_s_spelling_and_its_blank_class(tmp_path: Path) -> None:
    from train.data import load_training_data

    rows = []
    for i in range(4):
        for label, typed in (("red", "Red "), ("blue", "blank")):
            make_tiny_image(label, seed=i).save(tmp_path / f"{label}{i}.jpg")
            rows.append({"path": f"{label}{i}.jpg", "label": typed, "confidence": "0.9", "status": "ok"})
    path = write_rows(tmp_path / "c.csv", rows)
    base = SimpleNamespace(classes=["empty", "red", "zebra"], blank_class="empty")
    data = load_training_data(tiny_config(path, tmp_path, base_model="x"), base)
    assert data.classes == ["empty", "red"]  # zebra has no photo here: dropped
    kept = load_training_data(tiny_config(path, tmp_path, base_model="x", keep_base_classes=True), base)
    assert kept.classes == ["empty", "red", "zebra"]


def test_one_sequence_for_a_whole_folder_is_split_at_random() -> None:
    records = [Record(f"{label}{i}.jpg", label, sequence="seq00001") for label in "ab" for i in range(5)]
    dataset = Dataset(root=Path("."), format="csv", source="x.csv", records=records)
    assert split_dataset(dataset).method == "random"


def test_retrained_bundle_names_the_new_class_and_still_the_old_ones(retrained) -> None:
    from classifier.models.bundles import read_bundle
    from classifier.models.predict import Predictor
    from classifier.models.runtimes import load_model

    report = retrained.report
    assert report["classes"] == ["blue", "green", "purple", "red"]
    assert report["data"]["left_out"] == {"labelled unknown": 1}
    assert [s["file"] for s in report["skipped"]] == ["photos/broken.jpg"]
    predictor = Predictor(load_model(read_bundle(retrained.bundle)))
    for seed in range(9000, 9005):  # photos neither model has seen
        assert predictor.predict_image(purple_photo(seed)).label == "purple"
        for label in TINY_CLASSES:
            assert predictor.predict_image(make_tiny_image(label, seed=seed)).label == label


def test_report_compares_with_the_base_model_on_the_same_held_out_rows(retrained, tiny_bundle: Path) -> None:
    from classifier.models.bundles import read_bundle
    from classifier.models.predict import Predictor
    from classifier.models.runtimes import load_model
    from classifier.results.report import read_report

    report = read_report(retrained.bundle / "report.json")  # the schema holds, base_model included
    base = report["base_model"]
    tiny = read_bundle(tiny_bundle)
    assert (base["name"], base["model_sha256"]) == ("tiny", tiny.model_sha256)
    assert base["new_classes"] == ["purple"] and base["dropped_classes"] == []
    held_out_purple = report["per_class"]["purple"]["support"]
    assert base["rows"] + base["left_out_rows"] == report["data"]["n_valid"]
    assert base["left_out_rows"] == held_out_purple > 0
    assert sum(row["support"] for row in base["per_class"].values()) == base["rows"]
    # The same rows: every held-out photo is in top_losses here (fewer than 25); the tiny bundle,
    # predicting them on its own, scores what the report says it scored.
    assert len(report["top_losses"]) == report["data"]["n_valid"]
    root = Path(report["data"]["root"])
    old = [loss for loss in report["top_losses"] if loss["actual"] in TINY_CLASSES]
    predictor = Predictor(load_model(tiny))
    right = [predictor.predict_image(Image.open(root / loss["file"])).label == loss["actual"] for loss in old]
    assert base["metrics"]["accuracy"] == pytest.approx(np.mean(right))
    assert base["retrained_metrics"]["accuracy"] == 1.0


def test_performance_page_shows_the_retrained_bundle_beside_its_base(
    retrained, tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    shutil.copytree(tiny_bundle, tmp_path / "tiny")
    shutil.copytree(retrained.bundle, tmp_path / "tiny-purple")
    monkeypatch.setenv("WILDLIFE_MODELS_DIR", str(tmp_path))
    app = AppTest.from_file(
        str(Path(__file__).resolve().parents[1] / "streamlit_app.py"), default_timeout=120
    )
    app.session_state["model"] = "tiny-purple"  # what the sidebar's model picker sets
    app.switch_page("app_pages/performance.py").run()
    assert not app.exception
    assert app.title[0].value == "Model performance · Tiny colours and purple"
    assert any("Retrained from **tiny**" in m.value for m in app.markdown)
    tables = [frame.value for frame in app.dataframe]
    assert any(list(t.columns)[:2] == ["tiny (base)", "tiny-purple (retrained)"] for t in tables)


@pytest.mark.slow
def test_serengeti_retrains_by_its_own_recipe_and_keeps_its_imagenet_prior(tmp_path: Path) -> None:
    """The default bundle: linear probe with an ImageNet prior, EfficientNet-Lite2 at 260 px."""
    import torch

    from classifier.models.bundles import load_learner, read_bundle
    from train import train
    from train.command_line import config_from_args

    rows = []
    for i in range(6):  # generated, so the test needs no real photo: stand-ins for zebras and a new class
        make_tiny_image("blue", seed=i).save(tmp_path / f"z{i}.jpg")
        purple_photo(i).save(tmp_path / f"p{i}.jpg")
        rows += [
            {"path": f"z{i}.jpg", "label": "Zebra", "confidence": "0.2", "status": "uncertain", **REVIEW},
            {"path": f"p{i}.jpg", "label": "purple", "confidence": "0.2", "status": "uncertain", **REVIEW},
        ]
    path = write_rows(tmp_path / "corrected.csv", rows)
    out = ["--out-dir", str(tmp_path / "models"), "--runs-dir", str(tmp_path / "runs")]
    argv = ["--data", str(path), "--format", "csv", "--base-model", "serengeti", "--name", "s2", *out]
    config = config_from_args([*argv, "--keep-base-classes"])
    recipe = (
        config.backbone,
        config.head,
        config.sizes,
        config.linear_probe,
        config.cv_folds,
        config.threshold,
    )
    assert recipe == ("efficientnet_lite2", "linear", (260,), True, 3, 0.3)  # the base's own
    result = train(config, quiet=True)

    serengeti = load_learner(read_bundle(Path(__file__).resolve().parents[1] / "models" / "serengeti"))
    retrained = load_learner(read_bundle(result.bundle))
    old, new = list(serengeti.dls.vocab), list(retrained.dls.vocab)
    assert new == sorted([*old, "purple"])  # "Zebra" is the base's zebra; nothing dropped
    old_prior, new_prior = serengeti.model.head.prior.groups(), retrained.model.head.prior.groups()
    assert new_prior[new.index("purple")] == []  # a new class: scored neutrally by the prior
    assert all(new_prior[new.index(name)] == old_prior[i] for i, name in enumerate(old))
    # A class without photos here keeps its row: the probe's penalty pulls towards the base's rows.
    before = serengeti.model.head.linear.weight[old.index("giraffe")]
    after = retrained.model.head.linear.weight[new.index("giraffe")]
    assert torch.nn.functional.cosine_similarity(before, after, dim=0) > 0.9
    base = result.report["base_model"]
    assert base["rows"] == 6 and base["classes"] == ["zebra"] and base["new_classes"] == ["purple"]
    assert base["retrained_metrics"]["accuracy"] >= base["metrics"]["accuracy"]


def test_a_base_model_that_is_not_there_is_one_line_and_exit_status_2(
    corrected: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from train.__main__ import main

    argv = ["--data", str(corrected), "--base-model", "no-such-model", "--out-dir", str(tmp_path)]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: no model named 'no-such-model' (available: ") and "\n" not in error
    assert "serengeti" in error  # it names the ones there are


def test_options_given_win_over_the_base_recipe(tmp_path: Path) -> None:
    from train.command_line import config_from_args
    from train.recipe import RecipeError, check

    argv = ["--data", "x.csv", "--base-model", "serengeti", "--out-dir", str(tmp_path)]
    sgd = check(config_from_args([*argv, "--no-linear-probe", "--sizes", "224", "--threshold", "0.5"]))
    assert (sgd.linear_probe, sgd.cv_folds, sgd.sizes, sgd.threshold) == (False, 0, (224,), 0.5)
    assert sgd.backbone == "efficientnet_lite2" and sgd.probe_l2 == 0.5  # the rest is the base's
    with pytest.raises(RecipeError, match="keeps the base model's backbone"):
        config_from_args([*argv, "--backbone", "mobilenet_v2"])


def test_help_documents_the_retrain_options() -> None:
    from train.recipe import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "--base-model BASE_MODEL" in text and "(default: none: a new model)" in text
    assert (
        "--keep-base-classes" in text and "--rows {sure,reviewed,all}" in text and "(default: sure)" in text
    )
    assert "--blank-class" in text
