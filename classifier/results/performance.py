"""Tables a person reads off an evaluation report: confusions, per-class scores, curves, comparisons.

Pure functions of `report.json` (DESIGN.md schema) so the performance page only draws them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from classifier.models.bundle_photos import data_root as training_root

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


def learning_curve(report: dict[str, Any]) -> pd.DataFrame | None:
    """A retrained bundle's learning curve (train/review.py): photos that taught, share right; None without."""
    points = report.get("learning_curve")
    if not points:
        return None
    return pd.DataFrame(points)[["photos", "accuracy"]]


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
    # One object column per bundle, so counts stay whole numbers beside the metrics.
    return pd.DataFrame({name: pd.Series(values, dtype=object) for name, values in rows.items()})


def base_comparison(report: dict[str, Any]) -> pd.DataFrame | None:
    """A retrained bundle against the bundle it started from, on the same held-out images (the report's
    `base_model` section): headline metrics, one column per model, base first. None when the report has
    no such section or no image of a class both know."""
    base = report.get("base_model")
    if not isinstance(base, dict) or not base.get("rows"):
        return None
    columns = {
        f"{base.get('name', 'base')} (base)": base.get("metrics") or {},
        f"{report.get('name', 'this model')} (retrained)": base.get("retrained_metrics") or {},
    }
    table = pd.DataFrame(
        {name: {key: metrics.get(key) for key in HEADLINE} for name, metrics in columns.items()}
    )
    table["change"] = table.iloc[:, 1] - table.iloc[:, 0]
    return table


def base_per_class(report: dict[str, Any]) -> pd.DataFrame:
    """Per class both know: photos, recall and F1 of the base and of the retrained bundle, on the same
    images; the classes retraining hurt most first."""
    rows = [
        {"class": name, **scores}
        for name, scores in ((report.get("base_model") or {}).get("per_class") or {}).items()
    ]
    columns = ["class", "support", "base_recall", "recall", "base_f1", "f1"]
    table = pd.DataFrame(rows, columns=columns)
    table["f1_change"] = table["f1"] - table["base_f1"]
    return table.sort_values(["f1_change", "class"], kind="stable").reset_index(drop=True)


def base_caption(report: dict[str, Any]) -> str | None:
    """One sentence saying what the base comparison is measured on (None without a base model)."""
    base = report.get("base_model")
    if not isinstance(base, dict):
        return None
    name, rows = base.get("name", "?"), base.get("rows", 0)
    if not rows:
        return f"Retrained from {name}; none of the held-out photos shows a class {name} knows, so there is no comparison."
    parts = [
        f"Retrained from **{name}**. Both models on the same {rows} held-out photos, of the "
        f"{len(base.get('classes', []))} classes both know; each answers among all its own classes."
    ]
    if base.get("left_out_rows"):
        parts.append(f"{base['left_out_rows']} held-out photos of classes only this model has are not in it.")
    if base.get("new_classes"):
        parts.append(f"New classes: {', '.join(base['new_classes'])}.")
    if base.get("dropped_classes"):
        dropped = base["dropped_classes"]
        shown = ", ".join(dropped[:8]) + (f" and {len(dropped) - 8} more" if len(dropped) > 8 else "")
        parts.append(f"Dropped from {name}: {shown}.")
    return " ".join(parts)


def as_text(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with every cell as text (numbers to 3 decimals, missing as '–'), for display: a column
    mixing numbers and names (`compare`'s backbone row) cannot be sent to the browser as it is."""

    def text(value: Any) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "–"
        if isinstance(value, float | np.floating):
            return f"{value:.3f}"
        return str(value)

    return table.map(text)


def top_loss_images(report: dict[str, Any], data_root: Path | None = None) -> list[dict[str, Any]]:
    """The report's top losses whose image is on this disk, each with its absolute `path` added.

    Paths in the report are relative to the dataset root the training run used (`data.root`, else
    `data.source`); a relative root is relative to the project folder, where training runs.
    """
    root = Path(data_root) if data_root else training_root(report)
    found = []
    for loss in report.get("top_losses", []) if root else ():
        path = (root / loss["file"]).resolve()
        if root.resolve() in path.parents and path.is_file():
            found.append({**loss, "path": path})
    return found


# ---- in plain words -----------------------------------------------------------------------------------

TRANSFER_FILE = (
    "transfer.json"  # a bundle's figures on photos from elsewhere (benchmarks/verdict.py writes it)
)


def in_hundreds(report: dict[str, Any], name: Callable[[str], str] = str) -> pd.DataFrame:
    """Per class, what a visitor asks: of 100 photos of it, how many the model names right (recall), and of
    100 times it gives that answer, how many are right (precision), with the photos it was measured on;
    the best named first."""
    rows = [
        {
            "class": name(label),
            "named right, of 100 photos": round(100 * scores.get("recall", 0.0)),
            "right, of 100 times it says so": round(100 * scores.get("precision", 0.0)),
            "photos measured": int(scores.get("support", 0)),
        }
        for label, scores in (report.get("per_class") or {}).items()
    ]
    table = pd.DataFrame(
        rows,
        columns=["class", "named right, of 100 photos", "right, of 100 times it says so", "photos measured"],
    )
    return table.sort_values(
        ["named right, of 100 photos", "class"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


def class_in_words(report: dict[str, Any], label: str, name: Callable[[str], str] = str) -> str:
    """ "Plains zebra: of 100 photos of it, the model names about 67 right (2 of the 3 it was measured on)."
    and what it means when it says so; says how rough the figure is when it rests on few photos."""
    scores = (report.get("per_class") or {}).get(label)
    if not scores or not scores.get("support"):
        return f"This model's report has no held-out photos of {name(label)}, so how well it names it is not known."
    photos = int(scores["support"])
    right = round(scores.get("recall", 0.0) * photos)
    said = (
        f"{name(label)}: of 100 photos of it, the model names about **{round(100 * scores.get('recall', 0.0))}** "
        f"right ({right} of the {photos} it was measured on). When it answers {name(label)}, it is right about "
        f"**{round(100 * scores.get('precision', 0.0))}** times in 100."
    )
    if photos < 20:
        said += (
            f" Measured on only {photos} photos, so read it as rough: one photo more or less right moves it by "
            f"{round(100 / photos)}."
        )
    return said


def measured_on(report: dict[str, Any]) -> str:
    """The photos a report was scored on, in words ("162 photos of ../shared/data/..., 3-fold ...")."""
    data = report.get("data") or {}
    root = data.get("root") or data.get("source") or "?"
    return f"{data.get('n_valid', '?')} photos of {root} ({data.get('split', 'held-out split')})"


def same_photos(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two reports were scored on the same held-out photos: the same data, split and count, and the
    same classes (a class only one model knows makes its photos a different test)."""
    first, second = a.get("data") or {}, b.get("data") or {}
    where = [d.get("root") or d.get("source") for d in (first, second)]
    return (
        where[0] is not None
        and where[1] is not None
        and Path(where[0]).as_posix() == Path(where[1]).as_posix()
        and first.get("split") == second.get("split")
        and first.get("n_valid") == second.get("n_valid")
        and list(a.get("classes") or []) == list(b.get("classes") or [])
    )


def read_transfer(directory: Path) -> dict[str, Any] | None:
    """The bundle's figures on camera-trap frames from other projects (`transfer.json`), None without."""
    path = Path(directory) / TRANSFER_FILE
    if not path.is_file():
        return None
    found = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(found, dict) or not isinstance(found.get("pooled"), dict):
        raise ValueError(f"{path}: expected the figures benchmarks/verdict.py --bundle-figures writes.")
    return found


def here_and_elsewhere(report: dict[str, Any], transfer: dict[str, Any], threshold: float) -> pd.DataFrame:
    """The training data's own kind of photo (held out) beside frames from other projects, figure by figure,
    as whole numbers of 100."""
    own = at_threshold(report, threshold) or {}
    pooled = transfer["pooled"]
    accuracy = (report.get("metrics") or {}).get("accuracy")

    def hundred(value: float | None) -> str:
        return "–" if value is None else f"{round(100 * value)} of 100"

    return pd.DataFrame(
        {
            "": [
                "photos of an animal it knows, named right",
                "sure answers that are right",
                "photos answered sure (the rest go to a person)",
                "photos measured",
            ],
            "photos like its training photos (held out)": [
                hundred(accuracy),
                hundred(own.get("accuracy")),
                hundred(own.get("coverage")),
                str((report.get("data") or {}).get("n_valid", "?")),
            ],
            "frames from other parks and projects": [
                hundred(pooled.get("named_right")),
                hundred(pooled.get("sure_right")),
                hundred(pooled.get("coverage")),
                f"{pooled.get('known_frames', '?')} of animals it knows",
            ],
        }
    )


def projects_table(transfer: dict[str, Any]) -> pd.DataFrame:
    """Each project's frames (leave one project out): where, how many of an animal the bundle knows, and
    the figures, as whole numbers of 100."""
    rows = [
        {
            "project": figures.get("place", name),
            "frames of animals it knows": figures.get("known_frames", 0),
            "named right, of 100": round(100 * figures.get("named_right", 0.0))
            if figures.get("known_frames")
            else None,
            "sure answers right, of 100": round(100 * figures.get("sure_right", 0.0))
            if figures.get("sure")
            else None,
            "answered sure, of 100": round(100 * figures.get("coverage", 0.0)),
        }
        for name, figures in (transfer.get("projects") or {}).items()
    ]
    return pd.DataFrame(rows).sort_values("frames of animals it knows", ascending=False, kind="stable")
