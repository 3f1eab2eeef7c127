"""What the performance page reads off a report: confusions, weakest classes, the threshold point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifier.results import performance

REPORT = {
    "classes": ["lion", "leopard", "zebra"],
    "confusion_matrix": [[8, 2, 0], [5, 5, 0], [0, 1, 9]],
    "per_class": {
        "lion": {"precision": 0.62, "recall": 0.8, "f1": 0.7, "support": 10},
        "leopard": {"precision": 0.63, "recall": 0.5, "f1": 0.56, "support": 10},
        "zebra": {"precision": 1.0, "recall": 0.9, "f1": 0.95, "support": 10},
    },
    "metrics": {"accuracy": 0.733, "macro_f1": 0.74, "top3_accuracy": 1.0, "valid_loss": 0.6},
    "data": {"n_train": 90, "n_valid": 30},
    "history": [
        {"stage": "frozen", "epoch": 0, "train_loss": 1.2, "valid_loss": 1.0, "accuracy": 0.6},
        {"stage": "unfrozen", "epoch": 0, "train_loss": 0.8, "valid_loss": 0.6, "accuracy": 0.73},
    ],
    "threshold": {
        "value": 0.5,
        "curve": [
            {"threshold": 0.0, "coverage": 1.0, "accuracy": 0.73},
            {"threshold": 0.5, "coverage": 0.8, "accuracy": 0.85},
            {"threshold": 0.9, "coverage": 0.3, "accuracy": 1.0},
        ],
    },
}


def test_confusion_rows_are_actual_and_normalising_divides_by_the_row() -> None:
    cells = performance.confusion_long(REPORT, normalise=True).set_index(["actual", "predicted"])["value"]
    assert cells[("leopard", "lion")] == pytest.approx(0.5)
    assert cells[("zebra", "zebra")] == pytest.approx(0.9)


def test_most_confused_pair_comes_first() -> None:
    confused = performance.most_confused(REPORT)
    assert confused.iloc[0].to_dict() == {"actual": "leopard", "predicted": "lion", "images": 5}
    assert len(confused) == 3  # only cells with mistakes


def test_per_class_table_puts_the_weakest_class_first() -> None:
    assert performance.per_class(REPORT)["class"].tolist() == ["leopard", "lion", "zebra"]


def test_history_numbers_epochs_across_stages() -> None:
    assert performance.history(REPORT)["step"].tolist() == [1, 2]


@pytest.mark.parametrize(("threshold", "coverage"), [(0.5, 0.8), (0.7, 0.8), (0.95, 0.3), (0.0, 1.0)])
def test_coverage_at_a_threshold_uses_the_nearest_cut_off_below(threshold: float, coverage: float) -> None:
    assert performance.at_threshold(REPORT, threshold)["coverage"] == coverage


def test_comparison_has_a_column_per_model() -> None:
    table = performance.compare({"a": REPORT, "b": {**REPORT, "metrics": {"accuracy": 0.9}}})
    assert table.loc["accuracy"].tolist() == [0.733, 0.9]
    assert table.loc["classes"].tolist() == [3, 3]


def test_comparison_as_text_can_hold_numbers_and_names_in_one_column() -> None:
    table = performance.compare({"a": {**REPORT, "arch": "mobilenet_v2"}, "b": {}})
    shown = performance.as_text(table)
    assert shown.loc["accuracy"].tolist() == ["0.733", "–"]
    assert shown.loc["backbone", "a"] == "mobilenet_v2" and shown.loc["classes", "b"] == "0"
    assert all(isinstance(cell, str) for cell in shown.to_numpy().ravel())  # one type for the browser


def test_top_loss_images_are_only_those_on_disk_and_inside_the_dataset(tmp_path: Path) -> None:
    (tmp_path / "lion").mkdir()
    (tmp_path / "lion" / "a.jpg").write_bytes(b"x")
    report = {
        **REPORT,
        "data": {"source": str(tmp_path)},
        "top_losses": [
            {"file": "lion/a.jpg", "actual": "lion", "predicted": "leopard", "probability": 0.9},
            {"file": "lion/gone.jpg", "actual": "lion", "predicted": "zebra", "probability": 0.8},
            {"file": "../../etc/passwd", "actual": "lion", "predicted": "zebra", "probability": 0.7},
        ],
    }
    found = performance.top_loss_images(report)
    assert [loss["file"] for loss in found] == ["lion/a.jpg"]
    assert found[0]["path"] == (tmp_path / "lion" / "a.jpg").resolve()


RETRAINED = {
    **REPORT,
    "name": "lions-mara",
    "base_model": {
        "name": "serengeti",
        "model_sha256": "ab" * 32,
        "rows": 20,
        "left_out_rows": 5,
        "classes": ["leopard", "lion"],
        "new_classes": ["caracal-mara"],
        "dropped_classes": [f"class{i}" for i in range(10)],
        "metrics": {"accuracy": 0.6, "macro_f1": 0.55, "top3_accuracy": 0.9, "valid_loss": 1.2},
        "retrained_metrics": {"accuracy": 0.85, "macro_f1": 0.8, "top3_accuracy": 1.0, "valid_loss": 0.5},
        "per_class": {
            "lion": {"support": 10, "base_recall": 0.9, "recall": 0.7, "base_f1": 0.7, "f1": 0.65},
            "leopard": {"support": 10, "base_recall": 0.3, "recall": 1.0, "base_f1": 0.4, "f1": 0.9},
        },
    },
}


def test_base_comparison_puts_the_base_and_the_retrained_model_side_by_side() -> None:
    table = performance.base_comparison(RETRAINED)
    assert list(table.columns) == ["serengeti (base)", "lions-mara (retrained)", "change"]
    assert table.loc["accuracy"].tolist() == pytest.approx([0.6, 0.85, 0.25])
    assert table.loc["valid_loss", "change"] == pytest.approx(-0.7)


def test_base_per_class_shows_where_retraining_hurt_first() -> None:
    table = performance.base_per_class(RETRAINED)
    assert table["class"].tolist() == ["lion", "leopard"]
    assert table.loc[0, "f1_change"] == pytest.approx(-0.05)


def test_base_caption_says_what_was_compared_and_what_changed() -> None:
    caption = performance.base_caption(RETRAINED)
    assert "same 20 held-out photos" in caption and "2 classes both know" in caption
    assert "5 held-out photos of classes only this model has" in caption
    assert "caracal-mara" in caption and "class7 and 2 more" in caption


def test_reports_without_a_base_model_have_no_base_comparison() -> None:
    assert performance.base_comparison(REPORT) is None and performance.base_caption(REPORT) is None
    nothing_shared = {**RETRAINED, "base_model": {**RETRAINED["base_model"], "rows": 0, "metrics": None}}
    assert performance.base_comparison(nothing_shared) is None
    assert "no comparison" in performance.base_caption(nothing_shared)


# ---- in plain words ------------------------------------------------------------------------------------


def test_each_class_in_hundreds_best_named_first() -> None:
    table = performance.in_hundreds(REPORT, str.upper)
    assert table["class"].tolist() == ["ZEBRA", "LION", "LEOPARD"]
    assert table.iloc[0].tolist() == ["ZEBRA", 90, 100, 10]


def test_a_class_in_words_says_how_rough_a_figure_on_few_photos_is() -> None:
    said = performance.class_in_words(REPORT, "leopard", str.capitalize)
    assert said.startswith("Leopard: of 100 photos of it, the model names about **50** right (5 of the 10 it")
    assert "right about **63** times in 100" in said and "one photo more or less right moves it by 10" in said
    few = {"per_class": {"zebra": {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}}}
    assert "about **67** right (2 of the 3" in performance.class_in_words(few, "zebra")
    assert "not known" in performance.class_in_words(few, "lion")


def test_two_models_compare_only_on_the_same_photos() -> None:
    data = {"root": "../shared/data/intel", "split": "folders", "n_valid": 600}
    a = {"classes": ["sea", "forest"], "data": data}
    assert performance.same_photos(a, {"classes": ["sea", "forest"], "data": dict(data)})
    assert not performance.same_photos(a, {"classes": ["sea", "forest"], "data": {**data, "n_valid": 300}})
    assert not performance.same_photos(a, {"classes": ["sea", "forest"], "data": {**data, "root": "other"}})
    assert not performance.same_photos(a, {"classes": ["sea", "glacier"], "data": dict(data)})
    assert not performance.same_photos({"classes": ["a"]}, {"classes": ["a"]})  # nothing says which photos


def test_the_figures_from_other_parks_beside_its_own(tmp_path: Path) -> None:
    assert performance.read_transfer(tmp_path) is None
    transfer = {
        "frames": 319,
        "pooled": {"known_frames": 133, "named_right": 0.602, "sure_right": 0.929, "coverage": 0.285, "sure": 70},
        "projects": {
            "a": {"place": "Park A, USA", "known_frames": 44, "named_right": 0.614, "sure": 15, "sure_right": 0.733,
                  "coverage": 0.203},
            "b": {"place": "Thumbnails", "known_frames": 0, "named_right": 0.0, "sure": 0, "sure_right": 0.0,
                  "coverage": 0.0},
        },
    }  # fmt: skip
    (tmp_path / performance.TRANSFER_FILE).write_text(json.dumps(transfer))
    table = performance.here_and_elsewhere(REPORT, performance.read_transfer(tmp_path), 0.5).set_index("")
    assert table.loc["photos of an animal it knows, named right"].tolist() == ["73 of 100", "60 of 100"]
    assert table.loc["sure answers that are right"].tolist() == ["85 of 100", "93 of 100"]
    assert table.loc["photos answered sure (the rest go to a person)"].tolist() == ["80 of 100", "28 of 100"]
    projects = performance.projects_table(transfer)
    assert projects["project"].tolist() == ["Park A, USA", "Thumbnails"]
    assert projects.iloc[1].isna().tolist() == [False, False, True, True, False]  # no frame: no share
    (tmp_path / performance.TRANSFER_FILE).write_text("[]")
    with pytest.raises(ValueError, match=r"benchmarks/verdict\.py --bundle-figures"):
        performance.read_transfer(tmp_path)


def test_the_serengeti_bundle_keeps_its_figures_from_other_parks() -> None:
    transfer = performance.read_transfer(Path(__file__).resolve().parents[1] / "models" / "serengeti")
    assert transfer["pooled"]["named_right"] == pytest.approx(0.602)
    assert transfer["pooled"]["sure_right"] == pytest.approx(0.929)
    assert transfer["pooled"]["coverage"] == pytest.approx(0.285)
