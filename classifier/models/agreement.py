"""How far bf16 keeps float32's answers, measured on a bundle's held-out photos: what `--precision auto`
(classifier.models.precision) decides by.

The measurement runs the held-out photos through the prediction pipeline at fp32 (decoding, the
detector, its crops) and runs every batch each network is given at bf16 too (`_Compared`), so it compares
exactly the inputs prediction makes, without keeping them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import torch

from classifier.models.bundles import Bundle
from classifier.models.detect import NMS_IOU, DetectorUnavailable, detector_for
from classifier.models.precision import (
    CLASSIFIER,
    DETECTOR,
    Agreement,
    cpu_name,
    detector_sha256,
    record,
    runtime_version,
)
from classifier.models.predictors import PredictorOptions
from classifier.models.runtimes import BF16, FP32, SUPPORTED, load_model, validation_photos
from classifier.models.yolox import postprocess
from classifier.schema.rows import ERROR


def measure(bundle: Bundle, runtime: str, photos: list[Path] | None = None) -> list[Agreement]:
    """Run the bundle's held-out photos (or `photos`) through prediction at fp32 and every batch each
    network gets at bf16 too; record and return each network's agreement. None measured (an empty list)
    when there are no photos, or this runtime does not run bf16 here."""
    photos = validation_photos(bundle) if photos is None else photos
    if not photos or BF16 not in SUPPORTED.get(runtime, ()):
        return []
    reference = load_model(bundle, runtime=runtime, precision=FP32)
    candidate = load_model(bundle, runtime=runtime, precision=BF16)
    if getattr(candidate.network, "precision_in_use", FP32) != BF16:
        return []  # the runtime runs fp32 here: nothing to compare
    classifier = _Compared(reference.network, candidate.network, lambda logits: logits.argmax(1).tolist())
    try:
        detector = detector_for(bundle, runtime, FP32)
    except DetectorUnavailable:
        detector = None
    counts = None
    if detector is not None:
        animals = partial(_animals, confidence=detector.confidence)
        counts = _Compared(detector.network, detector_for(bundle, runtime, BF16).network, animals)
        detector.network = counts
    options = PredictorOptions(detect=detector is not None, top_k=1)
    predictor = options.build(bundle, model=replace(reference, network=classifier), detector=detector)
    done = sum(row.status != ERROR for row in predictor.predict_many(photos))
    common = {
        "runtime": runtime,
        "runtime_version": runtime_version(runtime),
        "photos": done,
        "measured": datetime.now(UTC).date().isoformat(),
        "cpu": cpu_name(),
    }
    found = [
        Agreement(CLASSIFIER, bundle.model_sha256 or "", bundle.image_size, **common, **classifier.figures())
    ]
    if counts is not None and detector is not None:
        found.append(
            Agreement(DETECTOR, detector_sha256() or "", detector.input_size, **common, **counts.figures())
        )
    for agreement in found:
        record(agreement)
    return found


def _animals(outputs: torch.Tensor, *, confidence: float) -> list[int]:
    """The detector's count of animals in each frame of a batch: its boxes at or over `confidence`."""
    return [len(boxes) for boxes in postprocess(outputs, confidence, NMS_IOU)]


class _Compared:
    """A network as prediction calls it that runs each batch at fp32 and at bf16, answers fp32's, and
    counts the inputs whose answer (`answers`: a batch's outputs -> one answer an input) was the same."""

    training = False

    def __init__(self, reference: Any, candidate: Any, answers: Callable[[torch.Tensor], list]) -> None:
        self.reference, self.candidate, self.answers = reference, candidate, answers
        self.same: list[bool] = []  # appended from prediction's threads: list.extend is atomic

    def eval(self) -> _Compared:
        return self

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.scores_and_features(batch)[0]

    def scores_and_features(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The reference's outputs (a classifier's logits and features; the detector's boxes), compared on
        the first."""
        expected, found = _outputs(self.reference, batch), _outputs(self.candidate, batch)
        self.same.extend(
            a == b for a, b in zip(self.answers(expected[0]), self.answers(found[0]), strict=True)
        )
        return expected

    def figures(self) -> dict[str, Any]:
        return {"agreed": round(sum(self.same) / max(len(self.same), 1), 4), "compared": len(self.same)}


def _outputs(network: Any, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
    if hasattr(network, "scores_and_features"):
        return tuple(network.scores_and_features(batch))
    return (network(batch),)
