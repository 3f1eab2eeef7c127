"""Few-shot training: the linear probe with cross-validation, the ImageNet prior, and their prior file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from classifier.models.bundles import read_bundle
from classifier.models.network import ImageNetPrior, LinearHead
from classifier.models.predict import Predictor
from classifier.models.runtimes import load_model
from conftest import TINY_CLASSES, make_tiny_image, tiny_config, write_tiny_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def probe_bundle(tmp_path_factory: pytest.TempPathFactory):
    from train import train

    root = tmp_path_factory.mktemp("probe")
    data = write_tiny_dataset(root / "data", per_class=6)
    prior = root / "prior.yaml"
    prior.write_text("red: [tabby]\ngreen: [300-302]\n", encoding="utf-8")  # any ImageNet classes do
    config = tiny_config(
        data,
        root,
        name="probe",
        head="linear",
        linear_probe=True,
        cv_folds=2,
        probe_views=1,
        probe_l2=0.05,
        imagenet_prior=prior,
        threshold=0.4,
    )
    return train(config, quiet=True)


def test_probe_bundle_predicts_the_right_colour(probe_bundle) -> None:
    predictor = Predictor(load_model(read_bundle(probe_bundle.bundle)))
    for label in TINY_CLASSES:
        assert predictor.predict_image(make_tiny_image(label, seed=4242)).label == label


def test_cross_validated_report_predicts_every_photo_without_having_seen_it(probe_bundle) -> None:
    report = probe_bundle.report
    assert report["data"]["n_valid"] == report["data"]["n_train"] == 18
    assert report["data"]["split"].startswith("2-fold cross-validation")
    assert report["data"]["train_counts"] == dict.fromkeys(TINY_CLASSES, 6)  # the shipped head saw all
    assert sum(map(sum, report["confusion_matrix"])) == 18  # every photo, once
    assert [row["epoch"] for row in report["history"]] == [0, 1]  # one head per fold
    assert report["metrics"]["accuracy"] >= 0.9


def test_recipe_threshold_replaces_the_rule(probe_bundle) -> None:
    threshold = probe_bundle.report["threshold"]
    assert threshold["value"] == 0.4 and "--threshold" in threshold["rule"]
    assert read_bundle(probe_bundle.bundle).threshold == 0.4


def test_prior_scores_named_classes_and_gives_the_others_the_mean() -> None:
    classifier = nn.Linear(4, 1000)
    with torch.no_grad():
        classifier.weight.zero_()
        classifier.bias.zero_()
        classifier.bias[[5, 6, 9]] = torch.tensor([2.0, 2.0, -1.0])
    prior = ImageNetPrior(classifier, [[5, 6], [9], []])
    score = prior(torch.zeros(3, 4))
    expected_first = float(torch.logsumexp(torch.tensor([2.0, 2.0]), 0))
    assert score[0].tolist() == pytest.approx([expected_first, -1.0, (expected_first - 1.0) / 2])


def test_linear_head_with_prior_alone_follows_imagenet() -> None:
    """Zero linear weights: the prior decides, so the class whose ImageNet logit is highest wins."""
    classifier = nn.Linear(3, 1000)
    with torch.no_grad():
        classifier.weight.zero_()
        classifier.bias.zero_()
        classifier.weight[10] = torch.tensor([1.0, 0.0, 0.0])
        classifier.weight[20] = torch.tensor([0.0, 1.0, 0.0])
    head = LinearHead(3, 2, prior=ImageNetPrior(classifier, [[10], [20]]))
    nn.init.zeros_(head.linear.weight)
    nn.init.zeros_(head.linear.bias)
    maps = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])[:, :, None, None]
    assert head(maps).argmax(1).tolist() == [0, 1]


def test_fit_head_matches_the_labels_and_acts_on_raw_features() -> None:
    from train.probe import fit_head, predict_head

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 16)) * 5 + 100  # far from zero: the folded standardisation matters
    features = torch.tensor(
        np.concatenate([c + rng.normal(0, 1, (10, 16)) for c in centres]), dtype=torch.float32
    )
    labels = torch.arange(3).repeat_interleave(10)
    head = LinearHead(16, 3)
    fit_head(head, features, labels, l2=0.01, smoothing=0.1)
    assert (predict_head(head, features).argmax(1) == labels.numpy()).all()


def test_folds_spread_each_class_evenly() -> None:
    from classifier.models.heads import assign_folds

    labels = ["a"] * 3 + ["b"] * 3 + ["c"] * 4
    fold = assign_folds(labels, 3, seed=1)
    for label in "ab":
        assert sorted(fold[np.array(labels) == label]) == [0, 1, 2]
    assert sorted(fold[np.array(labels) == "c"]) in ([0, 0, 1, 2], [0, 1, 1, 2], [0, 1, 2, 2])


def test_serengeti_prior_file_resolves_every_name() -> None:
    import yaml

    from train.imagenet_prior import imagenet_names, read_prior

    path = REPO / "train" / "priors" / "serengeti.yaml"
    classes = sorted(yaml.safe_load(path.read_text(encoding="utf-8")))
    groups = dict(zip(classes, read_prior(path, classes), strict=True))
    names = imagenet_names()
    assert [names[i] for i in groups["zebra"]] == ["zebra"]
    assert 9 not in groups["other-bird"]  # the ostrich is its own class, not "other-bird"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zebra: [zebraa]", "zebra: 'zebraa': no such ImageNet class"),
        ("zebra: [crane]", "'crane': it names two classes, give its index"),
        ("okapi: [zebra]", "classes not in the data: okapi"),
        ("zebra: zebra", "zebra: expected a list"),
        ("zebra: [1200-1300]", "no such ImageNet class"),
        ("[zebra", "cannot read it"),
    ],
)
def test_prior_file_mistakes_are_refused_with_the_entry(tmp_path: Path, text: str, message: str) -> None:
    from train.imagenet_prior import read_prior
    from train.recipe import RecipeError

    path = tmp_path / "prior.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RecipeError, match=message.replace("[", r"\[").replace("(", r"\(")):
        read_prior(path, ["lion", "zebra"])


def test_recipe_refuses_few_shot_options_that_cannot_work() -> None:
    from train.recipe import RecipeError, TrainConfig, check

    with pytest.raises(RecipeError, match="need --head linear"):
        check(TrainConfig(data=Path("x"), linear_probe=True))
    with pytest.raises(RecipeError, match="--cv-folds needs --linear-probe"):
        check(TrainConfig(data=Path("x"), head="linear", cv_folds=3))
    with pytest.raises(RecipeError, match="--threshold"):
        check(TrainConfig(data=Path("x"), threshold=1.5))
