"""From the recipe's data options to fastai DataLoaders: read, filter, check, split, then load batches.

Items are decoded by `classifier.intake.datasets.ImageReader` (EXIF orientation, any mode to RGB) and squished
(no crop) to a square with bilinear resampling, exactly as prediction resizes a photo; augmentations run
on training batches only, and there is no `Normalize`: the network normalises its own inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fastai.callback import data as _weighted  # noqa: F401  (adds DataBlock.weighted_dataloaders)
from fastai.data.block import CategoryBlock, DataBlock, TransformBlock
from fastai.data.core import DataLoaders
from fastai.data.transforms import ColReader, ColSplitter, IntToFloatTensor
from fastai.vision.augment import Resize, ResizeMethod, aug_transforms

from classifier.intake.datasets import (
    Dataset,
    DatasetError,
    ImageReader,
    Split,
    check_images,
    drop_empty,
    drop_small_classes,
    first_frames,
    keep_classes,
    keep_top_classes,
    read_dataset,
    split_dataset,
)
from train.base import BaseModel, in_base_spelling
from train.recipe import TrainConfig


@dataclass
class TrainingData:
    dataset: Dataset
    split: Split
    classes: list[str]
    frame: pd.DataFrame  # path (absolute), file (relative to the dataset root), label, is_valid
    detector: dict[str, Any] | None = None  # trained on the detector's crops (train/crops.py): its settings

    @property
    def train_labels(self) -> list[str]:
        return [r.label for r in self.split.train]


def load_training_data(config: TrainConfig, base: BaseModel | None = None) -> TrainingData:
    """Read the dataset, apply the recipe's filters, skip unusable images, split.

    With a `base` bundle (a retrain): labels take the base's spelling, blank rows of a predictions csv
    count when the base has a blank class, and the classes are the data's (plus the base's with
    --keep-base-classes); a class the base has needs no training photo of its own (its head row is
    carried over).
    """
    blank = base.blank_class if base is not None else None
    dataset = read_dataset(
        config.data,
        config.format,
        image_root=config.image_root,
        multi_label=config.multi_label,
        supercategories=config.supercategory,
        rows=config.rows,
        blank=blank or ("blank" if config.blank_class else None),
    )
    if base is not None:
        dataset = in_base_spelling(dataset, base)
    dataset = _filtered(dataset, config)
    if config.linear_probe and config.cv_folds >= 2:
        # Cross-validation judges every photo and the head is fitted on all of them: no split to make.
        split = Split(list(dataset.records), [], f"{config.cv_folds}-fold cross-validation")
    else:
        split = split_dataset(dataset, config.split, config.valid_pct, config.seed)
    known = set(base.classes) if base is not None else set()
    classes = sorted(
        {r.label for r in split.train}
        | {r.label for r in split.valid}
        | (known if config.keep_base_classes else set())
    )
    untrained = sorted({r.label for r in split.valid} - {r.label for r in split.train} - known)
    if untrained:
        raise DatasetError(f"classes with no training images after the split: {', '.join(untrained)}.")
    if len(classes) < 2:
        raise DatasetError(
            f"{dataset.source}: only one class ({classes[0]}); a classifier needs two or more"
            + (" (--keep-base-classes keeps the base model's)." if base is not None else ".")
        )
    rows = [(r, False) for r in split.train] + [(r, True) for r in split.valid]
    frame = pd.DataFrame(
        {
            "path": [str(dataset.path(r)) for r, _ in rows],
            "file": [r.file for r, _ in rows],
            "label": [r.label for r, _ in rows],
            "is_valid": [v for _, v in rows],
        }
    )
    return TrainingData(dataset, split, classes, frame)


def _filtered(dataset: Dataset, config: TrainConfig) -> Dataset:
    if config.classes:
        dataset = keep_classes(dataset, config.classes)
    if config.drop_empty:
        dataset = drop_empty(dataset, config.drop_empty, seed=config.seed)
    if config.first_frame:
        dataset = first_frames(dataset)
    dataset = check_images(dataset, decode=config.verify_images, workers=os.cpu_count() or 1)
    if config.min_images:
        dataset = drop_small_classes(dataset, config.min_images)
    if config.top_classes:
        dataset = keep_top_classes(dataset, config.top_classes)
    if not dataset.records:
        raise DatasetError(
            f"{dataset.source}: no images left after the filters; loosen --classes/--min-images."
        )
    return dataset


def augmentations(config: TrainConfig) -> list:
    if not config.augment:
        return []
    return aug_transforms(
        do_flip=config.flip,
        flip_vert=False,  # camera traps and landscapes are never upside down
        max_rotate=config.max_rotate,
        max_zoom=config.max_zoom,
        max_lighting=config.max_lighting,
        max_warp=config.max_warp,
    )


def make_dataloaders(
    data: TrainingData, config: TrainConfig, size: int, *, for_export: bool = False
) -> DataLoaders:
    """Loaders at `size`. `for_export`: no oversampling and no worker processes, for the saved learner."""
    block = DataBlock(
        blocks=(
            TransformBlock(type_tfms=ImageReader(size), batch_tfms=IntToFloatTensor),
            CategoryBlock(vocab=data.classes),
        ),
        get_x=ColReader("path"),
        get_y=ColReader("label"),
        splitter=ColSplitter("is_valid"),
        item_tfms=Resize(size, method=ResizeMethod.Squish),
        batch_tfms=augmentations(config),
    )
    options = {"bs": config.batch_size, "num_workers": 0 if for_export else config.workers}
    if config.balance == "oversample" and not for_export:
        counts = data.frame["label"].value_counts()
        weights = (1.0 / data.frame["label"].map(counts)).to_numpy(dtype=np.float64)
        return block.weighted_dataloaders(data.frame, wgts=weights, **options)
    return block.dataloaders(data.frame, **options)
