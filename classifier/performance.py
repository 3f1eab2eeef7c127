"""Tables a person reads off an evaluation report: confusions, per-class scores, curves, comparisons.

Pure functions of `report.json` (DESIGN.md schema) so the performance page only draws them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROJECT_DIR = Path(__file__).resolve().parent.parent
HEADLINE = ("accuracy", "macro_f1", "top3_accuracy", "valid_loss")


def confusion_long(report: dict[str, Any], normalise: bool = False) -> pd.DataFrame:
    """One row per (actual, predicted) cell; `normalise` divides each row by its class's image count."""
    classes = report["classes"]
    matrix = np.asarray(report["confusion_matrix"], dtype=float)
    if normalise:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    actual, predicted = np.meshgrid(range(len(classes)), range(len(classes)), indexing="ij")
    return pd.DataFrame(
        {
            "actual": [classes[i] for i in actual.ravel()],
            "predicted": [classes[j] for j in predicted.ravel()],
            "value": matrix.ravel(),
        }
    )


def most_confused(report: dict[str, Any], top: int = 10) -> pd.DataFrame:
    """The off-diagonal cells with the most images, largest first (ties by class order)."""
    cells = confusion_long(report)
    mistakes = cells[(cells["actual"] != cells["predicted"]) & (cells["value"] > 0)]
    mistakes = mistakes.sort_values("value", ascending=False, kind="stable").head(top)
    return mistakes.rename(columns={"value": "images"}).astype({"images": int}).reset_index(drop=True)


def per_class(report: dict[str, Any]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class, weakest F1 first."""
    rows = [{"class": name, **scores} for name, scores in report.get("per_class", {}).items()]
    table = pd.DataFrame(rows, columns=["class", "precision", "recall", "f1", "support"])
    return table.sort_values("f1", kind="stable").reset_index(drop=True)


def history(report: dict[str, Any]) -> pd.DataFrame:
    """Per-epoch history in training order, with a running epoch number across stages."""
    table = pd.DataFrame(report.get("history", []))
    if not table.empty:
        table.insert(0, "step", range(1, len(table) + 1))
    return table


def threshold_curve(report: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(
        report.get("threshold", {}).get("curve", []), columns=["threshold", "coverage", "accuracy"]
    )


def at_threshold(report: dict[str, Any], threshold: float) -> dict[str, float] | None:
    """Coverage and accuracy at the curve's highest cut-off not above `threshold` (None without a curve)."""
    curve = threshold_curve(report)
    below = curve[curve["threshold"] <= threshold + 1e-9]
    if below.empty:
        return None
    row = below.sort_values("threshold").iloc[-1]
    return {
        "threshold": float(row["threshold"]),
        "coverage": float(row["coverage"]),
        "accuracy": float(row["accuracy"]),
    }


def compare(reports: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Headline metrics and data sizes of several bundles side by side (one column per bundle)."""
    rows = {}
    for name, report in reports.items():
        metrics, data = report.get("metrics", {}), report.get("data", {})
        rows[name] = {
            **{key: metrics.get(key) for key in HEADLINE},
            "classes": len(report.get("classes", [])),
            "training images": data.get("n_train"),
            "validation images": data.get("n_valid"),
            "backbone": report.get("arch"),
            "image size": report.get("image_size"),
        }
    return pd.DataFrame(rows)


def top_loss_images(report: dict[str, Any], data_root: Path | None = None) -> list[dict[str, Any]]:
    """The report's top losses whose image is on this disk, each with its absolute `path` added.

    Paths in the report are relative to the dataset root the training run used (`data.root`, else
    `data.source`); a relative root is relative to the project folder, where training runs.
    """
    data = report.get("data", {})
    root = Path(data_root or data.get("root") or data.get("source") or "")
    if root.parts and not root.is_absolute():
        root = PROJECT_DIR / root
    found = []
    for loss in report.get("top_losses", []):
        path = (root / loss["file"]).resolve()
        if root.parts and root.resolve() in path.parents and path.is_file():
            found.append({**loss, "path": path})
    return found
