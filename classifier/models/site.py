"""A model that knows a site, from a person's review: the base bundle's linear head fitted on what the
classifier saw of the reviewed photos (their kept embeddings, classifier/models/embeddings.py), with the
classes the person typed added; and the rest of the batch answered again from its kept embeddings, through
the same verdict (classifier/models/verdict.py). Neither the detector nor the backbone runs again, so
both take seconds (benchmarks/learning_loop.py measures them).

The fit (`classifier.models.heads.fit`, anchored) starts from the base's head and the penalty pulls towards
it: a class the review does not show keeps what the base learned, a class a person typed gets a row of
its own. Each reviewed photo teaches with every box its answer rests on (the crop) and the whole frame,
as the serengeti bundle was trained (crops, with frames as extra views); a photo counts once, however many
boxes it has. Rows labelled blank, unknown or left unreadable teach nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
import torch

from classifier.intake.datasets import EMPTY_LABELS
from classifier.models.embeddings import Embeddings, photo_keys
from classifier.models.heads import LinearScores, assign_folds, fit
from classifier.models.verdict import Found, Rules, detected_row, joined_scores, whole_frame_row
from classifier.schema.rows import BLANK, ERROR, MACHINE, Row

L2, SMOOTHING = 0.5, 0.1  # the serengeti recipe's probe penalty and label smoothing
# A typed class starts at zero and its bias costs nothing: fitted to a few photos of one park, it grew
# until the class was the best guess for much of the batch (10 photos chosen by the queue: 27% of the
# other answers at Chimp&See, 40% at Chicago, 63% at Wisconsin). Pulling every bias towards its start
# keeps that to 10%, 7%, 29%, with the rest as right or better (benchmarks/learning_loop.py).
BIAS_L2 = 0.1
NOT_CLASSES = EMPTY_LABELS | {"unknown", ""}  # labels that name no animal to learn


class SiteError(ValueError):
    """A review that cannot teach a model; `str()` is one line saying what to do."""


@dataclass(frozen=True)
class SiteModel:
    """The base's head fitted to a site: its classes (the base's and the ones a person added, in order)."""

    name: str
    classes: tuple[str, ...]
    head: LinearScores
    photos: int  # the reviewed photos it learned from
    new_classes: tuple[str, ...]


def pictures(row: Row, margin: float) -> list[str]:
    """The keys of what the classifier saw of a row's photo: each box's crop, then the whole frame."""
    return photo_keys(row.photo_sha256, [d.bbox for d in row.detections or ()], margin)


def class_name(label: str, classes: Sequence[str]) -> str:
    """A person's label in the base's spelling when it is a base class but for case ("Zebra")."""
    spelling = {c.casefold(): c for c in classes}
    return spelling.get(label.strip().casefold(), label.strip())


def adapt(
    base: LinearScores,
    base_classes: Sequence[str],
    taught: Sequence[tuple[Row, str]],
    store: Embeddings,
    margin: float,
    *,
    name: str = "site",
    l2: float = L2,
    bias_l2: float = BIAS_L2,
) -> SiteModel:
    """The base head fitted on `taught` ((row, label) pairs: the reviewed photos and what they show)."""
    labelled = [(row, class_name(label, base_classes)) for row, label in taught]
    labelled = [(row, label) for row, label in labelled if _names_an_animal(label)]
    labelled = [(row, label) for row, label in labelled if row.status != ERROR and row.photo_sha256]
    classes = _site_classes(base_classes, [label for _, label in labelled])
    new = sorted(set(classes) - set(base_classes))
    kept = store.get([key for row, _ in labelled for key in pictures(row, margin)])
    features, labels, weights, photos = [], [], [], 0
    for row, label in labelled:
        found = [kept[key] for key in pictures(row, margin) if key in kept]
        if not found:
            continue
        photos += 1
        features += found
        labels += [classes.index(label)] * len(found)
        weights += [1.0 / len(found)] * len(found)
    if not photos:
        raise SiteError(
            "none of the reviewed photos has what the classifier saw of it kept: label the batch again "
            "(prediction keeps it), then review"
        )
    head = fit(
        base.with_classes(base_classes, classes),
        torch.tensor(np.stack(features)),
        torch.tensor(labels),
        l2,
        SMOOTHING,
        anchored=True,
        weights=torch.tensor(weights),
        bias_l2=bias_l2,
    )
    return SiteModel(name, classes, head, photos, tuple(new))


def cross_validated(
    base: LinearScores,
    base_classes: Sequence[str],
    taught: Sequence[tuple[Row, str]],
    store: Embeddings,
    rules: Rules,
    margin: float,
    *,
    folds: int = 3,
    seed: int = 42,
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """What a site's model fitted without each photo says of it: the classes (the base's and the typed
    ones, in order), each photo's scores over them (uniform when nothing is kept of it) and its fold (`assign_folds`:
    stratified by label, as many folds as the photos allow). A fold whose others teach nothing is answered
    by the base."""
    labels = [class_name(label, base_classes) for _, label in taught]
    classes = _site_classes(base_classes, labels)
    fold = assign_folds(labels, folds, seed)
    scores = np.full((len(taught), len(classes)), 1.0 / len(classes))
    for k in sorted(set(fold.tolist())):
        training = [taught[i] for i in np.flatnonzero(fold != k)]
        try:
            site = adapt(base, base_classes, training, store, margin)
        except SiteError:  # nothing in the other folds teaches: the base answers this one
            site = SiteModel("base", tuple(base_classes), base, 0, ())
        for i in np.flatnonzero(fold == k):
            answered = relabel(taught[i][0], site, store, rules, margin)
            if answered is not None and answered.probabilities:
                scores[i] = 0.0
                for name, p in zip(site.classes, answered.probabilities, strict=True):
                    scores[i, classes.index(name)] = p
    return classes, scores, fold


def relabel(row: Row, site: SiteModel, store: Embeddings, rules: Rules, margin: float) -> Row | None:
    """The row answered again by the site's model from its kept embeddings (its boxes as the verdict
    kept them); None when they are not all kept. Blank and unreadable photos stay as they are."""
    if row.status == ERROR or row.observation_type == BLANK or not row.photo_sha256:
        return None
    keys = pictures(row, margin)
    kept = store.get(keys)
    if len(kept) < len(keys):
        return None
    scores = site.head.probabilities(np.stack([kept[k] for k in keys]))
    whole, rules = scores[-1], replace(rules, classes=site.classes)
    fresh = replace(row, classified_by=site.name, classified_at=datetime.now(UTC).replace(microsecond=0))
    fresh.classification_method = MACHINE
    if row.detections is None:
        return whole_frame_row(fresh, whole, rules)
    found = [
        Found(d.bbox, d.detector_conf, joined_scores(p, whole))
        for d, p in zip(row.detections, scores[:-1], strict=True)
    ]
    best = max([row.detector_best or 0.0, *(d.detector_conf for d in row.detections)])
    return detected_row(fresh, found, whole, best, rules)


def _site_classes(base_classes: Sequence[str], labels: Sequence[str]) -> tuple[str, ...]:
    """The base's classes and the typed ones, in order as a bundle's classes are; a label that names no
    animal (blank, empty, unknown, in any case) is no class."""
    return tuple(sorted({*base_classes, *filter(_names_an_animal, labels)}))


def _names_an_animal(label: str) -> bool:
    return label.casefold() not in NOT_CLASSES
