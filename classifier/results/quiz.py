""" "Can you beat the model?": a short quiz on a bundle's photos, the visitor against the model.

Each question is one photo and four names (fewer for a bundle with fewer classes): the right one and the
classes this model itself mixes it up with (its report's confusion matrix), then the look-alikes its species
notes name, then relatives (the most taxonomy shared), then any. The photos are the bundle's example
photos and, where its training data is on this disk, the held-out photos its report was measured on
(classifier/models/bundle_photos.py). The page runs the real predictor on each photo for the model's answer;
this module makes the questions and keeps the score.

    questions = make_quiz(quiz_photos(bundle), bundle.report, book, size=10, seed=7)
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifier.knowledge.lookalikes import confused_with, how_to_tell
from classifier.knowledge.species import SpeciesBook
from classifier.models.bundle_photos import bundle_examples, data_root, held_out_photos
from classifier.models.bundles import Bundle

QUIZ_SIZE = 10
CHOICES = 4


class QuizError(ValueError):
    """A bundle that cannot make a quiz; the message is one line saying why."""


@dataclass(frozen=True)
class QuizPhoto:
    path: Path
    label: str
    credit: str  # where the photo comes from (shown after the answer: a file name may give it away)


@dataclass(frozen=True)
class Question:
    photo: QuizPhoto
    choices: tuple[str, ...]  # the right class among the others, in the order shown

    @property
    def answer(self) -> str:
        return self.photo.label


@dataclass(frozen=True)
class Answered:
    question: Question
    picked: str  # the visitor's choice
    model_label: str  # the model's answer (its verdict's label: a class, a group, "blank"...)

    @property
    def visitor_right(self) -> bool:
        return self.picked == self.question.answer

    @property
    def model_right(self) -> bool:
        return self.model_label == self.question.answer


@dataclass(frozen=True)
class Score:
    asked: int
    visitor: int
    model: int

    def verdict(self) -> str:
        """Who won, in words."""
        tally = f"{self.visitor} of {self.asked} for you, {self.model} of {self.asked} for the model"
        if self.visitor > self.model:
            return f"You beat the model: {tally}."
        if self.visitor < self.model:
            return f"The model wins this time: {tally}."
        return f"A draw: {tally}."


def quiz_photos(bundle: Bundle) -> list[QuizPhoto]:
    """The bundle's example photos and its held-out photos on this disk, each photo once."""
    examples = bundle_examples(bundle)
    root = data_root(bundle.report)
    photos = [QuizPhoto(e.path, e.label, e.credit) for e in examples.values()]
    used = {root / e.source_file for e in examples.values()} if root else set()
    for path, label in held_out_photos(bundle):
        if path not in used:
            shown = path.relative_to(root).as_posix() if root and root in path.parents else path.name
            photos.append(QuizPhoto(path, label, f"Photo: {bundle.title}'s held-out photos, {shown}"))
    return photos


def make_quiz(
    photos: Sequence[QuizPhoto],
    report: Mapping[str, Any],
    book: SpeciesBook | None,
    size: int = QUIZ_SIZE,
    seed: int | None = None,
) -> list[Question]:
    """Up to `size` questions, each of another class as far as the photos allow, in random order."""
    classes = list(report.get("classes") or [])
    if len(classes) < 2:
        raise QuizError("a quiz needs a model with two classes or more.")
    usable = [p for p in photos if p.label in classes]
    if not usable:
        raise QuizError(
            "this model has no photos to quiz on: no example photos, and its training data is not on this disk."
        )
    rng = random.Random(seed)
    by_class: dict[str, list[QuizPhoto]] = {}
    for photo in usable:
        by_class.setdefault(photo.label, []).append(photo)
    order = list(by_class)
    rng.shuffle(order)
    picked = [rng.choice(by_class[label]) for label in order[:size]]
    while len(picked) < min(size, len(usable)):  # fewer classes than questions: a class comes again
        picked.append(rng.choice([p for p in usable if p not in picked]))
    rng.shuffle(picked)
    return [Question(photo, choices(photo.label, report, book, rng)) for photo in picked]


def choices(
    label: str, report: Mapping[str, Any], book: SpeciesBook | None, rng: random.Random
) -> tuple[str, ...]:
    """`label` and up to CHOICES - 1 others the model could take it for, shuffled."""
    others = wrong_names(label, report, book, rng)[: CHOICES - 1]
    shown = [label, *others]
    rng.shuffle(shown)
    return tuple(shown)


def wrong_names(
    label: str, report: Mapping[str, Any], book: SpeciesBook | None, rng: random.Random
) -> list[str]:
    """Every other class, the likeliest mix-ups first: the model's own confusions (most first), the notes'
    look-alikes, then the rest by how much taxonomy they share with `label` (ties in random order)."""
    classes = [c for c in report.get("classes") or [] if c != label]
    mixed = [other for other, _, _ in confused_with(report, label, top=len(classes))]
    entry = book.get(label) if book else None
    named = [look.species for look in entry.look_alikes] if entry else []
    named += [
        c
        for c in classes
        if book and (e := book.get(c)) and any(look.species == label for look in e.look_alikes)
    ]
    rest = sorted(classes, key=lambda c: (-_shared_taxonomy(book, label, c), rng.random()))
    return list(dict.fromkeys(c for c in [*mixed, *named, *rest] if c in classes))


def _shared_taxonomy(book: SpeciesBook | None, a: str, b: str) -> int:
    """How many ranks (class, order, family, ...) two classes share, from the top."""
    first, second = (book.get(a), book.get(b)) if book else (None, None)
    if first is None or second is None:
        return 0
    shared = 0
    for mine, theirs in zip(first.lineage, second.lineage, strict=False):
        if mine != theirs:
            break
        shared += 1
    return shared


def tally(answers: Sequence[Answered]) -> Score:
    return Score(
        asked=len(answers),
        visitor=sum(a.visitor_right for a in answers),
        model=sum(a.model_right for a in answers),
    )


def telling_apart(answered: Answered, book: SpeciesBook | None) -> tuple[str, str, str] | None:
    """(the right class, the one it is told from, how) from the notes: the visitor's wrong pick first, then
    the model's wrong answer, then any other choice the notes tell it from; None when they say nothing."""
    answer = answered.question.answer
    others = [answered.picked, answered.model_label, *answered.question.choices]
    for other in dict.fromkeys(o for o in others if o != answer):
        cue = how_to_tell(book, answer, other) or how_to_tell(book, other, answer)
        if cue:
            return answer, other, cue
    return None
