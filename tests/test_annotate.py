"""The photo as the classify page and the exports draw it: boxes, their labels, people blurred."""

from __future__ import annotations

import numpy as np
from PIL import Image

from classifier.results.annotate import annotate, caption
from classifier.schema.rows import OK, UNCERTAIN, Detection

BOX = (0.25, 0.25, 0.5, 0.5)


def test_a_sure_box_is_labelled_with_its_answer_and_score():
    box = Detection(BOX, 0.9, label="zebra", confidence=0.93, status=OK)
    assert caption(box, name=str.title) == "Zebra 93%"


def test_a_best_guess_box_says_not_sure_so_it_is_not_read_as_the_verdict():
    box = Detection(BOX, 0.8, label="vervetmonkey", confidence=0.115, status=UNCERTAIN)
    assert caption(box, name={"vervetmonkey": "Vervet monkey"}.get) == "not sure: Vervet monkey 12%"


def test_a_person_is_blurred_and_an_animal_is_not():
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8))
    inside = (slice(70, 130), slice(70, 130))  # well inside the box, away from its outline and label

    def detail(image: Image.Image) -> float:
        return float(np.asarray(image, dtype=np.float32)[inside].std())

    person = annotate(photo, [Detection(BOX, 0.9, label="human", confidence=0.9, status=OK)])
    animal = annotate(photo, [Detection(BOX, 0.9, label="zebra", confidence=0.9, status=OK)])
    shown = annotate(photo, [Detection(BOX, 0.9, label="human", confidence=0.9)], blur_people=False)
    assert detail(person) < 0.2 * detail(photo)
    assert detail(animal) == detail(photo) == detail(shown)
