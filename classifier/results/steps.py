"""How an answer was reached, step by step, in plain words: what the classify page's "how it decided"
section says about the user's own photo.

`decision_steps(row, predictor)` retells a frame's row (from `Predictor.frame_row`) as the pipeline made
it: the box the animal detector found (or that it looked at the whole photo), the picture the
classifier saw, its five highest scores, the place and taxonomy rules that changed the answer
(`row.geofenced`, `row.rank`), and the threshold that made it "not sure". The rules are run again on the
row's own probabilities (`classifier.knowledge.taxonomy.decide`), so each step can name the numbers that decided
it. Only reading: nothing here runs a network, and torch is never imported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from classifier.knowledge.species import ROLLUP_RANKS
from classifier.knowledge.taxonomy import PASS_UP_FROM, decide, lineages
from classifier.results.observations import observation_type
from classifier.results.rows import ANIMAL, BLANK, ERROR, OK, Row

if TYPE_CHECKING:
    from classifier.models.predict import Predictor

DETECTOR, CROP, SCORES, RULES, THRESHOLD = "detector", "crop", "scores", "rules", "threshold"
TOP = 5


@dataclass(frozen=True)
class Step:
    """One step: `kind` (what the page draws beside the words), a short `title`, the `text` (Markdown).

    `bbox`: the box the step is about (normalised [x, y, w, h]; the detector and crop steps), `boxes`
    every box the detector kept, `bars` (name, probability) pairs for the scores step."""

    kind: str
    title: str
    text: str
    bbox: tuple[float, float, float, float] | None = None
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    bars: tuple[tuple[str, float], ...] = ()


def chosen_detection(row: Row) -> int | None:
    """Which of the row's boxes gave the frame its answer (as `observations.detected_frame` chose it:
    an animal before a person or vehicle, then the most confident); None without boxes."""
    boxes = row.detections or ()
    if not boxes:
        return None
    return max(
        range(len(boxes)),
        key=lambda i: (observation_type(boxes[i].label, True) == ANIMAL, boxes[i].confidence or 0.0),
    )


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
    if row.status == ERROR:
        return []
    steps = [_detector_step(row, predictor, whole_frame_asked)]
    if row.observation_type == BLANK and row.detections is not None:
        return steps
    steps.append(_crop_step(row, predictor))
    steps.append(_scores_step(row, predictor, name))
    steps.append(_rules_step(row, predictor, name))
    steps.append(_threshold_step(row, predictor, name))
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
    if not row.detections:
        return Step(
            DETECTOR,
            title,
            f"The animal detector found nothing it was sure of: its best guess scored "
            f"**{row.detector_best or 0:.0%}**, and a box needs {needed}. So the classifier was not asked, "
            "and the photo counts as empty. Camera traps take many empty frames: wind, sun and warm "
            "ground set them off.",
        )
    boxes = tuple(tuple(d.bbox) for d in row.detections)
    chosen = chosen_detection(row)
    assert chosen is not None
    scores = ", ".join(f"{d.detector_conf:.0%}" for d in row.detections)
    many = len(row.detections) > 1
    text = (
        f"The animal detector found **{len(row.detections)} {'boxes' if many else 'box'}** it was sure of "
        f"(a box needs {needed}; {'they scored' if many else 'it scored'} {scores})."
    )
    if many:
        text += (
            f" The classifier named what is in each; the answer comes from box {chosen + 1}, the one it "
            "was most sure of."
        )
    return Step(DETECTOR, title, text, bbox=boxes[chosen], boxes=boxes)


def _crop_step(row: Row, predictor: Predictor) -> Step:
    size = f"{predictor.image_size} × {predictor.image_size} pixels"
    chosen = chosen_detection(row)
    if chosen is None:
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
        f"A square cut around box {chosen + 1}, with {predictor.crop_margin:.0%} of the box's size added "
        f"on each side for context, resized to {size}.",
        bbox=tuple(row.detections[chosen].bbox),
    )


def _model_scores(row: Row, predictor: Predictor) -> list[tuple[str, float]]:
    """The model's own probabilities, before any rule, best first."""
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


def _rules_step(row: Row, predictor: Predictor, name: Callable[[str], str]) -> Step:
    title = "Where and what: the rules"
    book = predictor.book
    if book is None:
        return Step(
            RULES,
            title,
            "This model has no species notes, so no rule about where species live or how they are "
            "related changed its answer.",
        )
    country, where = _place(row, predictor)
    scores = _model_scores(row, predictor)
    probabilities = row.probabilities if len(row.probabilities) == len(predictor.classes) else None
    answer = None
    if probabilities is not None:
        answer = decide(probabilities, predictor.classes, book, country, predictor.rank_thresholds)
    removed = answer.removed if answer else ()
    said: list[str] = []
    if country is None:
        said.append(
            "No place was given and the photo holds no GPS position, so no species was ruled out by where "
            "it lives."
        )
    elif removed:
        shown = [name(c) for c, _ in scores if c in removed][:3]
        more = len(removed) - len(shown)
        listed = ", ".join(shown) + (f" and {more} more" if more > 0 else "")
        said.append(
            f"The photo was taken in **{where}** ({_source(predictor)}). {len(removed)} of the model's "
            f"classes do not live there and were set aside ({listed}); the others' scores were scaled up "
            "to make 100% again."
        )
        if row.geofenced:
            said.append(f"That ruled out the model's first answer, **{name(row.geofenced)}**.")
    else:
        said.append(
            f"The photo was taken in **{where}** ({_source(predictor)}); every class of the model lives "
            "there, so none was set aside."
        )
    allowed = [(c, p) for c, p in scores if c not in removed]
    said.append(_rollup_words(row, predictor, name, answer, allowed, country))
    return Step(RULES, title, " ".join(s for s in said if s))


def _rollup_words(row, predictor, name, answer, allowed, country) -> str:
    """What the taxonomy rule did: moved the answer up a rank, or why it did not."""
    cuts = predictor.rank_thresholds
    species_cut = cuts.get("species", predictor.threshold)
    best = allowed[0] if allowed else None
    rolled_up = (
        answer.rolled_up if answer else row.label not in predictor.classes and row.rank not in ("", "species")
    )
    if rolled_up:
        members = ", ".join(f"{name(c)} {p:.0%}" for c, p in (answer.candidates if answer else ())[:4])
        lead = (
            f"No single class reached the {species_cut:.0%} needed"
            + (f" (the best, {name(best[0])}, had {best[1]:.0%})" if best else "")
            + "."
        )
        words = (
            f"{lead} But the classes of the **{row.rank} {row.label}** together reach **{row.confidence:.0%}**"
            + (f" ({members})" if members else "")
            + f", above the {cuts.get(row.rank, 0):.0%} {_a(row.rank)} needs; so the answer moved up to the "
            f"{row.rank}, and which species it is stays open."
        )
        if answer and answer.removed:
            words += (
                " Classes set aside by the place still count for their family and the ranks above: an "
                "animal that looks like one of them is likely a relative that does live there."
            )
        return words
    if row.status == OK:
        return (
            f"The first class reached the {species_cut:.0%} needed, so no rule moved the answer to a "
            "broader group of related species."
        )
    closest = _closest_group(predictor, row.probabilities, country) if answer else None
    if closest is None:
        return (
            "No class reached the cut-off, and these classes have no broader group (genus, family, order) "
            "with a cut-off in the notes to fall back on."
        )
    rank, taxon, mass, cut = closest
    return (
        f"No class reached the {species_cut:.0%} needed, and no broader group of related species was sure "
        f"enough either: the closest was the {rank} {taxon} with {mass:.0%} together, where {_a(rank)} needs "
        f"{cut:.0%}."
    )


def _closest_group(
    predictor, probabilities: Sequence[float], country
) -> tuple[str, str, float, float] | None:
    """The rank and taxon whose summed probability came nearest its cut-off (as a share of it)."""
    from classifier.knowledge.taxonomy import taxon_label

    fenced = decide(probabilities, predictor.classes, predictor.book, country, {}).removed
    best = None
    lines = lineages(predictor.classes, predictor.book)
    for rank in ROLLUP_RANKS:
        cut = predictor.rank_thresholds.get(rank)
        if rank == "species" or not cut:
            continue
        mass: dict[str, float] = {}
        for c, p, line in zip(predictor.classes, probabilities, lines, strict=True):
            taxon = dict(line).get(rank)
            passes_up = ROLLUP_RANKS.index(rank) >= ROLLUP_RANKS.index(PASS_UP_FROM)
            if taxon and (c not in fenced or passes_up):
                mass[taxon] = mass.get(taxon, 0.0) + float(p)
        if mass:
            taxon, total = max(mass.items(), key=lambda item: item[1])
            if best is None or total / cut > best[2] / best[3]:
                best = (rank, taxon_label(taxon, predictor.book), total, cut)
    return best


def _threshold_step(row: Row, predictor: Predictor, name: Callable[[str], str]) -> Step:
    threshold = predictor.threshold
    title = "Sure, or not sure"
    if row.status == OK and row.label not in predictor.classes and row.rank not in ("", "species"):
        text = (
            f"So the answer is **{row.label}** ({row.confidence:.0%} together), not one species: no "
            f"species reached the {threshold:.0%} threshold set in the sidebar."
        )
    elif row.status == OK:
        text = (
            f"**{name(row.label)}** has **{row.confidence:.0%}**, at or above the **{threshold:.0%}** "
            "threshold set in the sidebar, so that is the answer."
        )
    else:
        text = (
            f"The best, **{name(row.label)}**, has **{row.confidence or 0:.0%}**, under the "
            f"**{threshold:.0%}** threshold set in the sidebar, so the answer is **not sure**: in a batch "
            "the photo is set aside for a person to check. Lower the threshold and more photos get an "
            "answer, more of them wrong."
        )
    return Step(THRESHOLD, title, text)


def _place(row: Row, predictor: Predictor) -> tuple[str | None, str]:
    from classifier.knowledge.geography import country_at, country_table

    country = predictor.country or (country_at(*row.location) if row.location else None)
    if country is None:
        return None, ""
    known = country_table().get(country)
    return country, known.name if known else country


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _source(predictor: Predictor) -> str:
    return "as you said" if predictor.country else "from its GPS position"
