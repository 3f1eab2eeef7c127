"""Two classes side by side: how to tell them apart, and how often this model mixes them up.

Pure functions of a bundle's `report.json` (its confusion matrix and per-class scores, DESIGN.md schema)
and its species notes (`look_alikes` with `how_to_tell`, IUCN status), so the look-alikes page, the
species pages' links and the classify page's "not sure" answers only draw what this returns.

Confusion counts are the report's held-out photos: rows of `confusion_matrix` are the actual class,
columns the predicted one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from classifier.knowledge.species import SpeciesBook, SpeciesEntry


@dataclass(frozen=True)
class Side:
    """One of the two classes: its notes (None without), what its notes say tells it from the other,
    and its per-class scores in the report (precision, recall, f1, support; None when absent)."""

    key: str
    entry: SpeciesEntry | None
    how_to_tell: str | None
    scores: Mapping[str, float] | None


@dataclass(frozen=True)
class Comparison:
    a: Side
    b: Side
    a_as_b: int | None  # held-out photos of a the model called b (None: no confusion matrix)
    b_as_a: int | None
    a_photos: int | None  # held-out photos of a
    b_photos: int | None
    listed: bool  # the notes name them as look-alikes (either way round)

    @property
    def confusions(self) -> int:
        return (self.a_as_b or 0) + (self.b_as_a or 0)


def _matrix(report: Mapping[str, Any]) -> tuple[list[str], list[list[float]]] | None:
    classes, matrix = report.get("classes") or [], report.get("confusion_matrix")
    if not isinstance(matrix, list) or len(matrix) != len(classes):
        return None
    if not all(isinstance(row, list) and len(row) == len(classes) for row in matrix):
        return None
    return list(classes), matrix


def confused_with(report: Mapping[str, Any], key: str, top: int = 3) -> list[tuple[str, int, int]]:
    """The classes this model mixes up with `key` most often on its held-out photos: (other, photos of
    `key` called other, photos of other called `key`), most confusions first, only those with any."""
    found = _matrix(report)
    if found is None or key not in found[0]:
        return []
    classes, matrix = found
    i = classes.index(key)
    pairs = [
        (other, int(matrix[i][j]), int(matrix[j][i]))
        for j, other in enumerate(classes)
        if j != i and matrix[i][j] + matrix[j][i] > 0
    ]
    pairs.sort(key=lambda p: (-(p[1] + p[2]), classes.index(p[0])))
    return pairs[:top]


def most_confused_pair(report: Mapping[str, Any]) -> tuple[str, str] | None:
    """The two classes mixed up most often (both ways together); None when nothing is mixed up."""
    found = _matrix(report)
    if found is None:
        return None
    classes, matrix = found
    best, pair = 0.0, None
    for i in range(len(classes)):
        for j in range(i + 1, len(classes)):
            count = matrix[i][j] + matrix[j][i]
            if count > best:
                best, pair = count, (classes[i], classes[j])
    return pair


def partner(report: Mapping[str, Any], book: SpeciesBook | None, key: str) -> str | None:
    """The class to put beside `key` first: its notes' first look-alike among this model's classes,
    else the class this model mixes up with it most; None when there is neither."""
    classes = report.get("classes") or []
    entry = book.get(key) if book else None
    named = [look.species for look in entry.look_alikes if look.species in classes] if entry else []
    if named:
        return named[0]
    mixed = confused_with(report, key, top=1)
    return mixed[0][0] if mixed else None


def how_to_tell(book: SpeciesBook | None, key: str, other: str) -> str | None:
    """What `key`'s notes say tells it from `other`, None when they do not name it."""
    entry = book.get(key) if book else None
    if entry is None:
        return None
    return next((look.how_to_tell for look in entry.look_alikes if look.species == other), None)


def are_look_alikes(report: Mapping[str, Any], book: SpeciesBook | None, a: str, b: str) -> bool:
    """Whether the notes name `a` and `b` as look-alikes (either way round) or the model mixed them up
    on its held-out photos at least once."""
    if a == b:
        return False
    if how_to_tell(book, a, b) or how_to_tell(book, b, a):
        return True
    return any(other == b for other, _, _ in confused_with(report, a, top=len(report.get("classes", []))))


def compare(report: Mapping[str, Any], book: SpeciesBook | None, a: str, b: str) -> Comparison:
    """`a` and `b` side by side; raises ValueError for a class the report does not have."""
    classes = list(report.get("classes") or [])
    for key in (a, b):
        if key not in classes:
            raise ValueError(f"{key!r} is not one of this model's classes")
    per_class = report.get("per_class") or {}
    found = _matrix(report)
    counts: list[int | None] = [None, None, None, None]
    if found is not None:
        _, matrix = found
        i, j = classes.index(a), classes.index(b)
        counts = [int(matrix[i][j]), int(matrix[j][i]), int(sum(matrix[i])), int(sum(matrix[j]))]
    return Comparison(
        a=Side(a, book.get(a) if book else None, how_to_tell(book, a, b), per_class.get(a)),
        b=Side(b, book.get(b) if book else None, how_to_tell(book, b, a), per_class.get(b)),
        a_as_b=counts[0],
        b_as_a=counts[1],
        a_photos=counts[2],
        b_photos=counts[3],
        listed=bool(how_to_tell(book, a, b) or how_to_tell(book, b, a)),
    )


def confusion_sentences(comparison: Comparison, name: Callable[[str], str] = str) -> list[str]:
    """How often the model mixed the two up, in plain words (one sentence each way)."""
    if comparison.a_as_b is None:
        return ["This model's report has no confusion matrix, so how often it mixes these up is not known."]
    said = []
    for side, other, wrong, photos in (
        (comparison.a, comparison.b, comparison.a_as_b, comparison.a_photos),
        (comparison.b, comparison.a, comparison.b_as_a, comparison.b_photos),
    ):
        if not photos:
            said.append(
                f"The model's held-out photos had no {name(side.key)}, so that way round is not known."
            )
            continue
        called = f"{wrong} ({wrong / photos:.0%})" if wrong else "none"
        said.append(
            f"Of {photos} held-out {'photo' if photos == 1 else 'photos'} of {name(side.key)}, the model "
            f"called {called} {name(other.key)}."
        )
    return said


def answer_pair(
    row_top_k: Sequence[tuple[str, float]], report: Mapping[str, Any], book: SpeciesBook | None
) -> tuple[str, str] | None:
    """The first two classes of an answer's bars when they are look-alikes (for the "not sure" link)."""
    classes = set(report.get("classes") or [])
    labels = [label for label, _ in row_top_k if label in classes][:2]
    if len(labels) == 2 and are_look_alikes(report, book, *labels):
        return labels[0], labels[1]
    return None
