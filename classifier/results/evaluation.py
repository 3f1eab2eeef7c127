"""A bundle scored on a labelled collection (`python -m classifier evaluate`): its photos of the bundle's
classes predicted whole (the classifier alone, as the photos are), then the report `report.evaluate`
makes of the answers, with what was left out and why."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from classifier.intake.datasets import Dataset
from classifier.intake.inputs import item_for_path
from classifier.models.bundles import Bundle
from classifier.models.predict import Predictor
from classifier.results.report import evaluate
from classifier.schema.rows import ERROR


class EvaluationError(ValueError):
    """Nothing to score (no photo of the bundle's classes, or none decodes); one line for the user."""


@dataclass
class Evaluation:
    report: dict[str, Any]
    unknown: Counter[str]  # photos of classes the bundle does not predict, by class
    unreadable: int  # photos left out because they could not be read or decoded


def evaluate_bundle(
    bundle: Bundle, dataset: Dataset, predictor: Predictor, *, seen: Callable[[], None] = lambda: None
) -> Evaluation:
    """The bundle's report on `dataset`'s photos of its classes; `seen` is called after each photo."""
    known = {name: index for index, name in enumerate(bundle.classes)}
    records = [r for r in dataset.records if r.label in known]
    unknown = Counter(r.label for r in dataset.records if r.label not in known)
    skipped = list(dataset.skipped) + [
        {"file": r.file, "reason": f"class {r.label!r} is not one the model predicts"}
        for r in dataset.records
        if r.label not in known
    ]
    if not records:
        shown = ", ".join(bundle.classes[:8]) + (", ..." if len(bundle.classes) > 8 else "")
        raise EvaluationError(
            f"{dataset.source}: none of its {len(dataset.records)} labeled photos has a class of model "
            f"{bundle.name!r} (its classes: {shown})."
        )
    probabilities, targets, files, unreadable = [], [], [], 0
    rows = predictor.predict_many([item_for_path(dataset.path(r)) for r in records])
    for record, row in zip(records, rows, strict=True):
        seen()
        if row.status == ERROR:
            skipped.append({"file": record.file, "reason": row.error})
            unreadable += 1
            continue
        probabilities.append(row.probabilities)
        targets.append(known[record.label])
        files.append(record.file)
    if not probabilities:
        raise EvaluationError(
            f"{dataset.source}: no photo could be decoded (first problem: {skipped[0]['reason']})."
        )
    report = evaluate(probabilities, targets, bundle.classes, files)
    report.update(
        name=bundle.name,
        title=bundle.title,
        model_sha256=bundle.model_sha256 or "",
        image_size=bundle.image_size,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        data={
            "source": dataset.source,
            "format": dataset.format,
            "n_images": len(files),
            "n_skipped": len(skipped),
        },
        skipped=skipped,
    )
    return Evaluation(report, unknown, unreadable)
