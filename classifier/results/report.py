"""The evaluation report: what a model gets right and wrong, in the schema of DESIGN.md.

`evaluate` turns predicted probabilities into the report's numbers; training adds how the model was made
(recipe, history, versions) and `python -m classifier evaluate` writes the same numbers for any labeled
data. `write_report` and `read_report` check the schema, so the app only ever reads complete reports.

The default confidence threshold (`threshold.value`) follows one documented rule, `THRESHOLD_RULE`: the
lowest cut-off at which the photos the model labels on its own are at least `TARGET_ACCURACY` (97%)
accurate, which is the cut-off that lets it label the most photos at that accuracy; when no cut-off
reaches it, the cut-off that maximises coverage x accuracy.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

TARGET_ACCURACY = 0.97
THRESHOLD_RULE = (
    f"lowest cut-off whose auto-labelled share is at least {TARGET_ACCURACY:.0%} accurate; "
    "if none is, the cut-off maximising coverage x accuracy"
)
THRESHOLD_GRID = tuple(round(i / 100, 2) for i in range(100))  # 0.00, 0.01, ..., 0.99
TOP_LOSSES = 25

_NUMBER = (int, float)
# Key -> expected type for every report; nested dicts list their own keys.
EVALUATION_SCHEMA: dict[str, Any] = {
    "classes": list,
    "metrics": {"accuracy": _NUMBER, "macro_f1": _NUMBER, "top3_accuracy": _NUMBER, "valid_loss": _NUMBER},
    "per_class": dict,
    "confusion_matrix": list,
    "threshold": {"value": _NUMBER, "curve": list},
    "top_losses": list,
}
# What `train` writes into models/<name>/report.json on top of the evaluation.
BUNDLE_SCHEMA: dict[str, Any] = {
    **EVALUATION_SCHEMA,
    "name": str,
    "title": str,
    "arch": str,
    "image_size": int,
    "created": str,
    "versions": dict,
    "data": {"source": str, "format": str, "n_train": int, "n_valid": int, "split": str},
    "history": list,
    "model_sha256": str,
    "recipe": dict,
    "lr_find": (dict, type(None)),
    "skipped": list,
}
# A retrained bundle's comparison with the bundle it started from, on the same held-out images.
BASE_MODEL_SCHEMA: dict[str, Any] = {
    "name": str,
    "model_sha256": str,
    "rows": int,
    "classes": list,
    "per_class": dict,
}
_PER_CLASS_KEYS = ("precision", "recall", "f1", "support")
_CURVE_KEYS = ("threshold", "coverage", "accuracy")
_HISTORY_KEYS = (
    "stage",
    "epoch",
    "image_size",
    "train_loss",
    "valid_loss",
    "accuracy",
    "macro_f1",
    "seconds",
)
_TOP_LOSS_KEYS = ("file", "actual", "predicted", "probability")


class ReportError(ValueError):
    """A report file that is missing, unreadable or incomplete, with what is wrong in one line."""


def evaluate(
    probabilities: np.ndarray,
    targets: Sequence[int] | np.ndarray,
    classes: Sequence[str],
    files: Sequence[str | Path],
    root: str | Path | None = None,
    top_losses: int = TOP_LOSSES,
    threshold: float | None = None,
) -> dict[str, Any]:
    """The report's numbers for `probabilities` (N x C, rows sum to 1) against integer `targets`.

    `files` name the N images; with `root` they are written relative to it (the dataset root), so a
    report never carries an absolute path of the machine it was made on. `valid_loss` is the plain
    cross-entropy of the probabilities (no label smoothing or class weights), comparable across recipes.
    `macro_f1` averages the classes the images show or the model named (as scikit-learn does): a class
    with no image here and never predicted has no F1 to count (a retrained bundle may keep such classes).
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    truth = np.asarray(targets, dtype=np.int64)
    n_classes = len(classes)
    if probs.ndim != 2 or probs.shape[1] != n_classes or len(truth) != len(probs) or len(files) != len(probs):
        raise ValueError(
            f"probabilities {probs.shape}, {len(truth)} targets, {len(files)} files and {n_classes} classes "
            "do not match"
        )
    if len(probs) == 0:
        raise ValueError("nothing to evaluate: no images")
    predicted = probs.argmax(axis=1)
    matrix = confusion_matrix(truth, predicted, n_classes)
    per_class = _per_class(matrix, classes)
    return {
        "classes": list(classes),
        "metrics": {
            "accuracy": float((predicted == truth).mean()),
            "macro_f1": _macro_f1(matrix, per_class),
            "top3_accuracy": top_k_accuracy(probs, truth, 3),
            "valid_loss": float(_losses(probs, truth).mean()),
        },
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "threshold": threshold_report(probs, truth, fixed=threshold),
        "top_losses": _top_losses(probs, truth, classes, files, root, top_losses),
    }


def _macro_f1(matrix: np.ndarray, per_class: dict[str, dict[str, Any]]) -> float:
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    scores = [row["f1"] for row, seen in zip(per_class.values(), present, strict=True) if seen]
    return float(np.mean(scores)) if scores else 0.0


def compare_on_rows(
    truth: Sequence[str],
    probabilities: np.ndarray,
    classes: Sequence[str],
    base_probabilities: np.ndarray,
    base_classes: Sequence[str],
) -> dict[str, Any]:
    """Two models on the same images: a retrained bundle (`probabilities` over `classes`) and the bundle
    it started from (`base_probabilities` over `base_classes`), for the images whose actual class
    (`truth`) both know. Each model answers among all its own classes, as it does in use; per-class
    scores and macro-F1 are over the classes both know that these images show. Images of classes only
    the retrained model has are counted in `left_out_rows`.
    """
    new_probs = np.asarray(probabilities, dtype=np.float64)
    base_probs = np.asarray(base_probabilities, dtype=np.float64)
    if len(new_probs) != len(truth) or len(base_probs) != len(truth):
        raise ValueError(f"{len(truth)} labels, {len(new_probs)} and {len(base_probs)} rows of probabilities")
    shared = set(classes) & set(base_classes)
    rows = [i for i, label in enumerate(truth) if label in shared]
    compared = sorted({truth[i] for i in rows})
    result: dict[str, Any] = {
        "rows": len(rows),
        "left_out_rows": len(truth) - len(rows),
        "classes": compared,
        "metrics": None,
        "retrained_metrics": None,
        "per_class": {},
    }
    if not rows:
        return result
    actual = [truth[i] for i in rows]
    base = _scores_on(actual, base_probs[rows], base_classes, compared)
    new = _scores_on(actual, new_probs[rows], classes, compared)
    result["metrics"], result["retrained_metrics"] = base.pop("metrics"), new.pop("metrics")
    result["per_class"] = {
        name: {
            "support": base["support"][name],
            "base_recall": base["recall"][name],
            "recall": new["recall"][name],
            "base_f1": base["f1"][name],
            "f1": new["f1"][name],
        }
        for name in compared
    }
    return result


def _scores_on(
    actual: list[str], probs: np.ndarray, classes: Sequence[str], compared: list[str]
) -> dict[str, Any]:
    index = {name: i for i, name in enumerate(classes)}
    truth = np.array([index[name] for name in actual])
    predicted = [classes[i] for i in probs.argmax(axis=1)]
    support, recall, f1 = {}, {}, {}
    for name in compared:
        hits = sum(p == a == name for p, a in zip(predicted, actual, strict=True))
        named = sum(p == name for p in predicted)
        support[name] = sum(a == name for a in actual)
        precision = hits / named if named else 0.0
        recall[name] = hits / support[name]
        both = precision + recall[name]
        f1[name] = 2 * precision * recall[name] / both if both else 0.0
    metrics = {
        "accuracy": float(np.mean([p == a for p, a in zip(predicted, actual, strict=True)])),
        "macro_f1": float(np.mean(list(f1.values()))),
        "top3_accuracy": top_k_accuracy(probs, truth, 3),
        "valid_loss": float(_losses(probs, truth).mean()),
    }
    return {"metrics": metrics, "support": support, "recall": recall, "f1": f1}


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts with rows = actual class, columns = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def top_k_accuracy(probs: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Share of images whose true class is among the `k` most probable (all of them when k >= classes)."""
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float((top == truth[:, None]).any(axis=1).mean())


def threshold_report(
    probs: np.ndarray, truth: np.ndarray, target: float = TARGET_ACCURACY, fixed: float | None = None
) -> dict[str, Any]:
    """Coverage and accuracy of the auto-labelled share at each cut-off, and the default cut-off.

    An image is auto-labelled at cut-off t when its top probability is >= t. Cut-offs where nothing is
    left are not listed. Coverage never rises with the cut-off. `fixed`: the cut-off a recipe chose.
    """
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == truth
    curve = []
    for cut in THRESHOLD_GRID:
        kept = confidence >= cut
        if not kept.any():
            break
        curve.append(
            {"threshold": cut, "coverage": float(kept.mean()), "accuracy": float(correct[kept].mean())}
        )
    good = [point for point in curve if point["accuracy"] >= target]
    chosen = good[0] if good else max(curve, key=lambda p: (p["coverage"] * p["accuracy"], -p["threshold"]))
    if fixed is not None:
        kept = confidence >= fixed
        chosen = {
            "threshold": fixed,
            "coverage": float(kept.mean()),
            "accuracy": float(correct[kept].mean()) if kept.any() else 0.0,
        }
    return {
        "value": chosen["threshold"],
        "rule": THRESHOLD_RULE if fixed is None else "set by the training recipe (--threshold)",
        "target_accuracy": target,
        "coverage": chosen["coverage"],
        "accuracy": chosen["accuracy"],
        "curve": curve,
    }


def _per_class(matrix: np.ndarray, classes: Sequence[str]) -> dict[str, dict[str, float | int]]:
    hits = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    rows = {}
    for i, name in enumerate(classes):
        precision = hits[i] / predicted[i] if predicted[i] else 0.0
        recall = hits[i] / actual[i] if actual[i] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(actual[i]),
        }
    return rows


def _losses(probs: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return -np.log(np.clip(probs[np.arange(len(truth)), truth], 1e-12, 1.0))


def _top_losses(
    probs: np.ndarray,
    truth: np.ndarray,
    classes: Sequence[str],
    files: Sequence[str | Path],
    root: str | Path | None,
    count: int,
) -> list[dict[str, Any]]:
    losses = _losses(probs, truth)
    order = np.argsort(-losses, kind="stable")[:count]
    predicted = probs.argmax(axis=1)
    return [
        {
            "file": relative_file(files[i], root),
            "actual": classes[truth[i]],
            "predicted": classes[predicted[i]],
            "probability": float(probs[i, predicted[i]]),
            "loss": float(losses[i]),
        }
        for i in order
    ]


def relative_file(file: str | Path, root: str | Path | None) -> str:
    """`file` relative to `root` with forward slashes; unchanged (posix) when it is not under `root`."""
    path = Path(file)
    if root is not None and path.is_absolute():
        try:
            return path.relative_to(Path(root)).as_posix()
        except ValueError:
            pass
    return path.as_posix()


# -------------------------------------------------------------------------------------- schema and files


def schema_problems(report: Any, schema: dict[str, Any] = BUNDLE_SCHEMA) -> list[str]:
    """Everything missing or of the wrong type in `report`, one short phrase each (empty when valid)."""
    if not isinstance(report, dict):
        return ["the report is not a JSON object"]
    problems = _check_keys(report, schema, "")
    if problems:
        return problems
    return _consistency_problems(report, schema)


def _check_keys(value: dict[str, Any], schema: dict[str, Any], prefix: str) -> list[str]:
    problems = []
    for key, expected in schema.items():
        name = f"{prefix}{key}"
        if key not in value:
            problems.append(f"{name} is missing")
        elif isinstance(expected, dict):
            if isinstance(value[key], dict):
                problems += _check_keys(value[key], expected, f"{name}.")
            else:
                problems.append(f"{name} should be an object")
        elif not isinstance(value[key], expected) or (expected is not bool and isinstance(value[key], bool)):
            problems.append(f"{name} should be {_type_name(expected)}")
    return problems


def _type_name(expected: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object"}
    if expected == _NUMBER:
        return "a number"
    if isinstance(expected, tuple):
        return " or ".join(names.get(t, "null") for t in expected)
    return names.get(expected, expected.__name__)


def _consistency_problems(report: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    classes = report["classes"]
    n = len(classes)
    problems = []
    matrix = report["confusion_matrix"]
    if len(matrix) != n or any(not isinstance(row, list) or len(row) != n for row in matrix):
        problems.append(f"confusion_matrix should be {n} x {n} (one row and column per class)")
    missing = [c for c in classes if c not in report["per_class"]]
    if missing:
        problems.append(f"per_class is missing {', '.join(missing[:5])}")
    problems += _rows_problems(report["per_class"].values(), _PER_CLASS_KEYS, "per_class")
    problems += _rows_problems(report["threshold"]["curve"], _CURVE_KEYS, "threshold.curve")
    problems += _rows_problems(report["top_losses"], _TOP_LOSS_KEYS, "top_losses")
    if "history" in schema:
        problems += _rows_problems(report["history"], _HISTORY_KEYS, "history")
    if "skipped" in schema:
        problems += _rows_problems(report["skipped"], ("file", "reason"), "skipped")
    if "base_model" in report:
        problems += _base_model_problems(report["base_model"])
    return problems


def _base_model_problems(section: Any) -> list[str]:
    """The optional `base_model` section of a retrained bundle (train/base.py), when there is one."""
    if not isinstance(section, dict):
        return ["base_model should be an object"]
    problems = _check_keys(section, BASE_MODEL_SCHEMA, "base_model.")
    if problems:
        return problems
    for key in ("metrics", "retrained_metrics"):
        metrics = section[key]
        if metrics is None and section["rows"] == 0:
            continue
        if not isinstance(metrics, dict):
            problems.append(f"base_model.{key} should be an object")
        else:
            problems += _check_keys(metrics, EVALUATION_SCHEMA["metrics"], f"base_model.{key}.")
    return problems


def _rows_problems(rows: Any, keys: Sequence[str], name: str) -> list[str]:
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            return [f"{name}[{index}] should be an object"]
        missing = [k for k in keys if k not in row]
        if missing:
            return [f"{name}[{index}] is missing {', '.join(missing)}"]
    return []


def validate_report(report: Any, schema: dict[str, Any] = BUNDLE_SCHEMA, source: str = "report") -> None:
    """Raise `ReportError` naming every problem `schema_problems` finds."""
    problems = schema_problems(report, schema)
    if problems:
        raise ReportError(f"{source}: {'; '.join(problems)}.")


def write_report(report: dict[str, Any], path: str | Path, schema: dict[str, Any] = BUNDLE_SCHEMA) -> Path:
    """Check `report` and write it as JSON (atomically: a reader never sees half a file)."""
    path = Path(path)
    report = _plain(report)
    validate_report(report, schema, source=path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def read_report(path: str | Path, schema: dict[str, Any] = BUNDLE_SCHEMA) -> dict[str, Any]:
    """Load and check a report; `ReportError` with one line when it is missing, not JSON or incomplete."""
    path = Path(path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: no report file; was the model trained with `python -m train`?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not a readable JSON report ({str(exc).splitlines()[0]}).") from None
    validate_report(report, schema, source=str(path))
    return report


def _plain(value: Any) -> Any:
    # numpy scalars and arrays, paths and tuples become JSON types; NaN/inf become null (JSON has neither).
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return value.as_posix()
    return value
