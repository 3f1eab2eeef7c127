"""Few-shot training: a linear head fitted on frozen backbone features by L-BFGS, checked by k-fold CV.

With three photos a class, fine-tuning has almost nothing to learn from and a one-cycle schedule of SGD
epochs is mostly noise. Instead every photo is decoded once, the frozen backbone turns it (and its mirror
image, and `probe_views` augmented copies) into pooled features, and the linear head (with its ImageNet
prior, when the recipe names one) is fitted to them exactly: L-BFGS, label smoothing, an L2 penalty on
standardised features. That takes seconds, so the report can be honest on tiny data: with `cv_folds` the
photos are split into folds (stratified by class), each fold is predicted by a head fitted without it,
and the shipped head is then fitted on every photo.

Retraining a bundle (`--base-model`), the head starts as the base's (its rows for the classes it keeps,
zeros for new ones) and the penalty pulls towards those rows instead of towards zero: the corrections move
the head as far as they show, and a class with few or no photos in them keeps what the base learned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from fastai.learner import Learner
from fasttransform import Pipeline

from classifier.models.heads import LinearScores, assign_folds, fit
from classifier.models.network import LinearHead
from classifier.results.report import evaluate
from train.data import TrainingData, augmentations
from train.recipe import TrainConfig


@dataclass
class Views:
    """Pooled features of every view of every photo, and the photo each view came from."""

    features: torch.Tensor  # (views x photos, C)
    labels: torch.Tensor  # (views x photos,)
    photo: torch.Tensor  # (views x photos,) index into the frame
    plain: torch.Tensor  # (views x photos,) True for the unaltered photo itself

    def plus(self, more: Views) -> Views:
        """These views and `more` (of the same photos, in the same order), whose are never plain."""
        return Views(
            torch.cat([self.features, more.features]),
            torch.cat([self.labels, more.labels]),
            torch.cat([self.photo, more.photo]),
            torch.cat([self.plain, torch.zeros_like(more.plain)]),
        )

    def take(self, photos: np.ndarray, plain_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        keep = torch.from_numpy(np.isin(self.photo.numpy(), photos))
        if plain_only:
            keep &= self.plain
        return self.features[keep], self.labels[keep]


@dataclass
class ProbeResult:
    probabilities: np.ndarray  # held-out predictions, one row per evaluated photo
    targets: np.ndarray
    files: list[str]
    history: list[dict[str, Any]]
    split: str


def fit_probe(
    learn: Learner, data: TrainingData, config: TrainConfig, whole: pd.DataFrame | None = None
) -> ProbeResult:
    """Fit `learn.model`'s linear head on frozen features; return held-out predictions for the report.

    `whole`: the same photos (same rows) uncropped, whose views train the head too but are never the
    photo a held-out prediction is made from.
    """
    head = learn.model.head
    if not isinstance(head, LinearHead):
        raise ValueError("the linear probe needs the linear head (--head linear)")
    frame = data.frame.reset_index(drop=True)
    anchor = head.scores() if config.base_model else None  # before any fit changes the head
    views = extract_views(learn, frame, config)
    if whole is not None:
        views = views.plus(extract_views(learn, whole.reset_index(drop=True), config))
    if config.cv_folds <= 1:
        # the head is fitted on the training photos
        return _held_out(head, views, frame, data.classes, config, anchor)
    result = _cross_validate(head, views, frame, data.classes, config, anchor)
    fit_head(head, *views.take(np.arange(len(frame))), config.probe_l2, config.label_smoothing, anchor)
    return result


def extract_views(learn: Learner, frame: pd.DataFrame, config: TrainConfig) -> Views:
    """Decode each photo once; features of it, its mirror image and `probe_views` augmented copies."""
    loader = learn.dls.test_dl(frame, with_labels=True)
    augment = Pipeline(augmentations(config), split_idx=0)  # split 0: the training-time transforms
    model = learn.model.eval()
    parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]] = []
    start = 0
    with torch.inference_mode():
        for images, labels in loader:
            photos = torch.arange(start, start + len(labels))
            start += len(labels)
            copies = [images, images.flip(3)] + [augment(images) for _ in range(config.probe_views)]
            labels = labels.as_subclass(torch.Tensor)  # fastai's tensor types would leak into the loss
            parts += [
                (model.features(x).as_subclass(torch.Tensor), labels, photos, i == 0)
                for i, x in enumerate(copies)
            ]
    return Views(
        torch.cat([p[0] for p in parts]).float(),
        torch.cat([p[1] for p in parts]).long(),
        torch.cat([p[2] for p in parts]),
        torch.cat([torch.full((len(p[1]),), p[3]) for p in parts]),
    )


def fit_head(
    head: LinearHead,
    features: torch.Tensor,
    labels: torch.Tensor,
    l2: float,
    smoothing: float,
    anchor: LinearScores | None = None,
) -> None:
    """Fit the head on `features` in place (classifier.models.heads.fit): from zeros, or from `anchor`
    (the base's head, a retrain) and pulled towards it."""
    start = anchor if anchor is not None else head.scores()
    head.set_scores(fit(start, features, labels, l2, smoothing, anchored=anchor is not None))


def predict_head(head: LinearHead, features: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return head.eval().from_pooled(features).softmax(1).numpy()


def _cross_validate(
    head: LinearHead,
    views: Views,
    frame: pd.DataFrame,
    classes: list[str],
    config: TrainConfig,
    anchor: LinearScores | None = None,
) -> ProbeResult:
    fold = assign_folds(list(frame["label"]), config.cv_folds, config.seed)
    probabilities = np.zeros((len(frame), len(classes)))
    history = []
    for k in sorted(set(fold.tolist())):
        started = time.perf_counter()
        held = np.flatnonzero(fold == k)
        fit_head(
            head, *views.take(np.flatnonzero(fold != k)), config.probe_l2, config.label_smoothing, anchor
        )
        features, targets = views.take(held, plain_only=True)
        probabilities[held] = predict_head(head, features)
        files = list(frame["file"][held])
        history.append(_history_row(k, probabilities[held], targets, files, classes, config, started))
    return ProbeResult(
        probabilities,
        views.take(np.arange(len(frame)), plain_only=True)[1].numpy(),
        list(frame["file"]),
        history,
        f"{len(history)}-fold cross-validation, stratified by class (every photo predicted by a head "
        "fitted without it)",
    )


def _held_out(
    head: LinearHead,
    views: Views,
    frame: pd.DataFrame,
    classes: list[str],
    config: TrainConfig,
    anchor: LinearScores | None = None,
) -> ProbeResult:
    started = time.perf_counter()
    valid = frame["is_valid"].to_numpy()
    held = np.flatnonzero(valid)
    fit_head(head, *views.take(np.flatnonzero(~valid)), config.probe_l2, config.label_smoothing, anchor)
    features, targets = views.take(held, plain_only=True)
    probabilities = predict_head(head, features)
    files = list(frame["file"][held])
    history = [_history_row(0, probabilities, targets, files, classes, config, started)]
    return ProbeResult(probabilities, targets.numpy(), files, history, "")


def _history_row(
    k: int,
    probabilities: np.ndarray,
    targets: torch.Tensor,
    files: list[str],
    classes: list[str],
    config: TrainConfig,
    started: float,
) -> dict[str, Any]:
    """One history row per fitted head, in the report's epoch format, with the report's own metrics."""
    metrics = evaluate(probabilities, targets.numpy(), classes, files, top_losses=0)["metrics"]
    return {
        "stage": "frozen",
        "epoch": k,
        "image_size": config.sizes[-1],
        "train_loss": None,
        "valid_loss": metrics["valid_loss"],
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "seconds": round(time.perf_counter() - started, 2),
    }
