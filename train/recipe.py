"""The training recipe: every option of `python -m train`, its default and why.

The command line is built from `TrainConfig`'s fields (help text in each field's metadata), so the two
cannot drift apart. Defaults are sized for the Intel scenes benchmark on a 2-core CPU: 1,500 training
images to at least 0.92 accuracy within 30 minutes (see benchmarks/train_intel.py).

With `--base-model` the run retrains a bundle (train/base.py): its backbone, head and image size are the
bundle's, and every option of `BASE_RECIPE` that the command line does not give takes the value the
bundle's own recipe had, so `--data corrected.csv --base-model serengeti` retrains serengeti the way it
was made (its linear probe, folds, penalty and threshold) without repeating them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifier.intake.datasets import FORMATS, MULTI_LABEL, ROWS, SPLITS
from classifier.models.bundles import CROP_MARGIN, DETECTOR_CONFIDENCE
from classifier.models.network import HEADS

BALANCE = ("none", "weighted", "oversample")
CROPS = ("none", "detector")


def _help(text: str, **extra: Any) -> dict[str, Any]:
    """Field metadata: the option's help text, and `choices`, `required` or the default as `shown` in --help."""
    return {"help": text, **extra}


def default_workers() -> int:
    """DataLoader worker processes: none on 1-2 cores (decoding small JPEGs costs little next to the
    network, and a worker would take a core from it), otherwise half the cores up to 8."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(8, cores // 2)


@dataclass
class TrainConfig:
    # --- data
    data: Path | None = field(
        default=None,
        metadata=_help("labeled data: a folder of class folders, a csv, or a COCO/iNat JSON", required=True),
    )
    format: str | None = field(
        default=None, metadata=_help("dataset format", choices=FORMATS, shown="guessed from the path")
    )
    image_root: Path | None = field(
        default=None, metadata=_help("where the image paths in a csv/JSON start", shown="the file's folder")
    )
    name: str = field(
        default="model", metadata=_help("bundle name: writes OUT_DIR/NAME/model.pkl and report.json")
    )
    title: str | None = field(default=None, metadata=_help("human title for the app", shown="the name"))
    out_dir: Path = field(default=Path("models"), metadata=_help("folder that receives the bundle"))
    runs_dir: Path = field(
        default=Path("runs"),
        metadata=_help("folder for per-epoch checkpoints (RUNS_DIR/NAME), used by --resume"),
    )
    # --- filters
    classes: tuple[str, ...] = field(
        default=(), metadata=_help("comma-separated classes to keep", shown="all")
    )
    min_images: int = field(default=0, metadata=_help("drop classes with fewer images than this"))
    top_classes: int = field(default=0, metadata=_help("keep only the N most frequent classes (0: all)"))
    supercategory: tuple[str, ...] = field(
        default=(),
        metadata=_help("iNat: comma-separated supercategories to keep, e.g. Mammalia,Aves", shown="all"),
    )
    drop_empty: float = field(
        default=0.0, metadata=_help("fraction (0-1) of empty/blank frames to drop at random, e.g. 0.9")
    )
    first_frame: bool = field(
        default=False, metadata=_help("keep only the first frame of each camera-trap sequence")
    )
    # A predictions csv (what `python -m classifier predict` or the app wrote, reviewed or not).
    rows: str = field(
        default="sure",
        metadata=_help(
            "predictions csv: which rows are training data: 'sure' (rows a person reviewed, and the "
            "model's own answers it was sure of), 'reviewed' (only classification_method=human rows) or "
            "'all' (also its unreviewed 'uncertain' guesses); rows labelled unknown and error rows never",
            choices=ROWS,
        ),
    )
    blank_class: bool = field(
        default=False,
        metadata=_help(
            "predictions csv: train a 'blank' class from the rows marked blank/empty (without it they are "
            "left out, unless the base model has such a class)"
        ),
    )
    # An image with two species has no single right answer; skipping it (and listing it) is the safe default.
    multi_label: str = field(
        default="skip",
        metadata=_help("COCO images with several species: first label, skip, or all", choices=MULTI_LABEL),
    )
    verify_images: bool = field(
        default=True, metadata=_help("decode every image before training and skip the unreadable ones")
    )
    # --- crops: train on the animal, as prediction with a detector classifies it
    crops: str = field(
        default="none",
        metadata=_help(
            "detector: train on the animal the detector finds in each photo (its best box, cut as "
            "prediction cuts it; a photo with no box stays whole), and make the bundle find animals first",
            choices=CROPS,
        ),
    )
    crop_confidence: float = field(
        default=DETECTOR_CONFIDENCE,
        metadata=_help("the detector's threshold for a box, in training and after"),
    )
    crop_margin: float = field(
        default=CROP_MARGIN,
        metadata=_help("context around a box, as a share of its longer side on each side"),
    )
    crop_frames: bool = field(
        default=False,
        metadata=_help("with --crops and --linear-probe: the whole frames as extra views of each photo"),
    )
    # --- split
    split: str = field(
        default="auto",
        metadata=_help("auto: the data's own split, else by sequence, else random", choices=SPLITS),
    )
    valid_pct: float = field(
        default=0.2, metadata=_help("share of images (or groups) held out when the split is made here")
    )
    seed: int = field(
        default=42, metadata=_help("seed for the split, the sampling and the weights of the new head")
    )
    # --- retraining a bundle
    base_model: str | None = field(
        default=None,
        metadata=_help(
            "retrain this bundle (a name in models/ or a bundle folder): start from its backbone, weights "
            "and the head rows of the classes it keeps, add new classes the data names; options not given "
            "take its recipe's values, and the report compares the two on the same held-out photos",
            shown="none: a new model",
        ),
    )
    # Dropped by default: a site's corrections show the species of that site, and a class with no photo
    # in the run can be neither checked nor kept sharp (training without its photos wears it down).
    keep_base_classes: bool = field(
        default=False,
        metadata=_help(
            "keep the base model's classes that have no photos in the data; without it they are dropped"
        ),
    )
    # --- model and schedule
    # Lite0 over Lite2: 1.3-1.7x the images/second on a 2-core CPU (measured: ~22 vs ~17 img/s training
    # at 160 px, ~8 vs ~6 at 224), so the 30-minute budget holds 3 frozen and 3 unfrozen epochs at 224,
    # and a frozen Lite0 already separates the Intel scenes at ~0.90.
    backbone: str = field(
        default="efficientnet_lite0",
        metadata=_help("efficientnet_lite0|1|2, mobilenet_v2, or timm:/torchvision:NAME"),
    )
    pretrained: bool = field(default=True, metadata=_help("start from the offline ImageNet weights"))
    # One size by default: ImageNet backbones see best at the 224 px they were trained at, and on the
    # Intel scenes (150 px photos) a 160 px stage cost accuracy without saving time overall.
    sizes: tuple[int, ...] = field(
        default=(224,),
        metadata=_help("progressive resizing: comma-separated image sizes; the last is final"),
    )
    frozen_epochs: int = field(
        default=3, metadata=_help("epochs training the new head only, at the first size")
    )
    unfrozen_epochs: int = field(
        default=3, metadata=_help("epochs training the whole network, at each size in turn")
    )
    # Small datasets and small batches make poor batch statistics: keeping the ImageNet ones while only
    # the head learns is what a frozen backbone with a linear classifier does (0.90 on the Intel scenes).
    freeze_bn: bool = field(
        default=True, metadata=_help("keep the backbone's ImageNet batch-norm statistics (small batches)")
    )
    lr: float | None = field(
        default=None, metadata=_help("peak learning rate of the head", shown="the lr_find suggestion")
    )
    # The body learns 1/lr_mult as fast as the head (fastai's fine_tune uses 100; with the batch-norm
    # statistics kept, 10 let the Intel run gain 2 points when unfrozen instead of none).
    lr_mult: float = field(
        default=10.0, metadata=_help("discriminative rates when unfrozen: body rate = head rate / LR_MULT")
    )
    lr_find_iters: int = field(default=60, metadata=_help("mini-batches the learning-rate finder tries"))
    pct_start: float = field(default=0.25, metadata=_help("share of each one-cycle spent warming up"))
    weight_decay: float | None = field(default=None, metadata=_help("weight decay", shown="fastai's 0.01"))
    dropout: float = field(default=0.5, metadata=_help("dropout in the new head"))
    head: str = field(
        default="mlp",
        metadata=_help("new head: fastai's two-layer mlp, or one linear layer (few-shot)", choices=HEADS),
    )
    imagenet_prior: Path | None = field(
        default=None,
        metadata=_help(
            "YAML naming the ImageNet classes that show each class; adds their ImageNet score to the "
            "linear head (see train/imagenet_prior.py)",
            shown="none",
        ),
    )
    # --- few-shot: a linear probe instead of SGD epochs
    linear_probe: bool = field(
        default=False,
        metadata=_help("fit the linear head on frozen features by L-BFGS instead of training epochs"),
    )
    probe_views: int = field(
        default=0, metadata=_help("augmented copies of each photo the probe sees, besides it and its mirror")
    )
    probe_l2: float = field(default=0.3, metadata=_help("L2 penalty of the probe on standardised features"))
    cv_folds: int = field(
        default=0,
        metadata=_help(
            "probe only: report K-fold cross-validation over all photos, then fit on all (0: use the split)"
        ),
    )
    threshold: float | None = field(
        default=None,
        metadata=_help("confidence cut-off below which a photo is 'uncertain'", shown="report.py's rule"),
    )
    batch_size: int = field(default=32, metadata=_help("images per batch"))
    workers: int = field(
        default=default_workers(),
        metadata=_help(
            "DataLoader worker processes", shown=f"{default_workers()}, sized to the {os.cpu_count()} cores"
        ),
    )
    processes: int = field(
        default=1,
        metadata=_help(
            "data-parallel training processes on this machine (fastai's distrib_ctx: gloo on CPUs, one GPU "
            "each where there are enough); a step sees PROCESSES x BATCH_SIZE images (train/distributed.py)"
        ),
    )
    mixed_precision: bool = field(
        default=True, metadata=_help("use 16-bit mixed precision (only ever on a CUDA GPU)")
    )
    # --- augmentation (training images only)
    augment: bool = field(
        default=True, metadata=_help("augment training images; --no-augment turns all of it off")
    )
    flip: bool = field(default=True, metadata=_help("random horizontal flips"))
    max_rotate: float = field(default=10.0, metadata=_help("maximum rotation in degrees (0: none)"))
    max_zoom: float = field(default=1.1, metadata=_help("maximum zoom factor (1: none)"))
    max_lighting: float = field(default=0.2, metadata=_help("maximum brightness/contrast change (0: none)"))
    max_warp: float = field(default=0.2, metadata=_help("maximum perspective warp (0: none)"))
    # --- loss
    balance: str = field(
        default="none",
        metadata=_help("class imbalance: weighted loss, oversample rare classes, or none", choices=BALANCE),
    )
    label_smoothing: float = field(default=0.1, metadata=_help("label smoothing (0: plain cross-entropy)"))
    patience: int = field(
        default=3, metadata=_help("stop a stage after this many epochs without a lower valid loss (0: never)")
    )
    resume: bool = field(default=False, metadata=_help("continue RUNS_DIR/NAME from its last finished epoch"))

    def stages(self) -> list[tuple[str, int, int]]:
        """(stage, image size, epochs): frozen at the first size, then unfrozen at every size."""
        plan = [("frozen", self.sizes[0], self.frozen_epochs)] if self.frozen_epochs else []
        plan += (
            [("unfrozen", size, self.unfrozen_epochs) for size in self.sizes] if self.unfrozen_epochs else []
        )
        return plan

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy for the report and the checkpoint."""
        return {k: _jsonable(v) for k, v in dataclasses.asdict(self).items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


class RecipeError(ValueError):
    """An option value that cannot work, with the option's name."""


def check(config: TrainConfig) -> TrainConfig:
    """Refuse option values that would fail later, slowly."""
    problems = []
    if config.data is None:
        problems.append("--data is required")
    if not config.sizes or any(s < 32 for s in config.sizes):
        problems.append("--sizes needs one or more sizes of at least 32 pixels")
    if config.frozen_epochs < 0 or config.unfrozen_epochs < 0 or not config.stages():
        problems.append("--frozen-epochs and --unfrozen-epochs must be >= 0 and not both 0")
    if config.batch_size < 1:
        problems.append("--batch-size must be at least 1")
    if config.lr is not None and config.lr <= 0:
        problems.append("--lr must be positive")
    if config.workers < 0:
        problems.append("--workers must be >= 0")
    if config.processes < 1:
        problems.append("--processes must be at least 1")
    if config.processes > 1 and (config.linear_probe or config.crops == "detector"):
        problems.append("--processes > 1 trains the fine-tuning recipe only: drop --linear-probe and --crops")
    if (config.imagenet_prior or config.linear_probe) and config.head != "linear":
        problems.append("--imagenet-prior and --linear-probe need --head linear")
    if config.cv_folds and (not config.linear_probe or config.cv_folds < 2):
        problems.append("--cv-folds needs --linear-probe and at least 2 folds")
    if config.probe_views < 0 or config.probe_l2 < 0:
        problems.append("--probe-views and --probe-l2 must be >= 0")
    if config.threshold is not None and not 0 <= config.threshold < 1:
        problems.append("--threshold must be in [0, 1)")
    if config.keep_base_classes and not config.base_model:
        problems.append("--keep-base-classes needs --base-model")
    if config.rows not in ROWS:
        problems.append(f"--rows must be one of {', '.join(ROWS)}")
    if not 0 <= config.crop_confidence <= 1 or config.crop_margin < 0:
        problems.append("--crop-confidence must be in [0, 1] and --crop-margin >= 0")
    if config.crop_frames and (config.crops == "none" or not config.linear_probe):
        problems.append("--crop-frames needs --crops detector and --linear-probe")
    if problems:
        raise RecipeError("; ".join(problems))
    return config


# ------------------------------------------------------------------------------------------ command line


# Options a retrain takes from the base bundle's recipe unless the command line gives them (how it was
# trained); the backbone, head and image size are the bundle's own (`train.base.with_base_recipe`). Data, naming and
# output options are the run's.
BASE_RECIPE = (
    "crops",
    "crop_frames",
    "frozen_epochs",
    "unfrozen_epochs",
    "freeze_bn",
    "lr",
    "lr_mult",
    "lr_find_iters",
    "pct_start",
    "weight_decay",
    "dropout",
    "linear_probe",
    "probe_views",
    "probe_l2",
    "cv_folds",
    "threshold",
    "batch_size",
    "mixed_precision",
    "augment",
    "flip",
    "max_rotate",
    "max_zoom",
    "max_lighting",
    "max_warp",
    "balance",
    "label_smoothing",
    "patience",
)


def build_parser(defaults: bool = True) -> argparse.ArgumentParser:
    """The command line, one option per `TrainConfig` field. `defaults=False`: options not given are
    absent from the parsed namespace (how `config_from_args` tells them from defaults)."""
    parser = argparse.ArgumentParser(
        prog="python -m train",
        description="Train a wildlife classifier bundle (model.pkl + report.json) from labeled photos, "
        "or retrain one on corrected predictions (--base-model NAME --data corrected.csv).",
        argument_default=None if defaults else argparse.SUPPRESS,
    )
    hints = typing.get_type_hints(TrainConfig)
    for spec in dataclasses.fields(TrainConfig):
        _add_option(parser, spec, hints[spec.name], defaults)
    return parser


def _add_option(parser: argparse.ArgumentParser, spec: dataclasses.Field, hint: Any, defaults: bool) -> None:
    flag = "--" + spec.name.replace("_", "-")
    base = _unwrap(hint)
    shown = spec.metadata.get("shown") or _shown(spec.default)
    shown = "required" if spec.metadata.get("required") else f"default: {shown}"
    help_text = f"{spec.metadata['help']} ({shown})"
    default = spec.default if defaults else argparse.SUPPRESS
    if base is bool:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        return
    parse = _list_parser(typing.get_args(base)[0]) if typing.get_origin(base) is tuple else base
    parser.add_argument(
        flag,
        type=parse,
        default=default,
        choices=spec.metadata.get("choices"),
        required=spec.metadata.get("required", False),
        help=help_text,
        metavar=spec.name.upper() if not spec.metadata.get("choices") else None,
    )


def _unwrap(hint: Any) -> Any:
    """`X | None` -> X: the type that parses the option's text."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _list_parser(item: type) -> Any:
    def parse(text: str) -> tuple:
        try:
            return tuple(item(part.strip()) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected comma-separated {item.__name__} values"
            ) from None

    parse.__name__ = f"comma-separated {item.__name__}s"
    return parse


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return str(value)
