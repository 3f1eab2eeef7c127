"""The training run: data -> learner -> stages (frozen, then unfrozen at each size) -> bundle.

Read top to bottom: `train` loads the data, builds the learner, finds a learning rate, fits each stage
with a one-cycle schedule (checkpointing every epoch), evaluates on the validation images, and writes
`OUT_DIR/NAME/model.pkl` and `report.json`. With `--base-model` the learner starts from that bundle's
network and the report compares the two on the same validation images (train/base.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastai
import numpy as np
import timm
import torch
import torchvision
from fastai.callback import fp16, schedule  # noqa: F401  (add to_fp16, lr_find and fit_one_cycle to Learner)
from fastai.callback.tracker import EarlyStoppingCallback
from fastai.learner import Callback, Learner
from fastai.losses import CrossEntropyLossFlat, LabelSmoothingCrossEntropyFlat
from fastai.metrics import F1Score, accuracy
from fastai.torch_core import set_seed

from classifier.models.network import body_head_splitter, build_network
from classifier.results.report import evaluate, write_report
from train.base import BaseModel, compare_with_base, load_base, network_for
from train.checkpoint import EpochRecorder, RunState, start_run
from train.crops import crop_photos
from train.data import TrainingData, load_training_data, make_dataloaders
from train.distributed import alone, data_parallel, is_main, same_everywhere, train_across
from train.imagenet_prior import read_prior
from train.probe import fit_probe
from train.recipe import TrainConfig, check

FALLBACK_LR = 1e-3  # used when the finder's curve gives no usable suggestion (tiny or odd data)


@dataclass
class TrainResult:
    bundle: Path
    report: dict[str, Any]
    seconds: float
    train_images_per_second: float


def train(config: TrainConfig, quiet: bool = False) -> TrainResult:
    """Run the whole recipe and write the bundle; see the module docstring."""
    started = time.perf_counter()
    check(config)
    if config.processes > 1 and not torch.distributed.is_initialized():
        return train_across(train, config, quiet)  # which runs this in each of its processes
    set_seed(config.seed, reproducible=True)
    base = load_base(config) if config.base_model else None
    data = load_training_data(config, base)
    run = start_run(Path(config.runs_dir) / config.name, config.as_dict(), data.classes, config.resume)
    cropped = crop_photos(data, config, run.folder / "crops") if config.crops == "detector" else None
    data = cropped.data if cropped else data
    learn = build_learner(data, config, run.folder, base)
    with _quiet(learn, quiet):
        if config.linear_probe:
            frames = cropped.frames if cropped and config.crop_frames else None
            report = finish_probe(learn, data, config, run, base, frames)
        else:
            fit_stages(learn, data, config, run, resuming=config.resume)
            report = {}
            if is_main():
                with alone():
                    report = finish(learn, data, config, run, base)
    seconds = time.perf_counter() - started
    train_seconds = sum(row.get("train_seconds", 0.0) for row in run.history)
    seen = len(data.split.train) * len(run.history)
    bundle = Path(config.out_dir) / config.name
    return TrainResult(bundle, report, seconds, seen / train_seconds if train_seconds else 0.0)


def build_learner(
    data: TrainingData, config: TrainConfig, folder: Path, base: BaseModel | None = None
) -> Learner:
    folder.mkdir(parents=True, exist_ok=True)
    dls = make_dataloaders(data, config, config.sizes[0])
    known = base.classes if base is not None else ()
    groups = read_prior(config.imagenet_prior, data.classes, known) if config.imagenet_prior else None
    if base is not None:
        model = network_for(base, data.classes, groups)
    else:
        model = build_network(
            config.backbone,
            len(data.classes),
            pretrained=config.pretrained,
            dropout=config.dropout,
            head=config.head,
            imagenet_groups=groups,
        )
    learn = Learner(
        dls,
        model,
        loss_func=make_loss(data, config, dls.device),
        metrics=[accuracy, F1Score(average="macro")],
        splitter=body_head_splitter,
        path=folder,
        model_dir=".",
        wd=config.weight_decay,
        train_bn=not config.freeze_bn,
    )
    if config.mixed_precision and torch.cuda.is_available():
        learn.to_fp16()
    return learn


def make_loss(data: TrainingData, config: TrainConfig, device: torch.device) -> torch.nn.Module:
    weight = None
    if config.balance == "weighted":  # each class weighs as much in total: n / (classes x class count)
        counts = np.array([data.train_labels.count(c) for c in data.classes], dtype=np.float64)
        # A class kept from a base model without photos here is never a target: its weight is moot.
        shares = np.divide(
            len(data.train_labels), len(counts) * counts, where=counts > 0, out=np.ones_like(counts)
        )
        weight = torch.tensor(shares, dtype=torch.float32, device=device)
    if config.label_smoothing > 0:
        return LabelSmoothingCrossEntropyFlat(eps=config.label_smoothing, weight=weight)
    return CrossEntropyLossFlat(weight=weight)


def fit_stages(
    learn: Learner, data: TrainingData, config: TrainConfig, run: RunState, resuming: bool
) -> None:
    """Each stage a one-cycle fit; stages and epochs a resumed run already finished are skipped."""
    stages = config.stages()
    for index, (stage, size, epochs) in enumerate(stages):
        if index < run.stage:
            continue
        _prepare_stage(learn, data, config, stage, size)
        if resuming:  # weights and optimiser state as the last finished epoch left them
            run.restore_weights(learn)
            resuming = False
        if run.lr is None:
            run.lr, run.lr_find = same_everywhere(pick_lr(learn, config))
        head_lr = run.lr if stage == "frozen" else run.lr / 2  # unfrozen: half, as fastai's fine_tune
        lr_max = head_lr if stage == "frozen" else slice(head_lr / config.lr_mult, head_lr)
        callbacks = [EpochRecorder(run, stage, size, skip_to=run.epochs_done)]
        if config.freeze_bn:
            callbacks.append(KeepBatchNormStatistics())
        if config.patience:
            callbacks.append(EarlyStoppingCallback(monitor="valid_loss", patience=config.patience))
        with data_parallel(learn):
            learn.fit_one_cycle(
                epochs, lr_max, pct_start=config.pct_start, cbs=callbacks, start_epoch=run.epochs_done
            )
        run.stage, run.epochs_done = index + 1, 0
        run.save(learn)
    if resuming:  # every stage was done: only the export was left
        _prepare_stage(learn, data, config, *stages[-1][:2])
        run.restore_weights(learn)


def _prepare_stage(learn: Learner, data: TrainingData, config: TrainConfig, stage: str, size: int) -> None:
    learn.dls = make_dataloaders(data, config, size)
    if stage == "frozen":
        learn.freeze()
    else:
        learn.unfreeze()


def _quiet(learn: Learner, quiet: bool) -> contextlib.AbstractContextManager:
    stack = contextlib.ExitStack()
    if quiet:
        stack.enter_context(learn.no_bar())
        stack.enter_context(learn.no_logging())
    return stack


class KeepBatchNormStatistics(Callback):
    """Keep the backbone's ImageNet batch-norm statistics in every stage.

    Measured on the Intel scenes: re-estimating them from 32-image augmented batches cost 4 points of
    accuracy in the first unfrozen epoch (0.908 -> 0.863) while the weights barely moved.
    """

    def before_train(self) -> None:  # runs after fastai puts the model in training mode
        network = getattr(self.learn.model, "module", self.learn.model)  # inside DistributedDataParallel
        for module in network.body.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()


def pick_lr(learn: Learner, config: TrainConfig) -> tuple[float, dict[str, Any] | None]:
    """The recipe's --lr, else the finder's valley suggestion (recorded for the report)."""
    if config.lr is not None:
        return config.lr, None
    suggestion = learn.lr_find(num_it=config.lr_find_iters, show_plot=False)
    valley = float(suggestion.valley)
    usable = math.isfinite(valley) and valley > 0
    found = {"valley": valley if usable else None, "num_it": config.lr_find_iters, "stage": "frozen"}
    if not usable:
        found["fallback"] = FALLBACK_LR
    return (valley if usable else FALLBACK_LR), found


def finish(
    learn: Learner, data: TrainingData, config: TrainConfig, run: RunState, base: BaseModel | None = None
) -> dict[str, Any]:
    """Evaluate on the validation images, export the learner, write the report; returns the report."""
    probs, targets = learn.get_preds(ds_idx=1)
    files = list(learn.dls.valid.items["file"])
    evaluation = evaluate(probs.numpy(), targets.numpy(), data.classes, files, threshold=config.threshold)
    if base is not None:
        paths = list(learn.dls.valid.items["path"])
        evaluation["base_model"] = _against_base(base, data, config, paths, probs.numpy(), targets.numpy())
    return write_bundle(learn, data, config, run, evaluation)


def finish_probe(
    learn: Learner,
    data: TrainingData,
    config: TrainConfig,
    run: RunState,
    base: BaseModel | None = None,
    frames: TrainingData | None = None,
) -> dict[str, Any]:
    """The few-shot path: fit the linear head (see train/probe.py), report on held-out photos, export.
    `frames`: the same photos whole, as extra training views of each (--crop-frames)."""
    result = fit_probe(learn, data, config, None if frames is None else frames.frame)
    run.history = result.history
    report = evaluate(
        result.probabilities, result.targets, data.classes, result.files, threshold=config.threshold
    )
    if base is not None:
        path_of = dict(zip(data.frame["file"], data.frame["path"], strict=True))
        paths = [path_of[file] for file in result.files]
        report["base_model"] = _against_base(base, data, config, paths, result.probabilities, result.targets)
    # Cross-validated: every photo trained the shipped head and every photo was predicted without it.
    facts = {
        "n_train": len(data.frame),
        "n_valid": len(data.frame),
        "split": result.split,
        "train_counts": dict(sorted(_counts(data.split.train + data.split.valid).items())),
    }
    return write_bundle(learn, data, config, run, report, facts if config.cv_folds else None)


def _against_base(
    base: BaseModel,
    data: TrainingData,
    config: TrainConfig,
    paths: list[str],
    probabilities: np.ndarray,
    targets: np.ndarray,
) -> dict[str, Any]:
    """The base bundle on the very photos the new model was judged on, at the base's own image size."""
    loaders = make_dataloaders(data, config, base.bundle.image_size, for_export=True)
    return compare_with_base(base, paths, probabilities, targets, data.classes, loaders)


def write_bundle(
    learn: Learner,
    data: TrainingData,
    config: TrainConfig,
    run: RunState,
    evaluation: dict[str, Any],
    data_facts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    bundle = Path(config.out_dir) / config.name
    model_file = export(learn, data, config, bundle)
    header = _header(config, data, run, model_file)
    header["data"].update(data_facts or {})
    report = {**header, **evaluation}
    write_report(report, bundle / "report.json")
    return report


def export(learn: Learner, data: TrainingData, config: TrainConfig, bundle: Path) -> Path:
    """`Learner.export()` with only inference parts: fp32, plain loaders, no train-only callbacks."""
    bundle.mkdir(parents=True, exist_ok=True)
    if hasattr(learn, "mixed_precision"):
        learn.to_fp32()
    training_path = learn.path
    learn.dls = make_dataloaders(data, config, config.sizes[-1], for_export=True)
    learn.path = Path(".")  # the pickle should not carry this machine's folders
    partial = bundle / "model.pkl.tmp"
    try:
        learn.export(partial.resolve())
        os.replace(partial, bundle / "model.pkl")
    finally:
        learn.path = training_path
    return bundle / "model.pkl"


def _header(config: TrainConfig, data: TrainingData, run: RunState, model_file: Path) -> dict[str, Any]:
    return {
        "name": config.name,
        "title": config.title or config.name,
        "arch": config.backbone,
        "image_size": config.sizes[-1],
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {
            "fastai": fastai.__version__,
            "torch": torch.__version__,
            "timm": timm.__version__,
            "torchvision": torchvision.__version__,
        },
        "data": {
            "source": str(config.data),
            "root": str(data.dataset.root),  # top_losses files are relative to it
            "format": data.dataset.format,
            "n_train": len(data.split.train),
            "n_valid": len(data.split.valid),
            "split": data.split.method,
            "train_counts": dict(sorted(_counts(data.split.train).items())),
            "left_out": data.dataset.left_out,  # predictions csv rows that were not training data
        },
        "model_sha256": _sha256(model_file),
        "recipe": config.as_dict(),
        "lr_find": run.lr_find,
        "lr": run.lr,
        "history": run.history,
        "skipped": data.dataset.skipped,
    } | ({"detector": data.detector} if data.detector else {})  # the bundle finds animals first


def _counts(records: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.label] = counts.get(record.label, 0) + 1
    return counts


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
