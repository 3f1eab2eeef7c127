""" "Can you beat the model?": questions from the model's own confusions, the photos, the score."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from classifier.knowledge.species import SpeciesBook, find_species_book
from classifier.models.bundle_photos import example_jpeg, write_examples
from classifier.models.bundles import read_bundle
from classifier.results.quiz import (
    Answered,
    Question,
    QuizError,
    QuizPhoto,
    Score,
    choices,
    make_quiz,
    quiz_photos,
    tally,
    telling_apart,
)
from conftest import make_tiny_image

CLASSES = ["ant", "bee", "cat", "dog", "eel", "fox"]


def report(confusions: dict[tuple[str, str], int] | None = None, classes: list[str] = CLASSES) -> dict:
    matrix = [[3 if a == b else 0 for b in classes] for a in classes]
    for (actual, predicted), count in (confusions or {}).items():
        matrix[classes.index(actual)][classes.index(predicted)] = count
    return {"classes": classes, "confusion_matrix": matrix}


def photos(classes: list[str] = CLASSES, each: int = 2) -> list[QuizPhoto]:
    return [QuizPhoto(Path(f"{c}_{i}.jpg"), c, f"credit {c} {i}") for c in classes for i in range(each)]


def test_the_wrong_names_are_the_models_own_confusions_first() -> None:
    mixed = report({("cat", "fox"): 2, ("dog", "cat"): 1, ("eel", "cat"): 1})
    shown = choices("cat", mixed, None, random.Random(1))
    assert len(shown) == 4 and "cat" in shown
    assert {"fox", "dog", "eel"} == set(shown) - {"cat"}


def test_then_the_look_alikes_the_notes_name() -> None:
    book = find_species_book("serengeti")
    classes = ["aardvark", "aardwolf", "baboon", "porcupine", "warthog", "zebra"]
    shown = choices("aardvark", report(classes=classes), book, random.Random(3))
    assert {"warthog", "porcupine"} <= set(shown)  # the aardvark's look-alikes in its notes


def test_a_model_of_two_classes_asks_between_two() -> None:
    assert sorted(choices("ant", report(classes=["ant", "bee"]), None, random.Random(0))) == ["ant", "bee"]


def test_a_quiz_asks_ten_photos_of_ten_classes_the_same_way_for_one_seed() -> None:
    many = [f"class{i:02d}" for i in range(14)]
    quiz = make_quiz(photos(many), report(classes=many), None, size=10, seed=5)
    assert len(quiz) == 10 and len({q.answer for q in quiz}) == 10
    assert all(q.answer in q.choices and len(q.choices) == 4 for q in quiz)
    assert quiz == make_quiz(photos(many), report(classes=many), None, size=10, seed=5)
    assert quiz != make_quiz(photos(many), report(classes=many), None, size=10, seed=6)


def test_with_fewer_classes_than_questions_a_class_comes_again_with_another_photo() -> None:
    quiz = make_quiz(photos(["ant", "bee"], each=4), report(classes=["ant", "bee"]), None, size=6, seed=1)
    assert len(quiz) == 6 and len({q.photo for q in quiz}) == 6


@pytest.mark.parametrize(
    ("classes", "given", "problem"),
    [(["ant"], photos(["ant"]), "two classes or more"), (CLASSES, [], "no photos to quiz on")],
)
def test_a_model_that_cannot_make_a_quiz_says_why(classes, given, problem) -> None:
    with pytest.raises(QuizError, match=re.escape(problem)):
        make_quiz(given, report(classes=classes), None)


def test_the_score_and_who_won() -> None:
    question = Question(QuizPhoto(Path("x.jpg"), "cat", ""), ("cat", "dog", "fox", "eel"))
    answers = [
        Answered(question, picked="cat", model_label="dog"),
        Answered(question, picked="cat", model_label="cat"),
        Answered(question, picked="fox", model_label="mammal (Mammalia)"),  # a roll-up does not name the cat
    ]
    assert tally(answers) == Score(asked=3, visitor=2, model=1)
    assert tally(answers).verdict() == "You beat the model: 2 of 3 for you, 1 of 3 for the model."
    assert Score(2, 1, 1).verdict().startswith("A draw")
    assert Score(2, 0, 2).verdict().startswith("The model wins")


def test_the_cue_tells_the_right_animal_from_the_wrong_pick() -> None:
    cat = find_species_book("serengeti").get("cheetah")
    book = SpeciesBook(bundle="b", title="B", entries={"cheetah": cat})
    question = Question(
        QuizPhoto(Path("x.jpg"), "cheetah", ""), ("cheetah", "leopard", "serval", "lion-female")
    )
    found = telling_apart(Answered(question, picked="leopard", model_label="cheetah"), book)
    assert found is not None and found[:2] == ("cheetah", "leopard")
    assert found[2] == next(look.how_to_tell for look in cat.look_alikes if look.species == "leopard")
    silent = SpeciesBook(bundle="b", title="B", entries={})
    assert telling_apart(Answered(question, picked="leopard", model_label="cheetah"), silent) is None


def test_the_photos_are_the_examples_and_the_held_out_photos_each_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for label in ("blue", "red"):
        (data / label).mkdir(parents=True)
        for i in range(2):
            make_tiny_image(label, seed=i).save(data / label / f"{label}_{i}.jpg")
    directory = tmp_path / "tiny"
    directory.mkdir()
    split = "3-fold cross-validation"
    fields = {"name": "tiny", "classes": ["blue", "red"], "image_size": 64}
    (directory / "report.json").write_text(
        json.dumps({**fields, "data": {"root": str(data), "format": "folder", "split": split}})
    )
    jpeg = example_jpeg(make_tiny_image("red"))
    write_examples(directory / "examples", {"red": (jpeg, "red/red_0.jpg", None)}, "Generated", "CC0-1.0")
    found = quiz_photos(read_bundle(directory))
    assert len(found) == 4  # red_0.jpg is the example: not twice
    assert found[0].path == directory / "examples" / "red.jpg" and found[0].credit.endswith("CC0-1.0")
    assert sorted(p.path.name for p in found[1:]) == ["blue_0.jpg", "blue_1.jpg", "red_1.jpg"]
