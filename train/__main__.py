"""Train a model bundle from labeled photos.

    python -m train --data ../shared/data/intel --name habitats --title "Habitat scenes"
    python -m train --data serengeti.json --image-root /data/serengeti --split location --drop-empty 0.9
    python -m train --data corrected.csv --base-model serengeti --name serengeti-mara
    python -m train --help

Writes OUT_DIR/NAME/model.pkl and report.json, checkpoints every epoch under RUNS_DIR/NAME (continue an
interrupted run with --resume), and ends with a short summary.
"""

from __future__ import annotations

import sys

from classifier.intake.datasets import DatasetError
from classifier.models.backbones import BackboneError
from classifier.models.bundles import BundleError
from train import review
from train.checkpoint import ResumeError
from train.command_line import config_from_args
from train.pipeline import TrainResult, train
from train.recipe import RecipeError


def main(argv: list[str] | None = None) -> int:
    try:
        config = config_from_args(argv)
        # A review of a linear probe's batch retrains from the embeddings prediction kept (seconds).
        result = review.retrain(config) if review.applies(config) else train(config)
    except (DatasetError, RecipeError, ResumeError, BackboneError, BundleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(result))
    return 0


def summary(result: TrainResult) -> str:
    report = result.report
    metrics, threshold = report["metrics"], report["threshold"]
    minutes, seconds = divmod(round(result.seconds), 60)
    lines = [
        f"accuracy {metrics['accuracy']:.3f}   macro-F1 {metrics['macro_f1']:.3f}   "
        f"top-3 {metrics['top3_accuracy']:.3f}   valid loss {metrics['valid_loss']:.3f}",
        f"threshold {threshold['value']:.2f}: labels {threshold['coverage']:.0%} of the validation photos "
        f"at {threshold['accuracy']:.1%} accuracy",
        f"wrote {result.bundle / 'model.pkl'} and {result.bundle / 'report.json'}",
        f"took {minutes}m{seconds:02d}s ({report['data']['n_train']} training images, "
        f"{result.train_images_per_second:.1f} images/s while training)",
    ]
    if report["skipped"]:
        lines.append(f"skipped {len(report['skipped'])} unusable images (listed in report.json)")
    left_out = report["data"].get("left_out") or {}
    if left_out:
        lines.append("rows not used: " + ", ".join(f"{n} {why}" for why, n in left_out.items()))
    if "base_model" in report:
        lines.append(base_line(report["base_model"]))
    return "\n".join(lines)


def base_line(base: dict) -> str:
    """One line: the base bundle against the new one on the same held-out photos."""
    name, rows = base["name"], base["rows"]
    if not rows:
        return f"base model {name}: none of the held-out photos has a class it knows, so no comparison"
    before, after = base["metrics"], base["retrained_metrics"]
    new = f"; new classes: {', '.join(base['new_classes'])}" if base["new_classes"] else ""
    return (
        f"base model {name} on the same {rows} held-out photos: accuracy {before['accuracy']:.3f} -> "
        f"{after['accuracy']:.3f}, macro-F1 {before['macro_f1']:.3f} -> {after['macro_f1']:.3f}{new}"
    )


if __name__ == "__main__":
    sys.exit(main())
