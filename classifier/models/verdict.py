"""One verdict per frame from all its evidence: the detector's boxes, what the classifier saw in each, the
whole frame, and the place and taxonomy rules. Numbers in, a `Row` out; no network runs here.

1. Boxes on the same animal become one: a box lying mostly (`SAME_ANIMAL`) inside a surer one (a head
   inside its body, two boxes on one warthog) adds its evidence to that box instead of counting again.
2. A box the detector barely believes (under `SURE_BOX`) neither leads the frame nor counts, unless no box
   reaches that: then the surest box alone is the frame's evidence. Blank frames stay blank either way:
   that is decided by the detector's own threshold, before this.
3. The frame's class scores are its boxes' (each box's crop scores joined with the whole frame's by the
   predictor), weighted by the detector's confidence: two boxes of impala add up, a speck far behind
   weighs little. A person or a vehicle is the frame's answer only when no animal is there.
4. The rules (`classifier.knowledge.taxonomy.decide`: geofence, then rollup) turn the frame's scores into
   its answer, and each box's scores into the box's own label.
5. `count` is the number of boxes whose own best class is the answer (or lies under it); `decision`
   records what led, which rule fired, the place and the cut-off, for every page and export to read.

The cut-offs were measured by `benchmarks/verdict.py` on the project's labelled camera-trap frames from
other projects (273 frames with a known number of animals, 110 of them with more than one box): boxes
counted at the detector's 0.05 gave the right number on 0.678 of frames (0.093 of those with several
boxes); a box needing 0.4 and merging at 0.6 gives 0.963 (0.897), with 0.018 counted short either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from classifier.knowledge.geography import country_at, parse_country
from classifier.knowledge.species import SpeciesBook
from classifier.knowledge.taxonomy import Rollup, decide, thresholds_for
from classifier.models.bundles import Bundle
from classifier.schema.observations import BLANK_LABEL, observation_type
from classifier.schema.rows import (
    ANIMAL,
    BLANK,
    GIVEN,
    GPS,
    NO_ANIMAL,
    NOT_SURE,
    OK,
    ROLLED_UP,
    SURE_CLASS,
    Decision,
    Detection,
    Prediction,
    Row,
)

SURE_BOX = 0.4  # the detector's confidence a box needs to lead the frame or count
SAME_ANIMAL = 0.6  # the share of the smaller box inside a surer one that makes them one animal


@dataclass(frozen=True)
class Rules:
    """What turns class scores into answers: the bundle's classes and cut-off, its species notes, the place."""

    classes: tuple[str, ...]
    threshold: float  # the class cut-off: a class this sure is the answer
    top_k: int = 3
    book: SpeciesBook | None = None  # None: the model's own answers (no place, no rollup)
    country: str | None = None  # alpha-3, given for every photo; else each photo's GPS, if any
    sure_box: float = SURE_BOX
    same_animal: float = SAME_ANIMAL
    # A frame without any box is an animal the detector missed (small, at night) when the whole frame's
    # best class reaches this before any rule, else blank; None: the class cut-off. A bundle measures its
    # own (its report's `detector.missed_animal`): how sure its whole frames get with no animal in them.
    missed_animal: float | None = None
    cuts: dict[str, float] = field(init=False)  # cut-off per rank, the class cut-off as "species"

    def __post_init__(self) -> None:
        object.__setattr__(self, "cuts", thresholds_for(self.book, self.threshold))


def rules_for(
    bundle: Bundle,
    book: SpeciesBook | None,
    *,
    threshold: float | None = None,
    top_k: int = 3,
    country: str | None = None,
) -> Rules:
    """A bundle's rules: its classes, its class cut-off (or `threshold`), its detector's missed-animal
    cut-off, the species notes and a place (any country name or code `parse_country` takes)."""
    return Rules(
        bundle.classes,
        bundle.threshold if threshold is None else threshold,
        min(top_k, len(bundle.classes)),
        book,
        parse_country(country) if country else None,
        missed_animal=(bundle.report.get("detector") or {}).get("missed_animal"),
    )


@dataclass(frozen=True)
class Found:
    """A box the detector kept, with the classifier's scores for it (its crop joined with the frame)."""

    bbox: tuple[float, float, float, float]
    confidence: float
    probabilities: np.ndarray


def joined_scores(crop: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """A box's scores: the geometric mean of its crop's and the whole frame's, summing to 1 again."""
    joined = np.sqrt(crop * whole)
    return joined / joined.sum()


@dataclass(frozen=True)
class _Ruled:
    prediction: Prediction
    rollup: Rollup
    removed: float  # the share of the score on classes the place ruled out


def whole_frame_row(row: Row, probabilities: Sequence[float], rules: Rules) -> Row:
    """The row of a frame classified whole: no detector looked for the animal (`detections` None)."""
    ruled = _rule(np.asarray(probabilities, dtype=np.float64), rules, row)
    return replace(
        _answered(row, ruled, rules, lead=None, boxes=0),
        observation_type=observation_type(ruled.prediction.label, detected=False),
    )


def detected_row(row: Row, found: Sequence[Found], whole: Sequence[float], best: float, rules: Rules) -> Row:
    """The row of a frame the detector searched: `found` are its boxes over its threshold, surest first;
    `whole` the whole frame's scores; `best` the detector's best score in the frame, kept or not."""
    whole = np.asarray(whole, dtype=np.float64)
    if not found:
        return _without_box(row, whole, best, rules)
    used = _sure(_merged(found, rules.same_animal), rules.sure_box)
    answers = [_rule(box.probabilities, rules, row) for box in used]
    animals = [i for i, a in enumerate(answers) if _is_animal(a.prediction.label)] or list(range(len(used)))
    weights = np.array([used[i].confidence for i in animals])
    evidence = sum(w * used[i].probabilities for w, i in zip(weights, animals, strict=True)) / weights.sum()
    ruled = _rule(evidence, rules, row)
    members = _members(ruled)
    ours = [i for i in animals if _best_class(answers[i]) in members]
    lead = max(
        ours or animals, key=lambda i: used[i].confidence * _share(used[i].probabilities, members, rules)
    )
    detections = tuple(
        Detection(
            bbox=box.bbox,
            detector_conf=box.confidence,
            label=a.prediction.label,
            confidence=a.prediction.confidence,
            top_k=a.prediction.top_k,
            rank=a.prediction.rank,
            status=a.prediction.status,
        )
        for box, a in zip(used, answers, strict=True)
    )
    return replace(
        _answered(row, ruled, rules, lead=lead, boxes=len(used)),
        observation_type=observation_type(ruled.prediction.label, detected=True),
        count=len(ours) or len(animals),
        detections=detections,
        detector_best=best,
    )


def _without_box(row: Row, whole: np.ndarray, best: float, rules: Rules) -> Row:
    """No box: an animal the detector missed when the whole frame is sure of one, else blank."""
    if whole.max() >= (rules.threshold if rules.missed_animal is None else rules.missed_animal):
        ruled = _rule(whole, rules, row)
        return replace(
            _answered(row, ruled, rules, lead=None, boxes=0),
            observation_type=observation_type(ruled.prediction.label, detected=True),
            detections=(),
            detector_best=best,
        )
    return replace(
        row,
        label=BLANK_LABEL,
        confidence=1.0 - best,
        status=OK,
        observation_type=BLANK,
        count=0,
        detections=(),
        detector_best=best,
        decision=Decision(rule=NO_ANIMAL),
    )


def _answered(row: Row, ruled: _Ruled, rules: Rules, *, lead: int | None, boxes: int) -> Row:
    answer, rollup = ruled.prediction, ruled.rollup
    country, place = _place(row, rules)
    if answer.status != OK:
        rule, cut = NOT_SURE, rules.cuts.get("species")
    elif rollup.rolled_up:
        rule, cut = ROLLED_UP, rules.cuts.get(rollup.rank)
    else:
        rule, cut = SURE_CLASS, rules.cuts.get("species")
    decision = Decision(
        rule=rule,
        lead=lead,
        boxes=boxes,
        country=country or "",
        place=place,
        threshold=cut,
        removed=ruled.removed,
        group=rollup.group if answer.status != OK else None,
    )
    return replace(
        row,
        label=answer.label,
        confidence=answer.confidence,
        status=answer.status,
        top_k=answer.top_k,
        probabilities=answer.probabilities,
        rank=answer.rank,
        geofenced=answer.geofenced,
        decision=decision,
    )


def _rule(p: np.ndarray, rules: Rules, row: Row) -> _Ruled:
    """The rules on one set of class scores. The scores shown (`top_k`) are the model's own for the classes
    the place leaves, not scaled up: the numbers a person reads are the numbers the cut-off was held to."""
    country, _ = _place(row, rules)
    rollup = decide(p, rules.classes, rules.book, country, rules.cuts)
    gone = set(rollup.removed)
    kept = sorted((i for i, c in enumerate(rules.classes) if c not in gone), key=lambda i: -p[i])
    top_k = tuple((rules.classes[i], float(p[i])) for i in kept[: rules.top_k])
    prediction = Prediction(
        label=rollup.label,
        confidence=float(rollup.confidence),
        status=rollup.status,
        top_k=top_k,
        probabilities=tuple(float(v) for v in p),
        rank=rollup.rank,
        geofenced=rollup.geofenced or "",
    )
    removed = float(sum(p[i] for i, c in enumerate(rules.classes) if c in gone))
    return _Ruled(prediction, rollup, removed)


def _place(row: Row, rules: Rules) -> tuple[str | None, str]:
    """The country the rules use for this photo, and where it came from."""
    if rules.book is None:
        return None, ""
    if rules.country:
        return rules.country, GIVEN
    if row.location:
        found = country_at(*row.location)
        return (found, GPS) if found else (None, "")
    return None, ""


def _merged(found: Sequence[Found], same_animal: float) -> list[Found]:
    """Boxes on the same animal as one, surest first: a box mostly inside a surer one joins its evidence."""
    kept: list[Found] = []
    for box in sorted(found, key=lambda b: -b.confidence):
        same = next((i for i, k in enumerate(kept) if _inside(box.bbox, k.bbox) >= same_animal), None)
        if same is None:
            kept.append(box)
            continue
        host = kept[same]
        joined = (host.confidence * host.probabilities + box.confidence * box.probabilities) / (
            host.confidence + box.confidence
        )
        kept[same] = replace(host, probabilities=joined)
    return kept


def _sure(boxes: list[Found], cut: float) -> list[Found]:
    return [b for b in boxes if b.confidence >= cut] or boxes[:1]


def _inside(a: Sequence[float], b: Sequence[float]) -> float:
    """The share of the smaller of two [x, y, w, h] boxes that lies inside the other."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    smaller = min(a[2] * a[3], b[2] * b[3])
    return max(0.0, width) * max(0.0, height) / smaller if smaller > 0 else 0.0


def _members(ruled: _Ruled) -> set[str]:
    """The classes an answer covers: itself, or the classes under a rolled-up taxon."""
    return {ruled.prediction.label} | {c for c, _ in ruled.rollup.candidates}


def _best_class(ruled: _Ruled) -> str:
    return ruled.prediction.top_k[0][0] if ruled.prediction.top_k else ruled.prediction.label


def _share(p: np.ndarray, members: set[str], rules: Rules) -> float:
    return float(sum(p[i] for i, c in enumerate(rules.classes) if c in members))


def _is_animal(label: str) -> bool:
    return observation_type(label, detected=True) == ANIMAL
