"""`python -m train --processes N`: data-parallel training (fastai's distrib_ctx, gloo on this CPU)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from classifier.results.report import read_report
from conftest import TINY_CLASSES, make_tiny_image, tiny_config
from train.recipe import RecipeError, check


@pytest.mark.slow
def test_two_processes_write_a_bundle_as_good_as_one(
    tiny_dataset: Path, tiny_training, tmp_path: Path
) -> None:
    from classifier.models.bundles import read_bundle
    from classifier.models.predict import Predictor
    from classifier.models.runtimes import load_model
    from train import train

    result = train(tiny_config(tiny_dataset, tmp_path, processes=2), quiet=True)

    report = read_report(result.bundle / "report.json")
    one = tiny_training.report["metrics"]["accuracy"]
    assert report["metrics"]["accuracy"] >= min(one, 0.9)  # 0.9: the 1-process run's bound in test_train
    assert report["recipe"]["processes"] == 2 and report["data"]["n_train"] == 45
    assert [row["stage"] for row in report["history"]] == ["frozen"] * 4 + ["unfrozen"]
    assert sorted(p.name for p in result.bundle.iterdir()) == ["model.pkl", "report.json"]
    predictor = Predictor(load_model(read_bundle(result.bundle)))
    for label in TINY_CLASSES:
        for seed in range(3):
            assert predictor.predict_image(make_tiny_image(label, seed=seed)).label == label


@pytest.mark.slow
def test_a_bad_dataset_is_the_same_one_line_error_across_processes(tmp_path: Path) -> None:
    from classifier.intake.datasets import DatasetError
    from train import train

    with pytest.raises(DatasetError, match="no such file or folder"):
        train(tiny_config(tmp_path / "missing", tmp_path, processes=2), quiet=True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"processes": 0}, "--processes must be at least 1"),
        ({"processes": 2, "linear_probe": True, "head": "linear"}, "fine-tuning recipe only"),
    ],
)
def test_processes_the_recipe_cannot_use_are_refused(tmp_path: Path, changes: dict, message: str) -> None:
    config = dataclasses.replace(tiny_config(tmp_path, tmp_path), **changes)
    with pytest.raises(RecipeError, match=message):
        check(config)
