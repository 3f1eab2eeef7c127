"""Which photos a person should review first, so that a site's model learns most from the fewest
(`python -m classifier queue`, the review page's "Teach the model" order).

One photo a sequence first (its least sure: a burst is one sighting), never a photo already reviewed, an
unreadable one or a sure blank; once every sequence has one asked, the others. Among those, farthest-first over what the classifier saw (each photo's
kept embedding, classifier/models/embeddings.py), each photo weighted by how typical it is of the
batch (its closeness to its nearest neighbours): the first photo is the most typical, each next one the
photo least like any chosen so far, typical ones before outliers. Measured by benchmarks/learning_loop.py
against a random choice and against weighting by how unsure the model is (which the issue first asked
for): see docs/learning_loop.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from classifier.intake.decoding import photo_sha256
from classifier.models.bundles import Bundle, crop_margin
from classifier.models.embeddings import embeddings_for, photo_keys
from classifier.models.predictors import PredictorOptions
from classifier.schema.predictions_file import Predictions
from classifier.schema.rows import BLANK, ERROR, OK, PERSON, Row

NEIGHBOURS = 5  # how many nearest photos say how typical a photo is


def teaching_queue(predictions: Predictions, bundle: Bundle, size: int, root: Path) -> list[Row]:
    """The rows of a predictions file (photos under `root` when relative) a person should review first.
    Photos whose embeddings were not kept (a file from elsewhere) are run through `bundle` once, which
    keeps them; photos that are not on this machine are left out."""
    records = predictions.records
    photos = [Path(r.path) if Path(r.path).is_absolute() else root / r.path for r in records]
    hashes = [photo_sha256(p) if p.is_file() else "" for p in photos]
    margin = crop_margin(bundle)
    store = embeddings_for(bundle)
    keys = [
        photo_keys(h, [d.bbox for d in r.boxes], margin) if h else []
        for r, h in zip(records, hashes, strict=True)
    ]
    vectors = store.vectors(keys)
    missing = [i for i, v in enumerate(vectors) if v is None and hashes[i]]
    if missing:
        predictor = PredictorOptions(keep_embeddings=True).build(bundle)
        for i, row in zip(missing, predictor.predict_many([photos[i] for i in missing]), strict=True):
            vectors[i] = store.vectors(
                [photo_keys(hashes[i], [d.bbox for d in row.detections or ()], margin)]
            )[0]
    return [records[i] for i in teaching_order(records, vectors, size)]


def teaching_order(rows: Sequence[Row], vectors: Sequence[np.ndarray | None], size: int) -> list[int]:
    """The indices of up to `size` rows to review first, in the order to review them: one photo a
    sequence, then, when every sequence has one asked, the other photos of the sequences the same way."""
    firsts, others = _one_a_sequence(rows, [v is not None for v in vectors])
    candidates = firsts + others
    if not candidates or size < 1:
        return []
    points = np.stack([vectors[i] for i in candidates]).astype(np.float64)
    points /= np.linalg.norm(points, axis=1, keepdims=True) + 1e-12
    similar = points @ points.T
    typical = np.sort(similar, axis=1)[:, -(NEIGHBOURS + 1) :].mean(axis=1)  # itself and its neighbours
    weight = np.clip(typical, 1e-6, None)
    allowed = np.arange(len(candidates)) < len(firsts)
    chosen = [int(np.argmax(np.where(allowed, weight, -1.0)))]
    distance = 1.0 - similar[chosen[0]]
    while len(chosen) < min(size, len(candidates)):
        if len(chosen) == len(firsts):
            allowed[:] = True  # every sequence has been asked: its other photos come next
        score = np.where(allowed, distance * weight, -1.0)
        score[chosen] = -2.0
        pick = int(np.argmax(score))
        chosen.append(pick)
        distance = np.minimum(distance, 1.0 - similar[pick])
    return [candidates[i] for i in chosen]


def _one_a_sequence(rows: Sequence[Row], seen: Sequence[bool]) -> tuple[list[int], list[int]]:
    """The rows that may be asked, in file order: one a sequence (its least sure), and the others."""
    askable = [
        i
        for i, row in enumerate(rows)
        if seen[i]
        and row.status != ERROR
        and row.classification_method != PERSON
        and not (row.observation_type == BLANK and row.status == OK)
    ]
    best: dict[str, int] = {}
    for i in askable:
        key = rows[i].sequence_id or f"photo {i}"
        if key not in best or _sureness(rows[i]) < _sureness(rows[best[key]]):
            best[key] = i
    firsts = sorted(best.values())
    return firsts, [i for i in askable if i not in set(firsts)]


def _sureness(row: Row) -> float:
    return (row.confidence or 0.0) + (1.0 if row.status == OK else 0.0)
