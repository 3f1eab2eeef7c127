"""Look-alikes (classifier/knowledge/lookalikes.py): confusion counts from a report, notes both ways round, words."""

from __future__ import annotations

import pytest

from classifier.knowledge.lookalikes import (
    answer_pair,
    are_look_alikes,
    compare,
    confused_with,
    confusion_sentences,
    how_to_tell,
    most_confused_pair,
    partner,
)
from classifier.knowledge.species import LookAlike, SpeciesBook, SpeciesEntry
from classifier.models.bundles import MODELS_DIR, read_bundle

CLASSES = ["jackal", "fox", "hyena", "zebra"]
REPORT = {
    "classes": CLASSES,
    # rows: actual, columns: predicted
    "confusion_matrix": [[5, 3, 1, 0], [1, 6, 0, 0], [0, 0, 4, 0], [0, 0, 0, 7]],
    "per_class": {"jackal": {"precision": 0.83, "recall": 0.56, "f1": 0.67, "support": 9}},
}


def entry(key: str, *look_alikes: tuple[str, str]) -> SpeciesEntry:
    return SpeciesEntry(
        key=key,
        kind="species",
        common_name=key.capitalize(),
        scientific_name=None,
        iucn="LC",
        population_trend="stable",
        description="",
        look_alikes=tuple(LookAlike(s, t) for s, t in look_alikes),
        habitat=None,
        diet=None,
        wildlife=None,
        threats="",
        conservation="",
        sources=(),
    )


BOOK = SpeciesBook(
    bundle="test",
    title="Test",
    entries={
        "jackal": entry("jackal", ("fox", "The fox has huge ears.")),
        "fox": entry("fox"),
        "zebra": entry("zebra", ("hyena", "Stripes all over.")),
    },
)


def test_confused_with_counts_both_ways_most_first():
    assert confused_with(REPORT, "jackal") == [("fox", 3, 1), ("hyena", 1, 0)]
    assert confused_with(REPORT, "zebra") == []
    assert confused_with(REPORT, "lion") == []
    assert confused_with({"classes": CLASSES}, "jackal") == []  # no matrix
    assert most_confused_pair(REPORT) == ("jackal", "fox")
    assert most_confused_pair({"classes": ["a", "b"], "confusion_matrix": [[3, 0], [0, 2]]}) is None


def test_look_alikes_come_from_the_notes_either_way_round_or_from_the_confusions():
    assert how_to_tell(BOOK, "jackal", "fox") == "The fox has huge ears."
    assert how_to_tell(BOOK, "fox", "jackal") is None
    assert are_look_alikes(REPORT, BOOK, "fox", "jackal")  # named by the jackal's notes
    assert are_look_alikes(REPORT, BOOK, "zebra", "hyena")  # named by the notes, never confused
    assert are_look_alikes(REPORT, None, "hyena", "jackal")  # confused once, no notes
    assert not are_look_alikes(REPORT, BOOK, "fox", "zebra")
    assert not are_look_alikes(REPORT, BOOK, "fox", "fox")


def test_the_first_class_to_compare_with_is_the_notes_look_alike_else_the_most_confused():
    assert partner(REPORT, BOOK, "jackal") == "fox"  # the notes
    assert partner(REPORT, BOOK, "hyena") == "jackal"  # no notes: confused once
    assert partner(REPORT, BOOK, "fox") == "jackal"  # notes without look-alikes: the confusions
    assert partner({"classes": CLASSES}, None, "zebra") is None
    assert partner({"classes": ["jackal", "hyena"]}, BOOK, "jackal") is None  # fox: not a class here


def test_compare_puts_notes_scores_and_counts_side_by_side():
    found = compare(REPORT, BOOK, "jackal", "fox")
    assert (found.a_as_b, found.b_as_a, found.a_photos, found.b_photos) == (3, 1, 9, 7)
    assert found.a.how_to_tell == "The fox has huge ears." and found.b.how_to_tell is None
    assert found.a.scores["recall"] == 0.56 and found.b.scores is None
    assert found.listed and found.confusions == 4
    assert confusion_sentences(found, lambda c: c.capitalize()) == [
        "Of 9 held-out photos of Jackal, the model called 3 (33%) Fox.",
        "Of 7 held-out photos of Fox, the model called 1 (14%) Jackal.",
    ]
    with pytest.raises(ValueError, match="'lion' is not one of this model's classes"):
        compare(REPORT, BOOK, "jackal", "lion")
    unknown = compare({"classes": CLASSES}, None, "jackal", "fox")
    assert unknown.a_as_b is None and "no confusion matrix" in confusion_sentences(unknown)[0]


def test_a_not_sure_answer_links_its_first_two_classes_when_they_look_alike():
    assert answer_pair((("fox", 0.3), ("jackal", 0.25), ("zebra", 0.1)), REPORT, BOOK) == ("fox", "jackal")
    assert answer_pair((("fox", 0.3), ("zebra", 0.25)), REPORT, BOOK) is None
    assert answer_pair((("carnivore (Carnivora)", 0.8), ("jackal", 0.3)), REPORT, BOOK) is None
    assert answer_pair((("fox", 0.9),), REPORT, BOOK) is None


def test_the_serengeti_bundle_links_each_species_to_what_it_is_confused_with():
    if not (MODELS_DIR / "serengeti" / "report.json").is_file():
        pytest.skip("the serengeti bundle is not in models/")
    report = read_bundle(MODELS_DIR / "serengeti").report
    pairs = [(c, confused_with(report, c)) for c in report["classes"]]
    assert sum(bool(found) for _, found in pairs) > len(pairs) // 2  # most classes are confused with some
    assert all(len(found) <= 3 and all(a + b > 0 for _, a, b in found) for _, found in pairs)
