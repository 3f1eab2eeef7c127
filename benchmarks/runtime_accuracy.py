"""What each runtime and precision does to the bundles' answers, on each bundle's own validation photos.

    .venv/bin/python benchmarks/runtime_accuracy.py                     # every bundle in models/
    .venv/bin/python benchmarks/runtime_accuracy.py --models habitat otters

Per bundle, its validation photos as its training run split them (`read_dataset` + `split_dataset` with
the report's recipe): habitat's 600 Intel `valid` photos, otters' 62 held-out photos (random split, seed
42); serengeti trained by 3-fold cross-validation on its 162 field-guide photos, so those are both its
validation and its training photos (the shipped head saw them all), and its 81 frames from other
projects of classes it knows (`benchmarks/serengeti_transfer.py`'s mapping) are measured as well.
Each photo is decoded once as prediction decodes it; every runtime and precision then predicts the same
pixels. Figures: top-1 accuracy, its change from torch float32 in points, the share of photos whose best
class is torch's, and the largest probability difference. The issue's bar: float32 within 1e-3 and the
same best class on >= 99.5% of photos; a precision is offered as the default only within 0.5 points.
int8 calibrates on the bundle's training photos (`classifier.models.runtimes.calibration_photos`).
Writes benchmarks/results/runtime_accuracy-<time>.json.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from record import write_results  # noqa: E402

VARIANTS = (
    ("torch", "fp32"),
    ("openvino", "fp32"),
    ("onnx", "fp32"),
    ("openvino", "bf16"),
    ("openvino", "int8"),
    ("onnx", "int8"),
)
CAMERA_TRAPS = REPO.parent / "shared" / "data" / "camera_traps"


def validation_sets(bundle) -> dict[str, list[tuple[Path, str]]]:
    from classifier.intake.datasets import read_dataset, split_dataset

    recipe = bundle.report.get("recipe") or {}
    root = Path(recipe["data"])
    root = root if root.is_absolute() else REPO / root
    dataset = read_dataset(root, recipe.get("format"), image_root=recipe.get("image_root"))
    if recipe.get("cv_folds"):
        records, name = dataset.records, "own photos (cross-validated; also its training photos)"
    else:
        split = split_dataset(
            dataset, recipe.get("split") or "auto", recipe.get("valid_pct", 0.2), recipe.get("seed", 42)
        )
        records, name = split.valid, f"validation photos ({split.method} split)"
    sets = {name: [(dataset.path(r), r.label) for r in records if r.label in bundle.classes]}
    if bundle.name == "serengeti":
        sets["frames from other projects, classes it knows"] = _transfer_frames(bundle)
    return sets


def _transfer_frames(bundle) -> list[tuple[Path, str]]:
    from serengeti_transfer import RIGHT_ANSWERS

    answer = {label: cls for cls, labels in RIGHT_ANSWERS.items() for label in labels}
    frames = []
    with open(CAMERA_TRAPS / "labels.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if "fieldguide" in row["subset"] and "serengeti" in row["subset"]:
                continue
            if row.get("image_type") != "camera_trap":
                continue
            cls = answer.get(row["label"], row["label"] if row["label"] in bundle.classes else None)
            if cls in bundle.classes:
                frames.append((CAMERA_TRAPS / row["path"], cls))
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="bundle names (default: every bundle)")
    args = parser.parse_args(argv)
    from classifier.intake.inputs import item_for_path
    from classifier.models.bundles import BundleError, find_bundles, resolve_bundle
    from classifier.models.predict import Predictor, decode_item
    from classifier.models.runtimes import load_model

    bundles = [resolve_bundle(n) for n in args.models] if args.models else [b for b in find_bundles() if b.ok]
    results: dict = {"benchmark": "runtime_accuracy", "load_average_at_start": os.getloadavg(), "bundles": {}}
    for bundle in bundles:
        try:
            sets = validation_sets(bundle)
        except Exception as exc:
            print(f"{bundle.name}: no validation photos here ({exc})", file=sys.stderr)
            continue
        models = {}
        for runtime, precision in VARIANTS:
            try:
                model = load_model(bundle, runtime=runtime, precision=precision)
            except BundleError as exc:
                print(f"{bundle.name} {runtime} {precision}: not measured ({exc})", file=sys.stderr)
                continue
            ran = getattr(model.network, "precision_in_use", precision)
            models[f"{runtime}:{precision}"] = (Predictor(model, top_k=1), ran)
        figures = {}
        for name, photos in sets.items():
            decoded = [
                (decode_item(item_for_path(p), bundle.image_size).pixels, label) for p, label in photos
            ]
            decoded = [(pixels, label) for pixels, label in decoded if pixels is not None]
            truth = [bundle.classes.index(label) for _, label in decoded]
            probabilities = {}
            for key, (predictor, _) in models.items():
                rows = []
                for start in range(0, len(decoded), 4):
                    rows += predictor.predict_arrays([p for p, _ in decoded[start : start + 4]])
                probabilities[key] = np.array([r.probabilities for r in rows])
            reference = probabilities["torch:fp32"]
            base = float(np.mean(reference.argmax(1) == truth))
            table = {}
            print(f"\n{bundle.name}, {name}: {len(decoded)} photos")
            for key, found in probabilities.items():
                accuracy = float(np.mean(found.argmax(1) == truth))
                table[key] = {
                    "ran": models[key][1],
                    "top1": round(accuracy, 4),
                    "change_points": round(100 * (accuracy - base), 2),
                    "same_top1_as_torch": round(float(np.mean(found.argmax(1) == reference.argmax(1))), 4),
                    "max_probability_difference": round(float(np.abs(found - reference).max()), 5),
                }
                row = table[key]
                print(
                    f"  {key:14s} (ran {row['ran']}) top-1 {accuracy:.4f} ({row['change_points']:+.2f} points), "
                    f"same best class as torch {row['same_top1_as_torch']:.4f}, "
                    f"max |p - torch's| {row['max_probability_difference']:.5f}",
                    flush=True,
                )
            figures[name] = {"photos": len(decoded), "variants": table}
        results["bundles"][bundle.name] = figures
    results["load_average_at_end"] = os.getloadavg()
    write_results("runtime_accuracy", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
