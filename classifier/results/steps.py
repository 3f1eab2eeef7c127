"""How an answer was reached, step by step, in plain words: what the classify page's "how it decided"
section says about the user's own photo, and the verdict above it (`verdict_words`).

`decision_steps(row, predictor)` retells a frame's row (from `Predictor.predict_photo`) from what the row
recorded when it was made (`row.decision`: the box that led, the rule that fired, the place, the
cut-off): the boxes the animal detector found (or that it looked at the whole photo), the picture the
classifier saw, its five highest scores, the place and taxonomy rules, and the cut-off that made it sure
or "not sure". Nothing is worked out again, so these words, the verdict and the bars cannot disagree.
Only reading: nothing here runs a network, and torch is never imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from classifier.knowledge.geography import country_table
from classifier.knowledge.taxonomy import label_parts, out_of_range
from classifier.schema.rows import BLANK, ERROR, FROM_SEQUENCE, GIVEN, NOT_SURE, OK, ROLLED_UP, Decision, Row

if TYPE_CHECKING:
    from classifier.models.predict import Predictor

DETECTOR, CROP, SCORES, RULES, THRESHOLD = "detector", "crop", "scores", "rules", "threshold"
TOP = 5


@dataclass(frozen=True)
class Step:
    """One step: `kind` (what the page draws beside the words), a short `title`, the `text` (Markdown).

    `bbox`: the box the step is about (normalised [x, y, w, h]; the detector and crop steps), `boxes`
    every box the answer rests on, `bars` (name, probability) pairs for the scores step."""

    kind: str
    title: str
    text: str
    bbox: tuple[float, float, float, float] | None = None
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    bars: tuple[tuple[str, float], ...] = ()


def verdict_words(row: Row, predictor: Predictor, name: Callable[[str], str] = str) -> tuple[str, list[str]]:
    """The verdict a person reads first: a title and its lines (Markdown). It says what the row's status
    says, the status the batch table and "Needs review" count: a rolled-up answer is sure of its group
    (`ok`) and names it, saying the species stays open; only an `uncertain` row is "Not sure"."""
    decision = row.decision or Decision(rule=NOT_SURE)
    many = row.count is not None and row.count > 1
    if row.observation_type == BLANK:
        best = (
            f"its best guess: **{row.detector_best or 0:.0%}**, it needs {predictor.detector.confidence:.0%}"
        )
        return "No animal found", [
            f"The animal detector found nothing it was sure of ({best}). Camera traps take many empty "
            "frames: wind, sun and warm ground set them off."
        ]
    times = f"{row.count} × " if many else ""
    if row.status == OK and decision.rule == ROLLED_UP:
        group = row.label  # "carnivore (Carnivora)": the group's common and scientific names
        return f"{times}{group[:1].upper()}{group[1:]}", [
            f"**{row.confidence:.0%}** sure it is {_a(group)} (its classes' scores together), but not which "
            "species. Its classes:"
        ]
    if row.status == OK:
        return f"{times}{name(row.label)}", [f"**{row.confidence:.0%}** confident"]
    guesses = ", ".join(name(label) for label, _ in row.top_k[:3])
    animals = f"{row.count} animals. " if many else ""
    lines = [f"{animals}Below the {decision.threshold or 0:.0%} threshold. Best guesses: {guesses}."]
    if decision.group:
        rank, group, score = decision.group
        lines.append(f"Together, {score:.0%} of the score is on **{group}** (a whole {rank}).")
    return "Not sure", lines


def chosen_detection(row: Row) -> int | None:
    """Which of the row's boxes weighed most for the frame's answer (`decision.lead`); None without boxes."""
    if not row.detections or row.decision is None or row.decision.lead is None:
        return None
    return row.decision.lead


def decision_steps(
    row: Row,
    predictor: Predictor,
    *,
    name: Callable[[str], str] = str,
    whole_frame_asked: bool = False,
) -> list[Step]:
    """The steps that led to `row`'s answer, in order; none for an error row. `name` turns a class into
    the words a person reads (its common name); `whole_frame_asked`: the person asked for the whole
    frame after the detector found nothing."""
    if row.status == ERROR or row.decision is None:
        return []
    steps = [_detector_step(row, predictor, whole_frame_asked)]
    if row.observation_type == BLANK and row.detections is not None:
        return steps
    steps.append(_crop_step(row, predictor))
    steps.append(_scores_step(row, predictor, name))
    steps.append(_rules_step(row, row.decision, predictor, name))
    steps.append(_threshold_step(row, row.decision, name))
    return steps


def _detector_step(row: Row, predictor: Predictor, whole_frame_asked: bool) -> Step:
    title = "Looking for animals"
    detector = predictor.detector
    if detector is None:
        return Step(
            DETECTOR, title, "This model has no animal detector: it looks at the whole photo at once."
        )
    needed = f"{detector.confidence:.0%}"
    if whole_frame_asked or row.detections is None:
        return Step(
            DETECTOR,
            title,
            "The animal detector found no animal it was sure of, so, as you asked, the classifier looked "
            "at the whole photo instead.",
        )
    if not row.detections and row.observation_type == BLANK:
        return Step(
            DETECTOR,
            title,
            f"The animal detector found nothing it was sure of: its best guess scored "
            f"**{row.detector_best or 0:.0%}**, and a box needs {needed}. So the classifier was not asked, "
            "and the photo counts as empty. Camera traps take many empty frames: wind, sun and warm "
            "ground set them off.",
        )
    if not row.detections:
        return Step(
            DETECTOR,
            title,
            f"The animal detector found no box (its best guess scored {row.detector_best or 0:.0%}, a box "
            f"needs {needed}), but the classifier was sure of an animal in the whole photo: the detector "
            "misses some animals, mostly small ones at night and ones so close that they fill the frame. "
            "So the answer comes from the whole photo.",
        )
    boxes = tuple(tuple(d.bbox) for d in row.detections)
    lead = chosen_detection(row)
    scores = ", ".join(f"{d.detector_conf:.0%}" for d in row.detections)
    many = len(row.detections) > 1
    text = (
        f"The animal detector found **{len(row.detections)} {'animals' if many else 'animal'}** "
        f"(scored {scores}). A box counts as an animal when the detector gives it at least "
        f"{predictor.rules.sure_box:.0%}, or when it is the best there is; a box lying mostly "
        f"({predictor.rules.same_animal:.0%}) inside a surer one is the same animal and counts once."
    )
    if many and lead is not None:
        text += (
            " The answer weighs what the classifier saw in every box, each by how sure the detector was: "
            f"box {lead + 1} weighed most."
        )
    return Step(DETECTOR, title, text, bbox=boxes[lead] if lead is not None else None, boxes=boxes)


def _crop_step(row: Row, predictor: Predictor) -> Step:
    size = f"{predictor.image_size} × {predictor.image_size} pixels"
    lead = chosen_detection(row)
    if lead is None:
        return Step(
            CROP,
            "What the classifier saw",
            f"The whole photo, squeezed to a square of {size}: the size the model was trained at. Small "
            "animals far from the camera fill only a few of those pixels.",
        )
    assert row.detections is not None
    return Step(
        CROP,
        "What the classifier saw",
        f"A square cut around each box, with {predictor.crop_margin:.0%} of the box's size added on each "
        f"side for context, resized to {size}, joined with the whole photo. This is box {lead + 1}'s.",
        bbox=tuple(row.detections[lead].bbox),
    )


def _model_scores(row: Row, predictor: Predictor) -> list[tuple[str, float]]:
    """The frame's own scores, before any rule, best first (a row read back from a file: its bars)."""
    if len(row.probabilities) == len(predictor.classes):
        pairs = zip(predictor.classes, row.probabilities, strict=True)
        return sorted(pairs, key=lambda pair: -pair[1])
    return list(row.top_k)


def _scores_step(row: Row, predictor: Predictor, name: Callable[[str], str]) -> Step:
    scores = _model_scores(row, predictor)
    top = tuple((name(label), float(p)) for label, p in scores[:TOP])
    (first, p1), rest = top[0], top[1:]
    text = (
        f"The model gives each of its {len(predictor.classes)} classes a score; together they make 100%. "
        f"It gave **{first}** the most: **{p1:.0%}**."
    )
    if rest:
        (second, p2) = rest[0]
        gap = p1 - p2
        text += f" Next came {second} with {p2:.0%}" + (
            ", close behind." if gap < 0.1 else f", {gap * 100:.0f} points behind."
        )
    return Step(SCORES, f"Its top {len(top)}", text, bars=top)


def _rules_step(row: Row, decision: Decision, predictor: Predictor, name: Callable[[str], str]) -> Step:
    title = "Where and what: the rules"
    book = predictor.rules.book
    if book is None:
        return Step(
            RULES,
            title,
            "This model has no species notes, so no rule about where species live or how they are "
            "related changed its answer.",
        )
    said = [_place_words(row, decision, predictor, name), _rollup_words(row, decision, predictor, name)]
    return Step(RULES, title, " ".join(s for s in said if s))


def _place_words(row: Row, decision: Decision, predictor: Predictor, name: Callable[[str], str]) -> str:
    if not decision.country:
        return (
            "No place was given and the photo holds no GPS position, so no species was ruled out by where "
            "it lives."
        )
    known = country_table().get(decision.country)
    where = f"**{known.name if known else decision.country}** ({'as you said' if decision.place == GIVEN else 'from its GPS position'})"
    gone = out_of_range(predictor.classes, predictor.rules.book, decision.country)
    if not gone:
        return f"The photo was taken in {where}; every class of the model lives there, so none was set aside."
    shown = [name(c) for c, _ in _model_scores(row, predictor) if c in gone][:3]
    more = len(gone) - len(shown)
    listed = ", ".join(shown) + (f" and {more} more" if more > 0 else "")
    words = (
        f"The photo was taken in {where}. {len(gone)} of the model's classes do not live there and were set "
        f"aside ({listed}): {decision.removed:.0%} of the score was theirs. The scores shown are the others' "
        "own, not scaled up."
    )
    if row.geofenced:
        words += f" That ruled out the model's first answer, **{name(row.geofenced)}**."
    return words


def _rollup_words(row: Row, decision: Decision, predictor: Predictor, name: Callable[[str], str]) -> str:
    """What the taxonomy rule did: moved the answer up a rank, or why it did not."""
    cut = decision.threshold or 0.0
    best = row.top_k[0] if row.top_k else None
    if decision.rule == ROLLED_UP:
        under = [f"{name(c)} {p:.0%}" for c, p, here in group_members(row, predictor) if here][:4]
        where = " that lives there" if decision.removed else ""
        return (
            "No single class was a likely answer"
            + (f" (the best{where}, {name(best[0])}, had {best[1]:.0%})" if best else "")
            + f". But the classes of the **{row.rank} {row.label}** together reach **{row.confidence:.0%}**"
            + (f" ({', '.join(under)})" if under else "")
            + f", above the {cut:.0%} {_a(row.rank)} needs; so the answer moved up to the {row.rank}, and "
            "which species it is stays open."
        )
    if decision.rule == FROM_SEQUENCE:
        return (
            "Not sure of this photo on its own, but its guesses include what another photo of the same "
            "burst named surely, so it takes that answer."
        )
    if decision.rule != NOT_SURE:
        return (
            "The first class reached the cut-off, so no rule moved the answer to a broader group of related "
            "species."
        )
    if decision.group is None:
        return "No broader group of related classes (genus, family, order) holds most of the score either."
    rank, group, score = decision.group
    return f"Together, **{score:.0%}** of the score is on **{group}**, a whole {rank}. " + (
        "A group that broad is never given as the answer: it tells you no more than the photo does."
        if rank in ("class", "phylum")
        else "But a group is given as the answer only when no single class is a likely one, and "
        + (f"{name(best[0])} at {best[1]:.0%} is." if best else "one is.")
    )


def _threshold_step(row: Row, decision: Decision, name: Callable[[str], str]) -> Step:
    title = "Sure, or not sure"
    cut = decision.threshold or 0.0
    if decision.rule == FROM_SEQUENCE:
        text = f"So the answer is the burst's: **{name(row.label)}**, named at {row.confidence:.0%} there."
    elif decision.rule == ROLLED_UP:
        text = (
            f"So the answer is **{row.label}** ({row.confidence:.0%} together), not one species: answers at "
            f"{row.rank} rank that sure were right at least 9 times in 10 on camera-trap photos from other "
            "projects."
        )
    elif row.status == OK:
        text = (
            f"**{name(row.label)}** has **{row.confidence:.0%}**, at or above the **{cut:.0%}** threshold "
            "set in the sidebar, so that is the answer."
        )
    else:
        text = (
            f"The best, **{name(row.label)}**, has **{row.confidence or 0:.0%}**, under the **{cut:.0%}** "
            "threshold set in the sidebar, so the answer is **not sure**: in a batch the photo is set aside "
            "for a person to check. Lower the threshold and more photos get an answer, more of them wrong."
        )
    return Step(THRESHOLD, title, text)


def group_members(row: Row, predictor: Predictor) -> list[tuple[str, float, bool]]:
    """The classes under a rolled-up answer's taxon, by the frame's own scores, best first, each with whether
    it lives where the photo was taken: what a person wants to see beside "most likely a carnivore"."""
    if row.decision is None or row.decision.rule != ROLLED_UP:
        return []
    gone = (
        set(out_of_range(predictor.classes, predictor.rules.book, row.decision.country))
        if row.decision.country
        else set()
    )
    return [
        (c, float(p), c not in gone) for c, p in _model_scores(row, predictor) if _under(c, row, predictor)
    ]


def _under(label: str, row: Row, predictor: Predictor) -> bool:
    """Whether a class lies under the row's rolled-up taxon."""
    entry = predictor.rules.book.get(label) if predictor.rules.book else None
    taxon = (label_parts(row.label) or (row.label, ""))[0]
    return entry is not None and taxon in {n for _, n in entry.lineage}


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"
