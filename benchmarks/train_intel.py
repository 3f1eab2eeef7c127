"""Train the default recipe on the Intel scenes and report accuracy, macro-F1, wall time and images/second.

    .venv/bin/python benchmarks/train_intel.py            # the real run: 1,500 training images, ~15-30 min
    .venv/bin/python benchmarks/train_intel.py --smoke    # proves the script works: 10 images a class, 64 px
    .venv/bin/python benchmarks/train_intel.py --out-dir models --name habitat --title "Habitat types (Intel scenes)"
                                                          # the same run, keeping the app's habitat bundle

Trains on ../shared/data/intel/train and validates on intel/valid (the dataset's own test split) with
every recipe option at its default (`python -m train --help`), except in --smoke mode. Target on a 2-core
CPU with the cores to itself: accuracy >= 0.92 within 30 minutes. Prints the figures and writes them,
with the machine and the recipe, to benchmarks/results/train_intel[-smoke]-<time>.json (gitignored);
the bundle goes to a temporary folder unless --out-dir is given.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from record import write_results

REPO = Path(__file__).resolve().parents[1]
INTEL = REPO.parent / "shared" / "data" / "intel"
TARGET_ACCURACY, TARGET_MINUTES = 0.92, 30
SMOKE_PER_CLASS = 10


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not (args.data / "train").is_dir() or not (args.data / "valid").is_dir():
        print(
            f"error: {args.data} needs train/ and valid/ class folders (see ../shared/data/README.md)",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, str(REPO))
    from train import TrainConfig, train

    with tempfile.TemporaryDirectory(prefix="train_intel_") as scratch:
        data = _smoke_subset(args.data, Path(scratch) / "intel") if args.smoke else args.data
        out_dir = args.out_dir or Path(scratch) / "models"
        config = TrainConfig(
            data=_portable(data),
            name=args.name,
            title=args.title,
            out_dir=out_dir,
            runs_dir=Path(scratch) / "runs",
            split="folders",
            **_smoke_options(args.smoke),
        )
        started = time.perf_counter()
        result = train(config)
        wall = time.perf_counter() - started
    figures = _figures(result, wall, config, args.smoke)
    _print(figures)
    write_results(f"train_intel{'-smoke' if args.smoke else ''}", figures)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run to check the script (default: off)")
    parser.add_argument("--data", type=Path, default=INTEL, help=f"Intel scenes root (default: {INTEL})")
    parser.add_argument("--out-dir", type=Path, default=None, help="keep the bundle here (default: discard)")
    parser.add_argument("--name", default="intel", help="bundle name (default: intel; the app's is habitat)")
    parser.add_argument("--title", default="Intel scenes", help="bundle title (default: Intel scenes)")
    return parser


def _portable(data: Path) -> Path:
    """The data path relative to the project when it can be, so a kept bundle's report works elsewhere."""
    os.chdir(REPO)
    try:
        return Path(os.path.relpath(data.resolve(), REPO))
    except ValueError:  # another drive
        return data


def _smoke_options(smoke: bool) -> dict:
    if not smoke:
        return {}
    return {"sizes": (64,), "frozen_epochs": 1, "unfrozen_epochs": 1, "batch_size": 16, "lr_find_iters": 10}


def _smoke_subset(source: Path, target: Path) -> Path:
    """The first few images of each class, linked (never copied into the project) into a scratch folder."""
    for split in ("train", "valid"):
        for class_dir in sorted(p for p in (source / split).iterdir() if p.is_dir()):
            (target / split / class_dir.name).mkdir(parents=True)
            for image in sorted(class_dir.iterdir())[:SMOKE_PER_CLASS]:
                link = target / split / class_dir.name / image.name
                try:
                    link.symlink_to(image)
                except OSError:  # no symlinks here (some Windows setups): a scratch copy, deleted after
                    shutil.copyfile(image, link)
    return target


def _figures(result, wall: float, config, smoke: bool) -> dict:
    report = result.report
    return {
        "benchmark": "train_intel" + ("-smoke" if smoke else ""),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "accuracy": report["metrics"]["accuracy"],
        "macro_f1": report["metrics"]["macro_f1"],
        "top3_accuracy": report["metrics"]["top3_accuracy"],
        "valid_loss": report["metrics"]["valid_loss"],
        "wall_seconds": round(wall, 1),
        "train_images_per_second": round(result.train_images_per_second, 2),
        "n_train": report["data"]["n_train"],
        "n_valid": report["data"]["n_valid"],
        "target": {"accuracy": TARGET_ACCURACY, "minutes": TARGET_MINUTES},
        "met_target": report["metrics"]["accuracy"] >= TARGET_ACCURACY and wall <= TARGET_MINUTES * 60,
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "versions": report["versions"],
        },
        "lr": report["lr"],
        "history": report["history"],
        "recipe": report["recipe"] | {"data": str(config.data) if not smoke else "intel smoke subset"},
    }


def _print(figures: dict) -> None:
    minutes, seconds = divmod(round(figures["wall_seconds"]), 60)
    print(
        f"\n{figures['benchmark']}: accuracy {figures['accuracy']:.4f}  macro-F1 {figures['macro_f1']:.4f}  "
        f"wall {minutes}m{seconds:02d}s  {figures['train_images_per_second']:.1f} training images/s  "
        f"({figures['n_train']} train / {figures['n_valid']} valid; target >= {TARGET_ACCURACY} in "
        f"{TARGET_MINUTES} min: {'met' if figures['met_target'] else 'not met'})"
    )


if __name__ == "__main__":
    sys.exit(main())
