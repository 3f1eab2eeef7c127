"""The bundle's own photos, where they are on this disk: its training photos calibrate int8, its held-out
photos measure bf16's agreement with fp32 (`classifier.models.precision`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from classifier.intake.decoding import decode_item
from classifier.intake.inputs import item_for_path
from classifier.models.bundles import Bundle, BundleError

if TYPE_CHECKING:
    import numpy as np

# int8 calibration: at most this many photos, spread over the classes (the bundle's training photos).
CALIBRATION_PHOTOS = 160
CALIBRATION_FRAMES = 48  # the detector's: whole frames at 640 px are slow to calibrate on
# bf16's agreement with fp32 (classifier.models.precision): at most this many held-out photos.
VALIDATION_PHOTOS = 600


def calibration_photos(bundle: Bundle, limit: int = CALIBRATION_PHOTOS) -> list[Path]:
    """The bundle's own training photos for int8 calibration: its report's dataset (recipe `data`, else
    `data.root`), where on disk, split as its training run split it (its validation photos are left
    out; with cross-validation every photo trained the shipped model), spread over the classes. A
    `BundleError` when they are not there."""
    photos = _dataset_photos(bundle, validation=False)
    if photos is None:
        raise BundleError(
            f"{bundle.report_path}: int8 calibrates on the bundle's training photos, which are not on this "
            f"disk ({_dataset_name(bundle)!r}); use --precision fp32."
        )
    return photos[:limit]


def validation_photos(bundle: Bundle, limit: int = VALIDATION_PHOTOS) -> list[Path]:
    """The photos the bundle's training run held out (with cross-validation, every photo: each was held
    out by a fold), spread over the classes; none when its dataset is not on this disk."""
    return (_dataset_photos(bundle, validation=True) or [])[:limit]


def _dataset_name(bundle: Bundle) -> str | None:
    data, recipe = bundle.report.get("data") or {}, bundle.report.get("recipe") or {}
    return next(
        (v for v in (recipe.get("data"), data.get("root"), data.get("source")) if isinstance(v, str)), None
    )


def _dataset_photos(bundle: Bundle, *, validation: bool) -> list[Path] | None:
    """The training (or validation) part of the bundle's dataset as its run split it, spread over the
    classes; None when the dataset is not on this disk."""
    from classifier.intake.datasets import DatasetError, read_dataset, split_dataset

    recipe, named = bundle.report.get("recipe") or {}, _dataset_name(bundle)
    candidates = []
    if named:
        root = Path(named)
        candidates = (
            [root] if root.is_absolute() else [Path.cwd() / root, Path(__file__).resolve().parents[3] / root]
        )
    for root in candidates:
        if not root.exists():
            continue
        try:
            dataset = read_dataset(root, recipe.get("format"), image_root=recipe.get("image_root"))
            records = dataset.records
            if not recipe.get("cv_folds"):
                how = recipe.get("split") or "auto"
                split = split_dataset(dataset, how, recipe.get("valid_pct", 0.2), recipe.get("seed", 42))
                records = split.valid if validation else split.train
        except (DatasetError, OSError, TypeError, ValueError):
            continue
        by_class: dict[str, list[Path]] = {}
        for record in records:
            by_class.setdefault(record.label, []).append(dataset.path(record))
        spread = [photo for rank in _round_robin(list(by_class.values())) for photo in rank]
        if spread:
            return spread
    return None


def _round_robin(groups: list[list[Path]]) -> Iterator[list[Path]]:
    for rank in range(max((len(g) for g in groups), default=0)):
        yield [g[rank] for g in groups if rank < len(g)]


def _classifier_calibration(photos: list[Path], size: int) -> Iterator[np.ndarray]:
    for photo in photos:
        pixels = decode_item(item_for_path(photo), size).pixels
        if pixels is not None:
            yield (pixels[None].astype("float32") / 255.0).astype("float32")
