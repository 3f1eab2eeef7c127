"""Per-epoch checkpoints under RUNS_DIR/NAME, so an interrupted run continues with `--resume`.

A run folder holds `checkpoint.pth` (weights and optimiser state after the last finished epoch) and
`progress.json` (the recipe, the classes, which stage and epoch are done, the history so far and the
learning rate in use). Both are replaced atomically: an interruption mid-write leaves the previous pair.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastai.callback.core import Callback
from fastai.learner import Learner, load_model, save_model

from train.distributed import is_main

# Options that may differ between a run and its resumption without changing what is trained.
_FREE_OPTIONS = frozenset({"resume", "workers", "out_dir", "runs_dir", "title", "verify_images"})


class ResumeError(ValueError):
    """A run that cannot be resumed as asked, with the reason."""


@dataclass
class RunState:
    folder: Path
    recipe: dict[str, Any]
    classes: list[str]
    stage: int = 0  # index into TrainConfig.stages()
    epochs_done: int = 0  # finished epochs of that stage
    history: list[dict[str, Any]] = field(default_factory=list)
    lr: float | None = None
    lr_find: dict[str, Any] | None = None

    @property
    def weights(self) -> Path:
        return self.folder / "checkpoint.pth"

    @property
    def progress(self) -> Path:
        return self.folder / "progress.json"

    def save(self, learn: Learner | None = None) -> None:
        if not is_main():  # across processes, the first one writes for all
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        if learn is not None:
            partial = self.weights.with_name("checkpoint.pth.tmp")
            save_model(partial, learn.model, getattr(learn, "opt", None), with_opt=True)
            os.replace(partial, self.weights)
        state = {
            k: getattr(self, k)
            for k in ("recipe", "classes", "stage", "epochs_done", "history", "lr", "lr_find")
        }
        partial = self.progress.with_name("progress.json.tmp")
        partial.write_text(json.dumps(state, indent=1), encoding="utf-8")
        os.replace(partial, self.progress)

    def restore_weights(self, learn: Learner) -> None:
        if self.weights.exists():
            if learn.opt is None:
                learn.create_opt()
            load_model(self.weights, learn.model, learn.opt, with_opt=True, device=learn.dls.device)


def start_run(folder: Path, recipe: dict[str, Any], classes: list[str], resume: bool) -> RunState:
    """A fresh run state, or with `resume` the saved one after checking it trains the same thing."""
    if not resume:
        for stale in ("checkpoint.pth", "progress.json"):
            (folder / stale).unlink(missing_ok=True)
        return RunState(folder, recipe, classes)
    progress = folder / "progress.json"
    if not progress.exists():
        raise ResumeError(f"{folder}: nothing to resume (no progress.json); run without --resume.")
    saved = json.loads(progress.read_text(encoding="utf-8"))
    changed = sorted(
        k
        for k in recipe.keys() | saved["recipe"].keys()
        if k not in _FREE_OPTIONS and recipe.get(k) != saved["recipe"].get(k)
    )
    if changed:
        raise ResumeError(
            f"{folder}: the run was started with other options ({', '.join(changed)}); use the same ones."
        )
    if saved["classes"] != classes:
        raise ResumeError(f"{folder}: the data now has other classes than when the run started.")
    return RunState(
        folder,
        recipe,
        classes,
        saved["stage"],
        saved["epochs_done"],
        saved["history"],
        saved["lr"],
        saved["lr_find"],
    )


class EpochRecorder(Callback):
    """After each finished epoch: one history row, then a checkpoint (train-only: never exported)."""

    order = 55  # after fastai's Recorder (50) fills in the epoch's values, before early stopping (60)

    def __init__(self, run: RunState, stage: str, size: int, skip_to: int = 0) -> None:
        self.run, self.stage, self.size, self.skip_to = run, stage, size, skip_to

    def before_epoch(self) -> None:
        self.started = time.perf_counter()
        self.train_seconds = 0.0

    def before_train(self) -> None:
        self.train_started = time.perf_counter()

    def after_train(self) -> None:
        self.train_seconds = time.perf_counter() - self.train_started

    def after_epoch(self) -> None:
        if self.epoch < self.skip_to:  # fastai's SkipToEpoch cancelled it: done before the interruption
            return
        names = list(self.learn.recorder.metric_names[1:-1])  # drop "epoch" and "time"
        values = dict(zip(names, self.learn.recorder.values[-1], strict=False))
        self.run.history.append(
            {
                "stage": self.stage,
                "epoch": len(self.run.history),
                "image_size": self.size,
                "train_loss": _number(values.get("train_loss")),
                "valid_loss": _number(values.get("valid_loss")),
                "accuracy": _number(values.get("accuracy")),
                "macro_f1": _number(values.get("f1_score")),
                "seconds": round(time.perf_counter() - self.started, 2),
                "train_seconds": round(self.train_seconds, 2),
            }
        )
        self.run.epochs_done = self.epoch + 1
        self.run.save(self.learn)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
