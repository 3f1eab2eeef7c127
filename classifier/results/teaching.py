"""Teaching the model from the review page: the order that teaches most, and "Retrain on my corrections",
which answers the photos not yet reviewed again in place.

The review holds `Row`s (the predictions file's rows) and the uploaded photos; what the classifier saw
of each photo is found by the photo's content (classifier/models/embeddings.py). Photos whose embeddings
are not kept (a saved review loaded on another server) are labelled once by the bundle, which keeps them.
The site's model and its re-labelling are classifier/models/site.py's; the estimate of how right the new
answers are is its cross-validation, on the photos a person labelled: those spot-checked at random say
most about the rest, the ones the teaching order chose are harder than most.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np

from classifier.intake.decoding import photo_sha256
from classifier.intake.inputs import read_item
from classifier.intake.items import InputItem
from classifier.models.embeddings import Embeddings
from classifier.models.heads import LinearScores
from classifier.models.site import SiteError, adapt, cross_validated, pictures, relabel
from classifier.models.verdict import Rules
from classifier.results.queue import teaching_order
from classifier.results.review import SPOT_CHECK, Review, ReviewError
from classifier.schema.rows import PERSON, Row


@dataclass(frozen=True)
class Taught:
    """What a retrain on the review did."""

    photos: int  # the reviewed photos it learned from
    new_classes: tuple[str, ...]
    answered: int  # photos not yet reviewed, answered again
    changed: int  # of those, the ones whose label changed
    estimate: float | None  # cross-validated share right on the photos a person labelled
    estimated_on: int
    spot_checked: float | None  # the same on the photos spot-checked at random, when 5 or more
    spot_checks: int
    seconds: float


@dataclass
class Teacher:
    """A bundle's linear head, its kept embeddings, the page's rules, and a way to label missing photos."""

    name: str
    classes: tuple[str, ...]
    head: LinearScores
    store: Embeddings
    rules: Rules
    margin: float
    label_photos: Callable[[list[InputItem]], Iterable[Row]]  # the bundle's predictor, keeping embeddings

    def order(self, review: Review) -> list[int]:
        """Every row that may be asked, the one that teaches most first (classifier/results/queue.py)."""
        rows = self._rows(review)
        vectors = self.store.vectors([pictures(row, self.margin) if row.photo_sha256 else [] for row in rows])
        return teaching_order(review.records, vectors, len(review.records))

    def retrain(self, review: Review) -> Taught:
        """Fit the site's model on the rows a person labelled and answer the others again, in place (one
        undo step); `ReviewError` (one line) when nothing reviewed can teach."""
        started = time.perf_counter()
        rows = self._rows(review)
        reviewed = [i for i, r in enumerate(review.records) if r.classification_method == PERSON]
        taught = [(rows[i], review.records[i].label) for i in reviewed]
        try:
            site = adapt(
                self.head, self.classes, taught, self.store, self.margin, name=f"{self.name} + review"
            )
        except SiteError as error:
            raise ReviewError(str(error)) from None
        answers: dict[int, Row] = {}
        for i, (row, record) in enumerate(zip(rows, review.records, strict=True)):
            if record.classification_method != PERSON:
                fresh = relabel(row, site, self.store, self.rules, self.margin)
                if fresh is not None:
                    answers[i] = fresh
        changed = review.replace_answers(answers)
        estimate, spot = self._estimate(review, rows, reviewed)
        return Taught(
            photos=site.photos,
            new_classes=site.new_classes,
            answered=len(answers),
            changed=changed,
            estimate=estimate[0],
            estimated_on=estimate[1],
            spot_checked=spot[0],
            spot_checks=spot[1],
            seconds=time.perf_counter() - started,
        )

    def _estimate(
        self, review: Review, rows: list[Row], reviewed: list[int]
    ) -> tuple[tuple[float | None, int], tuple[float | None, int]]:
        """Cross-validated share right on the photos a person labelled, and on those spot-checked."""
        taught = [(rows[i], review.records[i].label) for i in reviewed]
        if len(taught) < 2:
            return (None, len(taught)), (None, 0)
        classes, scores, _ = cross_validated(
            self.head, self.classes, taught, self.store, self.rules, self.margin
        )
        right = [
            classes[int(np.argmax(s))].casefold() == label.casefold()
            for s, (_, label) in zip(scores, taught, strict=True)
        ]
        spot = [r for r, i in zip(right, reviewed, strict=True) if review.reason(i) == SPOT_CHECK]
        whole = (float(np.mean(right)), len(right))
        return whole, ((float(np.mean(spot)), len(spot)) if len(spot) >= 5 else (None, len(spot)))

    def _rows(self, review: Review) -> list[Row]:
        """The review's rows with their photos' hashes; photos with nothing kept are labelled once."""
        items = [review.photos.find(r.path) if review.photos else None for r in review.records]
        rows = [_row(record, _hash(item)) for record, item in zip(review.records, items, strict=True)]
        kept = self.store.get([key for row in rows if row.photo_sha256 for key in pictures(row, self.margin)])
        missing = [
            i
            for i, row in enumerate(rows)
            if row.photo_sha256 and not all(key in kept for key in pictures(row, self.margin))
        ]
        for i, fresh in zip(missing, self.label_photos([items[i] for i in missing]), strict=True):
            if fresh.detections is not None:  # the boxes found again are the ones now kept
                rows[i] = replace(rows[i], detections=fresh.detections)
        return rows


def _hash(item: InputItem | None) -> str:
    if item is None:
        return ""
    try:
        return photo_sha256(read_item(item))
    except (OSError, ValueError):
        return ""


def _row(record: Row, sha: str) -> Row:
    """A review's row as prediction makes it (the detector's boxes only), with its photo's hash: what the
    site's model reads and answers again."""
    boxes = None if record.detections is None else record.boxes
    return replace(record, detections=boxes, photo_sha256=sha)
