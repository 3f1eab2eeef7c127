"""Learning a new park from a person's review: the teaching queue, a site's model fitted on kept embeddings,
the rest answered again, and `python -m train` on a reviewed file taking that path.

The first tests use made-up embeddings (a store in a temporary folder, a linear head of three classes
whose rows point at three directions): no network, fast. The last ones run a tiny linear-probe bundle
through the command lines, as a person would.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from classifier.models.embeddings import Embeddings, photo_keys
from classifier.models.heads import LinearScores, assign_folds
from classifier.models.site import SiteError, adapt, cross_validated, pictures, relabel
from classifier.models.verdict import Rules
from classifier.results.queue import teaching_order
from classifier.schema.rows import OK, PERSON, UNCERTAIN, Detection, Row

CLASSES = ("blue", "green", "red")
DIM = 8
MARGIN = 0.15


def direction(k: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[k] = 4.0
    return v + np.random.default_rng(seed).normal(0, noise, DIM).astype(np.float32)


def base_head() -> LinearScores:
    """Class i looks along axis i; axis 3 (a colour it never saw) means nothing to it."""
    weight = torch.zeros(3, DIM)
    for i in range(3):
        weight[i, i] = 1.0
    return LinearScores(weight, torch.zeros(3), torch.ones(()))


def photo(store: Embeddings, name: str, axis: int, seed: int, *, boxed: bool = True, **fields) -> Row:
    """A row of one photo whose box and frame the store keeps, looking along `axis`."""
    box = Detection(bbox=(0.1, 0.2, 0.3, 0.4), detector_conf=0.9)
    boxes = (box,) if boxed else None
    row = Row(path=f"{name}.jpg", status=OK, photo_sha256=f"sha-{name}", detections=boxes, **fields)
    store.put((key, direction(axis, 0.3, seed + n)) for n, key in enumerate(pictures(row, MARGIN)))
    return row


@pytest.fixture
def store(tmp_path: Path) -> Embeddings:
    return Embeddings(tmp_path / "kept.sqlite")


def test_kept_embeddings_are_found_by_photo_box_and_margin(store: Embeddings) -> None:
    keys = photo_keys("abc", [(0.1, 0.2, 0.3, 0.4)], MARGIN)
    store.put([(keys[0], np.ones(DIM)), (keys[1], np.zeros(DIM))])
    assert keys[1] == "abc:frame" and set(store.get(keys)) == set(keys)
    assert store.get(photo_keys("abc", [(0.1, 0.2, 0.3, 0.4)], 0.3)).keys() == {"abc:frame"}  # another cut
    [vector, nothing] = store.vectors([keys, photo_keys("other", [], MARGIN)])
    assert np.allclose(vector, 0.5) and nothing is None


def test_a_typed_class_is_learned_and_the_others_keep_what_the_base_knew(store: Embeddings) -> None:
    taught = [(photo(store, f"purple{i}", 3, i), "purple") for i in range(4)]
    taught += [(photo(store, f"red{i}", 2, 10 + i), "Red") for i in range(2)]  # a person's spelling
    site = adapt(base_head(), CLASSES, taught, store, MARGIN, name="park")
    assert site.classes == ("blue", "green", "purple", "red") and site.new_classes == ("purple",)
    assert site.photos == 6
    rules = Rules(site.classes, 0.5)
    new = relabel(photo(store, "purple-new", 3, 99), site, store, rules, MARGIN)
    assert (new.label, new.status, new.classified_by) == ("purple", OK, "park")
    blue = relabel(photo(store, "blue-new", 0, 98), site, store, rules, MARGIN)
    assert blue.label == "blue"  # no blue photo was reviewed: the base's row still answers


def test_nothing_to_learn_from_is_one_line(store: Embeddings) -> None:
    unknown = [(photo(store, "u", 0, 1), "unknown"), (photo(store, "b", 0, 2), "blank")]
    missing = [(Row(path="x.jpg", status=OK, photo_sha256="never-kept"), "red")]
    for taught in (unknown, missing):
        with pytest.raises(SiteError, match="label the batch again"):
            adapt(base_head(), CLASSES, taught, store, MARGIN)


def test_a_photo_with_nothing_kept_or_blank_is_not_answered_again(store: Embeddings) -> None:
    site = adapt(base_head(), CLASSES, [(photo(store, "r", 2, 1), "red")], store, MARGIN)
    rules = Rules(site.classes, 0.5)
    assert relabel(Row(path="y.jpg", status=OK, photo_sha256="nope"), site, store, rules, MARGIN) is None
    blank = photo(store, "blank", 0, 3, observation_type="blank")
    assert relabel(blank, site, store, rules, MARGIN) is None
    whole = relabel(photo(store, "whole", 2, 4, boxed=False), site, store, rules, MARGIN)
    assert whole.label == "red" and whole.detections is None  # a whole-frame bundle's row


def test_cross_validation_answers_each_photo_without_it(store: Embeddings) -> None:
    taught = [(photo(store, f"p{i}", 3, i), "purple") for i in range(3)]
    taught.append((photo(store, "r", 2, 7), "red"))
    classes, scores, fold = cross_validated(base_head(), CLASSES, taught, store, Rules(CLASSES, 0.5), MARGIN)
    assert classes == ("blue", "green", "purple", "red") and scores.shape == (4, 4)
    assert sorted(set(fold.tolist())) == [0, 1, 2]  # three purple photos: three folds
    assert [classes[int(s.argmax())] for s in scores[:3]] == ["purple"] * 3


def test_folds_adapt_to_few_photos() -> None:
    one_each = assign_folds(["a", "b", "c", "d"], 3, seed=1).tolist()
    assert sorted(one_each) == [0, 0, 1, 2]  # a photo a class still fills every fold
    assert sorted(set(assign_folds(["a", "b"], 5, seed=1).tolist())) == [0, 1]  # no more folds than photos
    stratified = assign_folds(["a"] * 3 + ["b"] * 3, 3, seed=1)
    assert sorted(stratified[:3].tolist()) == [0, 1, 2] == sorted(stratified[3:].tolist())


def test_the_queue_asks_one_photo_a_sequence_typical_first_then_what_looks_different() -> None:
    vectors = [direction(0, 0.1, s) for s in range(5)] + [direction(1, 0.1, 5), direction(2, 0.1, 6)]
    rows = [
        Row(path=f"{i}.jpg", status=UNCERTAIN, confidence=0.2, observation_type="animal") for i in range(7)
    ]
    rows[1].sequence_id = rows[2].sequence_id = "seq1"  # a burst: one of them
    rows[2].confidence = 0.1  # the less sure one is asked
    rows[3].classification_method = PERSON  # reviewed already
    order = teaching_order(rows, vectors, 4)
    assert order[0] in (0, 2, 4)  # the crowd along axis 0
    assert set(order[1:3]) == {5, 6}  # then the two that look like nothing before
    assert 1 not in order and 3 not in order and len(order) == 4
    assert teaching_order(rows, vectors, 10)[-1] == 1  # the burst's other photo, once every burst is asked
    assert teaching_order(rows, [None] * 7, 3) == []


# ---- through the command lines ---------------------------------------------------------------------


def read_rows(path: str) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def probe_bundle(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny colours as a linear probe (the serengeti recipe's kind of head)."""
    from conftest import cached_training

    return cached_training(
        "tinyprobe", tiny_dataset, tmp_path_factory, head="linear", linear_probe=True
    ).bundle


@pytest.fixture
def labelled(probe_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with photos/ (six purple, six red, ten minutes apart) and labels.csv, the probe's answers."""
    from test_retrain import purple_photo

    from classifier.cli import main as classifier_cli
    from conftest import make_tiny_image

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        purple_photo(i).save(photos / f"purple_{i}.jpg")
        make_tiny_image("red", seed=300 + i).save(photos / f"red_{i}.jpg")
    for number, path in enumerate(sorted(photos.iterdir())):  # ten minutes apart: a sequence each
        os.utime(path, (1_764_000_000 + 600 * number,) * 2)
    monkeypatch.chdir(tmp_path)
    assert classifier_cli(["predict", "--model", str(probe_bundle), "photos", "--out", "labels.csv"]) == 0
    return tmp_path


def test_the_review_page_retrains_in_place_and_undo_takes_it_back(probe_bundle: Path, labelled: Path) -> None:
    from classifier.models.bundles import read_bundle
    from classifier.models.embeddings import embeddings_for
    from classifier.models.predict import Predictor
    from classifier.models.runtimes import load_linear_head, load_model
    from classifier.models.verdict import rules_for
    from classifier.results.review import Photos, Review
    from classifier.results.teaching import Teacher

    bundle = read_bundle(probe_bundle)
    photos = Photos()
    photos.add((p.name, p.read_bytes()) for p in sorted((labelled / "photos").iterdir()))
    review = Review.from_file((labelled / "labels.csv").read_bytes(), name="labels.csv", photos=photos)
    store = embeddings_for(bundle)
    predictor = Predictor(load_model(bundle), embeddings=store)
    teacher = Teacher(
        bundle.name, bundle.classes, load_linear_head(bundle), store, rules_for(bundle, None), 0.15,
        predictor.predict_many,
    )  # fmt: skip
    order = teacher.order(review)
    assert len(order) == 12 and len({review.records[i].path for i in order}) == 12
    purple = [i for i, r in enumerate(review.records) if "purple" in r.path]
    for i in purple[:3]:
        review.relabel(i, "purple", by="ann")
    before = [r.label for r in review.records]
    taught = teacher.retrain(review)
    assert (taught.photos, taught.new_classes, taught.answered) == (3, ("purple",), 9)
    assert taught.changed >= 1 and taught.estimate is not None and taught.estimated_on == 3
    unseen = [review.records[i].label for i in purple[3:]]
    assert unseen.count("purple") >= 2, unseen  # the photos it had not seen: it learned purple
    assert review.undo() and [r.label for r in review.records] == before


def test_a_reviewed_batch_retrains_from_what_prediction_kept(probe_bundle: Path, labelled: Path) -> None:
    from classifier.cli import main as classifier_cli
    from classifier.models.bundles import read_bundle
    from train.__main__ import main as train_main

    queue = ["queue", "labels.csv", "--size", "4", "--out", "queue.csv", "--model", str(probe_bundle)]
    assert classifier_cli(queue) == 0
    asked = [r["path"] for r in read_rows("queue.csv")]
    assert len(asked) == 4
    rows = read_rows("labels.csv")
    taught = {"photos/purple_0.jpg", "photos/purple_1.jpg"} | {p for p in asked if "purple" in p}
    for row in rows:
        if row["path"] in taught:
            row.update(label="purple", classification_method="human", classified_by="ann")
    with open("reviewed.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    models = labelled / "models"
    argv = ["--data", "reviewed.csv", "--format", "csv", "--base-model", str(probe_bundle), "--name", "park"]
    # --rows reviewed: the tiny model is sure the purple photos are blue; its own sure answers would teach
    # that (by default they teach too: on a calibrated bundle, 9 in 10 are right)
    assert train_main([*argv, "--out-dir", str(models), "--rows", "reviewed"]) == 0
    bundle = read_bundle(models / "park")
    assert "purple" in bundle.classes and set(bundle.classes) >= {"blue", "green", "red"}
    report = bundle.report
    assert report["data"]["retrained_on_kept_embeddings"] and report["learning_curve"]
    assert report["embeddings"]["model"] == read_bundle(probe_bundle).model_sha256  # the same backbone
    assert classifier_cli(["predict", "--model", str(models / "park"), "photos", "--out", "again.csv"]) == 0
    again = {r["path"]: r for r in read_rows("again.csv")}
    unreviewed = [p for p in again if "purple" in p and p not in taught]
    assert unreviewed and all(again[p]["top_k"].startswith("purple:") for p in unreviewed)


def test_a_retrained_bundle_s_performance_page_shows_its_learning_curve(
    probe_bundle: Path, labelled: Path
) -> None:
    from streamlit.testing.v1 import AppTest

    from train.__main__ import main as train_main

    rows = read_rows("labels.csv")
    for row in rows:
        if row["path"] in ("photos/purple_0.jpg", "photos/purple_1.jpg", "photos/purple_2.jpg"):
            row.update(label="purple", classification_method="human", classified_by="ann")
    with open("reviewed.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    argv = ["--data", "reviewed.csv", "--format", "csv", "--base-model", str(probe_bundle), "--name", "park"]
    assert train_main([*argv, "--out-dir", str(labelled / "models"), "--rows", "reviewed"]) == 0
    app = AppTest.from_file(
        str(Path(__file__).resolve().parents[1] / "streamlit_app.py"), default_timeout=120
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WILDLIFE_MODELS_DIR", str(labelled / "models"))
        app.run()
        app.switch_page("app_pages/performance.py").run()
    assert not app.exception
    assert "Learning curve: what more review would give" in [s.value for s in app.subheader]
