"""How it decided, step by step (classifier/results/steps.py): the words for each kind of answer, with the
serengeti bundle's classes and species notes and no network (the steps only read a row)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from classifier.knowledge.species import find_species_book
from classifier.knowledge.taxonomy import decide, thresholds_for
from classifier.models.bundles import MODELS_DIR, read_bundle
from classifier.results.rows import BLANK, OK, UNCERTAIN, Detection, Row
from classifier.results.steps import (
    CROP,
    DETECTOR,
    RULES,
    SCORES,
    THRESHOLD,
    chosen_detection,
    decision_steps,
)

SERENGETI = MODELS_DIR / "serengeti"


@pytest.fixture(scope="module")
def serengeti():
    if not (SERENGETI / "report.json").is_file():
        pytest.skip("the serengeti bundle is not in models/")
    bundle = read_bundle(SERENGETI)
    return bundle, find_species_book("serengeti")


def predictor(bundle, book, *, threshold=0.3, country=None, detector=None):
    """What the steps read of a `Predictor`: its classes, cut-offs, notes, place and detector."""
    return SimpleNamespace(
        classes=bundle.classes,
        threshold=threshold,
        rank_thresholds=thresholds_for(book, threshold),
        book=book,
        country=country,
        detector=detector,
        image_size=bundle.image_size,
        crop_margin=0.15,
    )


def probabilities(classes, **given) -> tuple[float, ...]:
    rest = (1 - sum(given.values())) / (len(classes) - len(given))
    return tuple(given.get(c.replace("-", "_"), rest) for c in classes)


def row_for(p, settings, **extra) -> Row:
    """The row the pipeline makes of these probabilities, by the same rules `Predictor._ruled` runs."""
    answer = decide(p, settings.classes, settings.book, settings.country, settings.rank_thresholds)
    pairs = sorted(zip(settings.classes, p, strict=True), key=lambda cp: -cp[1])
    if answer.removed:
        kept = [(c, q) for c, q in pairs if c not in answer.removed]
        total = sum(q for _, q in kept)
        pairs = [(c, q / total) for c, q in kept]
    return Row(
        path="photo.jpg",
        label=answer.label,
        confidence=answer.confidence,
        status=answer.status,
        top_k=tuple(pairs[:5]),
        probabilities=p,
        rank=answer.rank,
        geofenced=answer.geofenced or "",
        **extra,
    )


def texts(steps) -> dict[str, str]:
    return {step.kind: step.text for step in steps}


def test_a_sure_whole_frame_answer(serengeti):
    bundle, book = serengeti
    settings = predictor(bundle, book)
    row = row_for(probabilities(bundle.classes, zebra=0.8, wildebeest=0.1), settings)
    steps = decision_steps(row, settings, name=lambda c: book.get(c).common_name)
    assert [s.kind for s in steps] == [DETECTOR, CROP, SCORES, RULES, THRESHOLD]
    said = texts(steps)
    assert "no animal detector" in said[DETECTOR]
    assert f"{bundle.image_size} × {bundle.image_size} pixels" in said[CROP] and steps[1].bbox is None
    assert steps[2].bars[:2] == (
        ("Plains zebra", pytest.approx(0.8)),
        ("Blue wildebeest (white-bearded)", pytest.approx(0.1)),
    )
    assert "It gave **Plains zebra** the most: **80%**" in said[SCORES] and "70 points behind" in said[SCORES]
    assert "No place was given" in said[RULES] and "no rule moved the answer" in said[RULES]
    assert "**Plains zebra** has **80%**, at or above the **30%** threshold" in said[THRESHOLD]


def test_not_sure_names_the_threshold_and_the_closest_group(serengeti):
    bundle, book = serengeti
    settings = predictor(bundle, book)
    p = probabilities(bundle.classes, ostrich=0.25, reptiles=0.2, insect_spider=0.2)
    row = row_for(p, settings)
    assert row.status == UNCERTAIN
    said = texts(decision_steps(row, settings))
    assert "under the **30%** threshold" in said[THRESHOLD] and "**not sure**" in said[THRESHOLD]
    assert "no broader group of related species was sure enough either: the closest was the" in said[RULES]
    assert "Next came insect-spider with 20%, close behind." in said[SCORES]


def test_a_rolled_up_answer_says_which_classes_add_up(serengeti):
    bundle, book = serengeti
    settings = predictor(bundle, book)
    p = probabilities(
        bundle.classes, jackal=0.25, bat_eared_fox=0.2, hyena_spotted=0.15, aardwolf=0.1, lion_male=0.05
    )
    row = row_for(p, settings)
    assert row.status == OK and row.rank == "order"
    said = texts(decision_steps(row, settings, name=lambda c: book.get(c).common_name if book.get(c) else c))
    assert "No single class reached the 30% needed (the best, Jackals, had 25%)" in said[RULES]
    assert f"the classes of the **order {row.label}** together reach" in said[RULES]
    needed = f"above the {settings.rank_thresholds['order']:.0%} an order needs"  # the species notes' cut-off
    assert "Jackals 25%" in said[RULES] and needed in said[RULES]
    assert "which species it is stays open" in said[RULES]
    assert f"So the answer is **{row.label}**" in said[THRESHOLD]


def test_a_place_that_rules_out_the_first_answer_says_so(serengeti):
    bundle, book = serengeti
    settings = predictor(bundle, book, country="USA")
    row = row_for(probabilities(bundle.classes, zebra=0.7, human=0.2), settings)
    assert row.geofenced == "zebra"
    said = texts(decision_steps(row, settings))
    assert "taken in **United States** (as you said)" in said[RULES]
    assert "That ruled out the model's first answer, **zebra**." in said[RULES]
    assert said[SCORES].startswith(
        "The model gives each of its 54 classes a score"
    )  # its own scores, before rules


def test_the_detector_steps_name_the_box_and_the_crop(serengeti):
    bundle, book = serengeti
    settings = predictor(bundle, book, detector=SimpleNamespace(confidence=0.25))
    boxes = (
        Detection((0.1, 0.1, 0.2, 0.2), 0.6, label="human", confidence=0.9),
        Detection((0.5, 0.4, 0.3, 0.3), 0.9, label="zebra", confidence=0.8),
    )
    row = row_for(
        probabilities(bundle.classes, zebra=0.8), settings, detections=boxes, observation_type="animal"
    )
    assert chosen_detection(row) == 1  # an animal before a person
    steps = decision_steps(row, settings)
    assert "**2 boxes**" in steps[0].text and "the answer comes from box 2" in steps[0].text
    assert steps[0].boxes == (boxes[0].bbox, boxes[1].bbox) and steps[0].bbox == boxes[1].bbox
    assert steps[1].bbox == boxes[1].bbox and "15% of the box's size" in steps[1].text


def test_an_empty_frame_stops_at_the_detector(serengeti):
    bundle, book = serengeti
    settings = predictor(bundle, book, detector=SimpleNamespace(confidence=0.25))
    row = Row(
        path="x.jpg", label="blank", status=OK, observation_type=BLANK, detections=(), detector_best=0.03
    )
    [step] = decision_steps(row, settings)
    assert "best guess scored **3%**, and a box needs 25%" in step.text
    asked = decision_steps(
        row_for(probabilities(bundle.classes, zebra=0.8), settings), settings, whole_frame_asked=True
    )
    assert "as you asked" in asked[0].text and len(asked) == 5
    assert decision_steps(Row(path="broken.jpg", error="truncated"), settings) == []


def test_without_notes_no_rule_applies(serengeti):
    bundle, _ = serengeti
    settings = predictor(bundle, None)
    row = row_for(probabilities(bundle.classes, zebra=0.8), settings)
    assert "no species notes" in texts(decision_steps(row, settings))[RULES]
