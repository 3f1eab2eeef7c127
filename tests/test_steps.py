"""How it decided, step by step (classifier/results/steps.py): the words for each kind of answer, with the
serengeti bundle's classes and species notes and no network (the steps only read a row)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from classifier.knowledge.species import find_species_book
from classifier.models.bundles import MODELS_DIR, read_bundle
from classifier.models.verdict import Found, detected_row, rules_for, whole_frame_row
from classifier.results.steps import (
    CROP,
    DETECTOR,
    RULES,
    SCORES,
    THRESHOLD,
    chosen_detection,
    decision_steps,
    verdict_words,
)
from classifier.schema.rows import BLANK, OK, UNCERTAIN, Row

SERENGETI = MODELS_DIR / "serengeti"


@pytest.fixture(scope="module")
def serengeti():
    if not (SERENGETI / "report.json").is_file():
        pytest.skip("the serengeti bundle is not in models/")
    bundle = read_bundle(SERENGETI)
    return bundle, find_species_book("serengeti")


def predictor(bundle, book, *, threshold=0.3, country=None, detector=None):
    """What the steps read of a `Predictor`: its classes, rules (cut-offs, notes, place) and detector."""
    return SimpleNamespace(
        classes=bundle.classes,
        threshold=threshold,
        rules=rules_for(bundle, book, threshold=threshold, top_k=5, country=country),
        detector=detector,
        image_size=bundle.image_size,
        crop_margin=0.15,
    )


def probabilities(classes, **given) -> tuple[float, ...]:
    rest = (1 - sum(given.values())) / (len(classes) - len(given))
    return tuple(given.get(c.replace("-", "_"), rest) for c in classes)


def row_for(p, settings, **extra) -> Row:
    """The row the pipeline makes of a whole frame with these probabilities (classifier.models.verdict)."""
    return whole_frame_row(Row(path="photo.jpg", status=OK, **extra), p, settings.rules)


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
    assert "of the score is on" not in said[RULES]  # ostrich, reptiles and insects share no group
    assert "Next came insect-spider with 20%, close behind." in said[SCORES]


def test_a_class_rank_answer_goes_to_a_person_and_the_words_say_why(serengeti):
    bundle, book = serengeti
    settings = predictor(bundle, book)
    # a spread over mammals: "mammal" holds most, the best class (an impala) has 12%
    spread = dict.fromkeys(["warthog", "zebra", "baboon", "jackal", "hare"], 0.12) | {"impala": 0.13}
    row = row_for(probabilities(bundle.classes, **spread), settings)
    assert (row.status, row.label, row.decision.group[:2]) == (
        UNCERTAIN,
        "impala",
        ("class", "mammal (Mammalia)"),
    )
    said = texts(decision_steps(row, settings))
    assert "of the score is on **mammal (Mammalia)**, a whole class" in said[RULES]
    assert "A group that broad is never given as the answer" in said[RULES]


def test_a_rolled_up_answer_says_which_classes_add_up(serengeti):
    bundle, book = serengeti
    settings = predictor(bundle, book)
    p = probabilities(
        bundle.classes, jackal=0.21, bat_eared_fox=0.19, hyena_spotted=0.15, aardwolf=0.1, lion_male=0.05
    )
    row = row_for(p, settings)
    assert row.status == OK and row.rank == "order"
    said = texts(decision_steps(row, settings, name=lambda c: book.get(c).common_name if book.get(c) else c))
    assert "No single class was a likely answer (the best, Jackals, had 21%)" in said[RULES]
    assert f"the classes of the **order {row.label}** together reach" in said[RULES]
    needed = f"above the {settings.rules.cuts['order']:.0%} an order needs"  # the species notes' cut-off
    assert "Jackals 21%" in said[RULES] and needed in said[RULES]
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


def test_with_a_place_the_bars_the_verdict_and_the_steps_give_the_same_numbers(serengeti):
    """Mozambique rules out the olive baboon's look-alikes that live elsewhere, never the baboon (it stands
    for every baboon): the bar, the verdict's figure and the steps' figure for it are one number."""
    bundle, book = serengeti
    settings = predictor(bundle, book, threshold=0.55, country="MOZ")
    row = row_for(
        probabilities(bundle.classes, baboon=0.35, gazelle_thomsons=0.3, vervet_monkey=0.1), settings
    )
    assert row.top_k[0] == ("baboon", pytest.approx(0.35)) and row.geofenced == ""
    assert (row.label, row.status, row.confidence) == ("baboon", UNCERTAIN, pytest.approx(0.35))
    said = texts(decision_steps(row, settings))
    assert "The best, **baboon**, has **35%**, under the **55%** threshold" in said[THRESHOLD]
    assert "of the score was theirs" in said[RULES] and "not scaled up" in said[RULES]
    assert f"{row.decision.removed:.0%} of the score was theirs" in said[RULES]


def test_the_detector_steps_name_the_boxes_and_the_one_that_led(serengeti):
    bundle, book = serengeti
    settings = predictor(bundle, book, detector=SimpleNamespace(confidence=0.25))
    person = np.array(probabilities(bundle.classes, human=0.9))
    zebra = np.array(probabilities(bundle.classes, zebra=0.8))
    boxes = [Found((0.1, 0.1, 0.2, 0.2), 0.95, person), Found((0.5, 0.4, 0.3, 0.3), 0.9, zebra)]
    row = detected_row(Row(path="x.jpg", status=OK), boxes, zebra, 0.95, settings.rules)
    assert (row.label, chosen_detection(row)) == ("zebra", 1)  # an animal before a person
    steps = decision_steps(row, settings)
    assert "**2 animals**" in steps[0].text and "box 2 weighed most" in steps[0].text
    assert steps[0].boxes == (boxes[0].bbox, boxes[1].bbox) and steps[0].bbox == boxes[1].bbox
    assert steps[1].bbox == boxes[1].bbox and "15% of the box's size" in steps[1].text


def test_an_empty_frame_stops_at_the_detector(serengeti):
    bundle, book = serengeti
    settings = predictor(bundle, book, detector=SimpleNamespace(confidence=0.25))
    nothing = np.array(probabilities(bundle.classes, zebra=0.1))
    row = detected_row(Row(path="x.jpg", status=OK), [], nothing, 0.03, settings.rules)
    assert row.observation_type == BLANK
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


def test_the_verdict_says_what_the_status_says(serengeti):
    """A rolled-up answer is sure of its group (the batch counts it labelled, not for review), so the verdict
    names the group; only an uncertain row is "Not sure" (the classify page once headed both "Not sure")."""
    bundle, book = serengeti
    settings = predictor(bundle, book)
    carnivores = probabilities(
        bundle.classes, jackal=0.21, bat_eared_fox=0.19, hyena_spotted=0.15, aardwolf=0.1, lion_male=0.05
    )
    rolled = row_for(carnivores, settings)
    title, lines = verdict_words(rolled, settings)
    assert (rolled.status, title) == (OK, "Carnivore (Carnivora)")
    assert lines[0].startswith(f"**{rolled.confidence:.0%}** sure it is a carnivore (Carnivora)")
    assert "not which species" in lines[0]
    spread = probabilities(bundle.classes, ostrich=0.25, reptiles=0.2, insect_spider=0.2)
    title, lines = verdict_words(row_for(spread, settings), settings)
    assert title == "Not sure" and lines[0].startswith("Below the 30% threshold. Best guesses: ostrich")
    sure = row_for(probabilities(bundle.classes, zebra=0.8), settings, count=2)
    common = lambda c: book.get(c).common_name  # noqa: E731
    assert verdict_words(sure, settings, common) == ("2 × Plains zebra", ["**80%** confident"])
