"""The evaluation report: numbers on hand-computed cases, the schema, reading and writing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, precision_recall_fscore_support

from classifier.results.report import (
    BUNDLE_SCHEMA,
    EVALUATION_SCHEMA,
    ReportError,
    evaluate,
    read_report,
    schema_problems,
    threshold_report,
    write_report,
)
from conftest import examples

CLASSES = ["cat", "dog", "fox"]
# Four images: cat->cat (0.9), cat->dog (0.6), dog->dog (0.8), fox->cat (0.5).
PROBS = np.array([[0.9, 0.05, 0.05], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.5, 0.2, 0.3]])
TARGETS = [0, 0, 1, 2]
FILES = ["/data/a/1.jpg", "/data/a/2.jpg", "/data/b/3.jpg", "/data/c/4.jpg"]


def small_report() -> dict:
    return evaluate(PROBS, TARGETS, CLASSES, FILES, root="/data")


def test_confusion_matrix_rows_are_actual_columns_predicted() -> None:
    matrix = small_report()["confusion_matrix"]
    assert matrix == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]  # the fox (row 2) was called a cat (column 0)


def test_metrics_by_hand_and_against_sklearn() -> None:
    report = small_report()
    metrics = report["metrics"]
    assert metrics["accuracy"] == pytest.approx(2 / 4)
    assert metrics["top3_accuracy"] == 1.0
    expected_loss = -(math.log(0.9) + math.log(0.3) + math.log(0.8) + math.log(0.3)) / 4
    assert metrics["valid_loss"] == pytest.approx(expected_loss)
    predicted = PROBS.argmax(axis=1)
    assert metrics["macro_f1"] == pytest.approx(
        f1_score(TARGETS, predicted, average="macro", zero_division=0)
    )
    precision, recall, f1, support = precision_recall_fscore_support(TARGETS, predicted, zero_division=0)
    for i, name in enumerate(CLASSES):
        row = report["per_class"][name]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (precision[i], recall[i], f1[i], support[i])
        )
    assert report["per_class"]["cat"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}


def test_top_k_counts_the_true_class_among_the_k_best() -> None:
    probs = np.array([[0.5, 0.3, 0.15, 0.05], [0.4, 0.3, 0.2, 0.1]])
    report = evaluate(probs, [2, 3], list("abcd"), ["x.jpg", "y.jpg"])
    assert report["metrics"]["top3_accuracy"] == 0.5


def test_top_losses_are_worst_first_and_relative_to_the_dataset_root() -> None:
    losses = small_report()["top_losses"]
    assert [row["file"] for row in losses[:2]] in (["a/2.jpg", "c/4.jpg"], ["c/4.jpg", "a/2.jpg"])
    assert losses[0] | {"actual": losses[0]["actual"]} == losses[0]
    fox = next(row for row in losses if row["file"] == "c/4.jpg")
    assert (fox["actual"], fox["predicted"], fox["probability"]) == ("fox", "cat", 0.5)
    assert [row["loss"] for row in losses] == sorted((row["loss"] for row in losses), reverse=True)


def test_threshold_curve_and_default_rule_on_a_hand_computed_case() -> None:
    threshold = small_report()["threshold"]
    by_cut = {point["threshold"]: point for point in threshold["curve"]}
    assert by_cut[0.0] == {"threshold": 0.0, "coverage": 1.0, "accuracy": 0.5}
    assert by_cut[0.55] == {"threshold": 0.55, "coverage": 0.75, "accuracy": pytest.approx(2 / 3)}
    assert by_cut[0.7] == {"threshold": 0.7, "coverage": 0.5, "accuracy": 1.0}
    assert max(by_cut) == 0.9  # nothing is left above the top confidence
    # The lowest cut-off that is >= 97% accurate: just above 0.6, where only the 0.8 and 0.9 remain.
    assert (threshold["value"], threshold["coverage"], threshold["accuracy"]) == (0.61, 0.5, 1.0)
    assert "97%" in threshold["rule"]


def test_threshold_falls_back_to_best_coverage_times_accuracy() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4]])
    result = threshold_report(probs, np.array([1, 0, 0]))  # the most confident image is wrong
    assert result["value"] == 0.0 and result["accuracy"] == pytest.approx(2 / 3)


@settings(max_examples=examples(80), deadline=None)
@given(
    st.integers(1, 40).flatmap(
        lambda n: st.tuples(
            st.lists(st.lists(st.floats(0.01, 1.0), min_size=3, max_size=3), min_size=n, max_size=n),
            st.lists(st.integers(0, 2), min_size=n, max_size=n),
        )
    )
)
def test_threshold_coverage_never_rises_with_the_cut_off(case: tuple) -> None:
    raw, targets = case
    probs = np.array(raw) / np.array(raw).sum(axis=1, keepdims=True)
    result = threshold_report(probs, np.array(targets))
    coverages = [point["coverage"] for point in result["curve"]]
    assert coverages[0] == 1.0 and coverages == sorted(coverages, reverse=True)
    assert all(0.0 <= point["accuracy"] <= 1.0 for point in result["curve"])
    assert result["value"] in [point["threshold"] for point in result["curve"]]


def test_evaluation_report_matches_its_schema() -> None:
    assert schema_problems(small_report(), EVALUATION_SCHEMA) == []


def test_schema_names_what_is_missing_or_wrong() -> None:
    report = small_report()
    del report["metrics"]["macro_f1"]
    report["confusion_matrix"] = [[1, 2]]
    report["top_losses"] = "none"
    problems = schema_problems(report, EVALUATION_SCHEMA)
    assert problems == ["metrics.macro_f1 is missing", "top_losses should be a list"]
    bundle_problems = schema_problems(small_report())
    assert "model_sha256 is missing" in bundle_problems and "history is missing" in bundle_problems
    shape = small_report()
    shape["confusion_matrix"] = [[1, 2]]
    assert schema_problems(shape, EVALUATION_SCHEMA) == [
        "confusion_matrix should be 3 x 3 (one row and column per class)"
    ]
    assert schema_problems([], EVALUATION_SCHEMA) == ["the report is not a JSON object"]


def test_write_and_read_round_trip_and_refusals(tmp_path: Path) -> None:
    report = small_report()
    report["metrics"]["valid_loss"] = np.float32(0.25)  # numpy numbers are written as JSON numbers
    path = write_report(report, tmp_path / "eval" / "report.json", EVALUATION_SCHEMA)
    assert read_report(path, EVALUATION_SCHEMA)["metrics"]["valid_loss"] == 0.25
    with pytest.raises(ReportError, match=r"report\.json: .*history is missing"):
        write_report(report, tmp_path / "report.json")
    with pytest.raises(ReportError, match="no report file"):
        read_report(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ReportError, match="not a readable JSON report"):
        read_report(tmp_path / "bad.json")
    (tmp_path / "partial.json").write_text(json.dumps({"classes": []}))
    with pytest.raises(ReportError, match="metrics is missing"):
        read_report(tmp_path / "partial.json", EVALUATION_SCHEMA)


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="do not match"):
        evaluate(PROBS, TARGETS[:2], CLASSES, FILES)


def test_tiny_bundle_report_is_a_complete_bundle_report(tiny_bundle: Path) -> None:
    report = read_report(tiny_bundle / "report.json", BUNDLE_SCHEMA)
    assert report["threshold"]["curve"][0]["threshold"] == 0.0
    assert sum(map(sum, report["confusion_matrix"])) == report["data"]["n_valid"]
