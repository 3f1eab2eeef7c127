"""Taxonomic rollup: the lowest rank whose summed probability clears its cut-off, and the place rules first."""

from __future__ import annotations

import pytest
import yaml

from classifier.knowledge.species import find_species_book, load_species_book
from classifier.knowledge.taxonomy import (
    OK,
    UNCERTAIN,
    decide,
    label_parts,
    lineages,
    rollup,
    taxon_label,
    thresholds_for,
)

SOURCE = [{"title": "Wikipedia", "url": "https://en.wikipedia.org/wiki/Felidae"}]
AFRICA = {"countries": ["KEN", "TZA"], "note": "East Africa."}
CAT, DOG = ("Mammalia", "Carnivora", "Felidae"), ("Mammalia", "Carnivora", "Canidae")
RANKS = ("class", "order", "family", "genus", "species")


def species(lineage: tuple[str, ...], range_: dict = AFRICA) -> dict:
    return {
        "common_name": lineage[-1],
        "scientific_name": lineage[-1],
        "iucn": "LC",
        "population_trend": "stable",
        "description": "x.",
        "habitat": "x.",
        "diet": "x.",
        "threats": "x.",
        "conservation": "x.",
        "taxonomy": dict(zip(RANKS, lineage, strict=False)),
        "range": range_,
        "sources": SOURCE,
    }


def group(lineage: tuple[str, ...], range_: dict = AFRICA) -> dict:
    entry = species(lineage, range_) | {"kind": "group"}
    for name in ("iucn", "population_trend"):
        del entry[name]
    return entry


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    lion = (*CAT, "Panthera", "Panthera leo")
    data = {
        "bundle": "cats",
        "title": "Cats and dogs",
        "taxa": {"Felidae": "cat", "Panthera": "big cat", "Panthera leo": "lion", "Canidae": "dog family"},
        "species": {
            "lion-female": species(lion),
            "lion-male": species(lion),
            "leopard": species(
                (*CAT, "Panthera", "Panthera pardus"), {"countries": ["KEN", "IND"], "note": "x."}
            ),
            "cheetah": species((*CAT, "Acinonyx", "Acinonyx jubatus")),
            "jackal": group(DOG),
            "bat-eared-fox": species((*DOG, "Otocyon", "Otocyon megalotis")),
            "rodents": group(("Mammalia", "Rodentia"), {"countries": "all", "note": "Everywhere."}),
            "forest": {
                "kind": "habitat",
                "common_name": "Forest",
                "description": "Trees.",
                "wildlife": "Many.",
                "threats": "x.",
                "conservation": "x.",
                "sources": SOURCE,
            },
        },
    }
    path = tmp_path_factory.mktemp("notes") / "cats.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_species_book(path)


CLASSES = ["lion-female", "lion-male", "leopard", "cheetah", "jackal", "bat-eared-fox", "rodents", "forest"]
CUTS = {"species": 0.5, "genus": 0.4, "family": 0.6, "order": 0.7}


def probs(**given: float) -> list[float]:
    """Probabilities in CLASSES order (names with '_' for '-'); the rest share what is left."""
    given = {k.replace("_", "-"): v for k, v in given.items()}
    rest = [c for c in CLASSES if c not in given]
    share = (1.0 - sum(given.values())) / len(rest) if rest else 0.0
    return [given.get(c, share) for c in CLASSES]


def test_a_sure_class_is_answered_as_itself(book):
    answer = rollup(probs(cheetah=0.7), CLASSES, book, CUTS)
    assert (answer.label, answer.rank, answer.taxon, answer.status) == (
        "cheetah",
        "species",
        "Acinonyx jubatus",
        OK,
    )
    assert not answer.rolled_up and answer.candidates == (("cheetah", 0.7),)


def test_a_species_two_classes_share(book):
    answer = rollup(probs(lion_female=0.3, lion_male=0.25, leopard=0.1), CLASSES, book, CUTS)
    assert (answer.label, answer.rank, answer.status) == ("lion (Panthera leo)", "species", OK)
    assert answer.confidence == pytest.approx(0.55) and answer.rolled_up
    assert [c for c, _ in answer.candidates] == ["lion-female", "lion-male"]


def test_genus_when_no_species_clears(book):
    answer = rollup(probs(leopard=0.25, lion_female=0.1, lion_male=0.1, cheetah=0.2), CLASSES, book, CUTS)
    assert (answer.label, answer.rank, answer.taxon) == ("big cat (Panthera)", "genus", "Panthera")
    assert answer.confidence == pytest.approx(0.45)
    assert [c for c, _ in answer.candidates] == ["leopard", "lion-female", "lion-male"]


def test_the_lowest_rank_that_clears_its_threshold_wins(book):
    p = probs(leopard=0.25, lion_female=0.1, lion_male=0.1, cheetah=0.2)  # Panthera 0.45, Felidae 0.65
    assert rollup(p, CLASSES, book, CUTS | {"genus": 0.5}).label == "cat (Felidae)"
    assert rollup(p, CLASSES, book, CUTS | {"genus": 0.5, "family": 0.7}).rank == "order"
    # a rank without a threshold is skipped, whatever its sum
    skipped = rollup(p, CLASSES, book, {k: v for k, v in CUTS.items() if k not in ("genus", "family")})
    assert (skipped.rank, skipped.taxon) == ("order", "Carnivora")


def test_a_lower_rank_beats_a_higher_one_that_also_clears(book):
    # Felidae 0.9 also clears the family cut-off, but the genus Panthera clears first
    answer = rollup(
        probs(leopard=0.35, lion_female=0.1, cheetah=0.45), CLASSES, book, CUTS | {"species": 0.6}
    )
    assert answer.rank == "genus"


def test_nothing_clears_is_the_top_class_uncertain(book):
    p = [0.15, 0.0, 0.1, 0.1, 0.15, 0.1, 0.05, 0.35]  # forest (no taxonomy) top; carnivores 0.6
    answer = rollup(p, CLASSES, book, CUTS)
    assert (answer.label, answer.rank, answer.taxon, answer.status) == ("forest", "", None, UNCERTAIN)
    assert rollup(p, CLASSES, book, CUTS | {"species": 0.2}).label == "forest"  # answered as itself


def test_a_group_class_has_its_own_rank(book):
    rodents, jackal = (
        rollup(probs(rodents=0.8), CLASSES, book, CUTS),
        rollup(probs(jackal=0.6), CLASSES, book, CUTS),
    )
    assert (rodents.label, rodents.rank, rodents.taxon) == ("rodents", "order", "Rodentia")
    assert (jackal.label, jackal.rank, jackal.taxon, jackal.rolled_up) == (
        "jackal",
        "family",
        "Canidae",
        False,
    )


def test_without_notes_or_thresholds(book):
    p = probs(cheetah=0.45)
    plain = rollup(p, CLASSES, None, CUTS)
    assert (plain.label, plain.rank, plain.status) == ("cheetah", "", UNCERTAIN)
    assert rollup(p, CLASSES, book, {}).status == UNCERTAIN  # no class cut-off: never ok on its own
    with pytest.raises(ValueError, match="7 probabilities for 8 classes"):
        rollup(p[:-1], CLASSES, book, CUTS)


def test_labels_and_lineages(book):
    assert taxon_label("Felidae", book) == "cat (Felidae)"
    assert taxon_label("Acinonyx", book) == "Acinonyx"  # no common name given
    assert lineages(["cheetah", "forest", "okapi"], book)[1:] == [(), ()]


# ---- with a place ------------------------------------------------------------------------------------


def test_decide_without_a_country_is_rollup(book):
    p = probs(leopard=0.25, lion_female=0.1, lion_male=0.1, cheetah=0.2)
    assert decide(p, CLASSES, book, None, CUTS) == rollup(p, CLASSES, book, CUTS)


def test_a_removed_class_is_never_answered_and_counts_from_family_up(book):
    # In the USA only rodents (everywhere) and the forest remain. The jackal was the best class:
    # it is named as geofenced, and its share still counts for the dog family.
    answer = decide(probs(jackal=0.55, bat_eared_fox=0.1, rodents=0.05), CLASSES, book, "USA", CUTS)
    assert (answer.label, answer.rank, answer.geofenced) == ("dog family (Canidae)", "family", "jackal")
    assert answer.candidates == ()  # no dog of this model lives there
    # the cheetah at 0.9 is past the class cut-off but does not live in the USA
    fenced = decide(probs(cheetah=0.9), CLASSES, book, "USA", CUTS)
    assert fenced.label != "cheetah" and fenced.geofenced == "cheetah"


def test_a_removed_class_does_not_count_for_its_genus(book):
    # In India the leopard lives, the lions and cheetah do not: Panthera is the leopard's alone
    p = probs(leopard=0.3, lion_female=0.15, lion_male=0.15, cheetah=0.15)
    answer = decide(p, CLASSES, book, "IND", CUTS)
    assert answer.rank == "family" and answer.confidence == pytest.approx(0.75)
    assert answer.candidates == (("leopard", 0.3),)
    assert rollup(p, CLASSES, book, CUTS).rank == "genus"  # without the place, Panthera had 0.6


def test_nothing_left_is_unknown():
    otters = find_species_book("otters")
    answer = decide([0.7, 0.3], ["river_otter", "sea_otter"], otters, "KEN", {"species": 0.5})
    assert (answer.label, answer.rank, answer.status, answer.geofenced) == (
        "unknown",
        "",
        UNCERTAIN,
        "river_otter",
    )


def test_thresholds_for_takes_the_bundle_cut_off(book):
    serengeti = find_species_book("serengeti")
    assert thresholds_for(serengeti, 0.42) == {**serengeti.rollup_thresholds, "species": 0.42}
    assert thresholds_for(None, 0.3) == {"species": 0.3}


def test_serengeti_bundle_answers_a_coyote_in_the_usa_as_a_carnivore():
    book = find_species_book("serengeti")
    classes = list(book.entries)
    p = [0.002] * len(classes)
    for name, value in {"jackal": 0.45, "bat-eared-fox": 0.15, "hyena-spotted": 0.1, "human": 0.05}.items():
        p[classes.index(name)] = value
    cuts = thresholds_for(book, 0.3)
    assert decide(p, classes, book, None, cuts).label == "jackal"  # the Serengeti answer, as before
    in_usa = decide(p, classes, book, "USA", cuts)
    assert (in_usa.label, in_usa.geofenced) == ("carnivore (Carnivora)", "jackal")


def test_a_class_rank_is_never_a_sure_answer_but_is_named_as_the_group(book):
    # carnivores 0.45, rodents 0.35: only the class Mammalia holds most, and a class is never an answer
    p = probs(rodents=0.35, forest=0.2, leopard=0.15, jackal=0.15, cheetah=0.05, bat_eared_fox=0.05)
    answer = rollup(p, CLASSES, book, {"species": 0.5, "order": 0.4, "class": 0.5})
    assert (answer.label, answer.status, answer.rolled_up) == ("Carnivora", OK, True)  # no common name given
    answer = rollup(p, CLASSES, book, {"species": 0.5, "class": 0.5})
    assert (answer.label, answer.status, answer.rolled_up) == ("rodents", UNCERTAIN, False)
    assert answer.group == ("class", "Mammalia", pytest.approx(0.8))


def test_a_plausible_class_is_not_traded_for_a_group(book):
    from dataclasses import replace

    p = probs(leopard=0.32, lion_female=0.1, lion_male=0.1, cheetah=0.2)  # Panthera 0.52, best class 0.32
    cautious = replace(book, rollup_under=0.25)
    kept = rollup(p, CLASSES, cautious, CUTS)
    assert (kept.label, kept.status) == ("leopard", UNCERTAIN) and kept.group[1] == "big cat (Panthera)"
    assert rollup(p, CLASSES, replace(book, rollup_under=0.35), CUTS).label == "big cat (Panthera)"
    # a species two classes share is no broader group: it rolls up whatever the best class scores
    lions = rollup(probs(lion_female=0.3, lion_male=0.25), CLASSES, cautious, CUTS)
    assert lions.label == "lion (Panthera leo)" and lions.status == OK


def test_labels_of_rolled_up_answers_give_their_taxon_back(book):
    assert label_parts(taxon_label("Felidae", book)) == ("Felidae", "cat")
    assert label_parts("Acinonyx") == ("Acinonyx", "")
    assert label_parts("lion (Panthera leo)") == ("Panthera leo", "lion")
    assert label_parts("zebra") is None and label_parts("bat-eared-fox") is None
