"""Species notes: the validator refuses each kind of mistake with a one-line message naming file, class and
field, and every `species_info/*.yaml` in the repository loads and covers its model's classes."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier.knowledge.species import (
    IUCN_CATEGORIES,
    IUCN_COLOURS,
    THING,
    SpeciesInfoError,
    find_species_book,
    load_species_book,
)
from conftest import examples

ROOT = Path(__file__).resolve().parent.parent
SPECIES_DIR = ROOT / "species_info"

# The Snapshot Serengeti training folders, one per class.
SERENGETI = """
aardvark aardwolf baboon bat bat-eared-fox buffalo bushbuck caracal cattle cheetah civet dik-dik duiker eland
elephant gazelle-grants gazelle-thomsons genet giraffe guinea-fowl hare hartebeest hippopotamus honey-badger
human hyena-spotted hyena-striped impala insect-spider jackal kori-bustard leopard lion-female lion-male
mongoose ostrich other-bird porcupine reedbuck reptiles rhinoceros rodents secretary-bird serval steenbok topi
vervet-monkey vulture warthog waterbuck wildcat wildebeest zebra zorilla
""".split()  # noqa: SIM905 (54 names read better as text)
EXPECTED_CLASSES = {
    "habitat": ["buildings", "forest", "glacier", "mountain", "sea", "street"],
    "otters": ["river_otter", "sea_otter"],
    "serengeti": SERENGETI,
}

SOURCE = {"title": "Wikipedia, Plains zebra", "url": "https://en.wikipedia.org/wiki/Plains_zebra"}


def valid_book() -> dict:
    """A small file with one entry of each kind, which loads without error."""
    return {
        "bundle": "demo",
        "title": "Demo species",
        "taxa": {"Equidae": "horse family", "Mammalia": "mammal"},
        "rollup_thresholds": {"species": 0.3, "family": 0.6},
        "rollup_under": 0.25,
        "species": {
            "zebra": {
                "kind": "species",
                "common_name": "Plains zebra",
                "scientific_name": "Equus quagga",
                "iucn": "NT",
                "population_trend": "decreasing",
                "description": "A striped grazer.",
                "look_alikes": [{"species": "wildebeest", "how_to_tell": "Stripes."}],
                "habitat": "Savanna.",
                "diet": "Grass.",
                "threats": "Hunting.",
                "conservation": "Parks.",
                "taxonomy": {
                    "class": "Mammalia",
                    "order": "Perissodactyla",
                    "family": "Equidae",
                    "genus": "Equus",
                    "species": "Equus quagga",
                },
                "range": {"countries": ["KEN", "TZA"], "note": "East Africa."},
                "sources": [SOURCE],
            },
            "wildebeest": {
                "common_name": "Blue wildebeest",  # kind defaults to species
                "scientific_name": "Connochaetes taurinus",
                "iucn": "LC",
                "population_trend": "stable",
                "description": "A migrating antelope.",
                "habitat": "Savanna.",
                "diet": "Grass.",
                "threats": "Fences.",
                "conservation": "Corridors.",
                "taxonomy": {
                    "class": "Mammalia",
                    "order": "Artiodactyla",
                    "family": "Bovidae",
                    "genus": "Connochaetes",
                    "species": "Connochaetes taurinus",
                },
                "range": {"countries": ["KEN", "TZA", "ZAF"], "note": "East and southern Africa."},
                "sources": [SOURCE],
            },
            "rodents": {
                "kind": "group",
                "common_name": "Rodents",
                "scientific_name": "Rodentia",
                "description": "Gnawing mammals.",
                "habitat": "Everywhere.",
                "diet": "Seeds.",
                "threats": "Poison.",
                "conservation": "Varies.",
                "taxonomy": {"class": "Mammalia", "order": "Rodentia"},
                "range": {"countries": "all", "note": "Everywhere."},
                "sources": [SOURCE],
            },
            "forest": {
                "kind": "habitat",
                "common_name": "Forest",
                "description": "Trees.",
                "wildlife": "Most land species.",
                "threats": "Clearing.",
                "conservation": "Reserves.",
                "sources": [SOURCE],
            },
        },
    }


def write(tmp_path: Path, data: dict | str | bytes, name: str = "demo") -> Path:
    path = tmp_path / "species_info" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def refused(tmp_path: Path, data: dict | str | bytes, pattern: str, name: str = "demo") -> SpeciesInfoError:
    """Load `data` and assert it fails with a one-line message that starts with the file's name."""
    with pytest.raises(SpeciesInfoError, match=pattern) as info:
        load_species_book(write(tmp_path, data, name))
    message = str(info.value)
    assert message.startswith(f"species_info/{name}.yaml: ")
    assert len(message.splitlines()) == 1
    return info.value


def edit(change) -> dict:
    data = copy.deepcopy(valid_book())
    change(data["species"])
    return data


# ---- the valid file ---------------------------------------------------------------------------------


def test_valid_file_loads_every_kind(tmp_path):
    book = load_species_book(write(tmp_path, valid_book()))
    assert (book.bundle, book.title) == ("demo", "Demo species")
    assert list(book.entries) == ["zebra", "wildebeest", "rodents", "forest"]
    zebra = book.get("zebra")
    assert zebra.iucn_name == "Near Threatened"
    assert zebra.look_alikes[0].species == "wildebeest"
    assert zebra.sources[0].url == SOURCE["url"]
    assert book.get("wildebeest").kind == "species"
    assert book.get("rodents").iucn is None and book.get("rodents").iucn_name is None
    assert book.get("forest").wildlife == "Most land species."
    assert book.get("lion") is None
    assert (zebra.rank, zebra.taxon) == ("species", "Equus quagga")
    assert (
        zebra.range.countries == {"KEN", "TZA"}
        and zebra.range.allows("KEN")
        and not zebra.range.allows("USA")
    )
    rodents = book.get("rodents")
    assert (rodents.rank, rodents.taxon, rodents.range.countries) == ("order", "Rodentia", None)
    assert rodents.range.allows("USA")
    assert (book.get("forest").taxonomy, book.get("forest").range, book.get("forest").rank) == (
        (),
        None,
        None,
    )
    assert book.taxa == {"Equidae": "horse family", "Mammalia": "mammal"}
    assert book.rollup_thresholds == {"species": 0.3, "family": 0.6} and book.rollup_under == 0.25


def test_taxonomy_and_range_are_optional(tmp_path):
    def drop(species):
        for entry in species.values():
            entry.pop("taxonomy", None)
            entry.pop("range", None)

    data = edit(drop)
    del data["taxa"], data["rollup_thresholds"], data["rollup_under"]
    book = load_species_book(write(tmp_path, data))
    assert book.get("zebra").taxonomy == () and book.get("zebra").range is None
    assert (book.taxa, book.rollup_thresholds) == ({}, {})


def test_find_species_book(tmp_path):
    write(tmp_path, valid_book())
    assert find_species_book("demo", tmp_path / "species_info").bundle == "demo"
    assert find_species_book("absent", tmp_path / "species_info") is None
    with pytest.raises(SpeciesInfoError, match="not a bundle name"):
        find_species_book("../demo", tmp_path / "species_info")


# ---- one test per problem ----------------------------------------------------------------------------


def test_malformed_yaml_names_the_line(tmp_path):
    refused(tmp_path, "bundle: demo\ntitle: x\nspecies:\n  zebra: [unclosed\n", r"line \d+: invalid YAML")


def test_bad_scalar_names_the_line(tmp_path):
    # PyYAML itself raises a bare ValueError for an impossible date.
    refused(tmp_path, "bundle: demo\ntitle: 2001-13-01\n", r"line 2: invalid YAML: month must be")


def test_control_character_names_the_line(tmp_path):
    refused(tmp_path, "bundle: demo\ntitle: a\x07b\n", r"line 2: invalid YAML: control character U\+0007")


def test_duplicate_class_is_refused(tmp_path):
    text = "bundle: demo\ntitle: x\nspecies:\n  zebra: {}\n  zebra: {}\n"
    refused(tmp_path, text, r"line 5: invalid YAML: duplicate key 'zebra'")


def test_empty_file(tmp_path):
    refused(tmp_path, "", "is empty")
    refused(tmp_path, "# only a comment\n", "is empty")


def test_not_utf8(tmp_path):
    refused(tmp_path, "bundle: demo\ntitle: Z\xe8bre\n".encode("latin-1"), r"not valid UTF-8 .*0xe8")


def test_top_level_not_a_mapping(tmp_path):
    refused(tmp_path, "- zebra\n- lion\n", "must be a mapping with 'bundle'")


def test_wrong_bundle_name(tmp_path):
    data = valid_book() | {"bundle": "serengeti"}
    error = refused(tmp_path, data, r"'bundle' must be 'demo', the file's name .*got 'serengeti'")
    assert error.field == "bundle"


def test_missing_title(tmp_path):
    data = valid_book()
    del data["title"]
    refused(tmp_path, data, "'title' must be text")


def test_unknown_top_level_field(tmp_path):
    refused(tmp_path, valid_book() | {"version": 2}, "unknown top-level field 'version'")


def test_species_not_a_mapping(tmp_path):
    refused(tmp_path, valid_book() | {"species": ["zebra"]}, "'species' must be a mapping")


def test_entry_not_a_mapping(tmp_path):
    data = edit(lambda s: s.update(zebra="stripy"))
    refused(tmp_path, data, "demo.yaml: zebra: entry must be a mapping")


def test_missing_required_field(tmp_path):
    error = refused(tmp_path, edit(lambda s: s["zebra"].pop("diet")), "zebra: missing required field 'diet'")
    assert (error.species, error.field) == ("zebra", "diet")


def test_missing_field_of_habitat(tmp_path):
    refused(
        tmp_path, edit(lambda s: s["forest"].pop("wildlife")), "forest: missing required field 'wildlife'"
    )


def test_unknown_field(tmp_path):
    data = edit(lambda s: s["zebra"].update(colour="black and white"))
    error = refused(tmp_path, data, "zebra: unknown field 'colour'")
    assert error.field == "colour"


def test_bad_kind(tmp_path):
    refused(tmp_path, edit(lambda s: s["zebra"].update(kind="animal")), "zebra: 'kind' must be one of group")


def test_bad_iucn_code(tmp_path):
    data = edit(lambda s: s["zebra"].update(iucn="XX"))
    expected = "demo.yaml: zebra: 'iucn' must be one of CR, DD, EN, EW, EX, LC, NE, NT, VU (got 'XX')"
    refused(tmp_path, data, re.escape(expected))


def test_bad_trend(tmp_path):
    data = edit(lambda s: s["zebra"].update(population_trend="falling"))
    refused(
        tmp_path, data, "zebra: 'population_trend' must be one of decreasing, increasing, stable, unknown"
    )


def test_iucn_on_a_group(tmp_path):
    data = edit(lambda s: s["rodents"].update(iucn="LC"))
    refused(tmp_path, data, "rodents: 'iucn' does not belong on a group entry")


def test_scientific_name_on_a_habitat(tmp_path):
    data = edit(lambda s: s["forest"].update(scientific_name="Silva"))
    refused(tmp_path, data, "forest: 'scientific_name' does not belong on a habitat entry")


def test_empty_text(tmp_path):
    refused(tmp_path, edit(lambda s: s["zebra"].update(description="  ")), "zebra: 'description' must not be")


def test_number_where_text_expected(tmp_path):
    data = edit(lambda s: s["zebra"].update(common_name=1984))
    refused(tmp_path, data, "zebra: 'common_name' must be text .*quote it")


def test_look_alike_to_missing_class(tmp_path):
    data = edit(lambda s: s["zebra"]["look_alikes"][0].update(species="okapi"))
    refused(tmp_path, data, r"zebra: 'look_alikes\[0\].species' names 'okapi', which is not a class")


def test_look_alike_to_itself(tmp_path):
    data = edit(lambda s: s["zebra"]["look_alikes"][0].update(species="zebra"))
    refused(tmp_path, data, r"zebra: 'look_alikes\[0\].species' names the class itself")


def test_look_alike_without_how_to_tell(tmp_path):
    data = edit(lambda s: s["zebra"]["look_alikes"][0].pop("how_to_tell"))
    refused(tmp_path, data, r"zebra: 'look_alikes\[0\]' is missing 'how_to_tell'")


@pytest.mark.parametrize("count", [0, 4])
def test_source_count(tmp_path, count):
    data = edit(lambda s: s["zebra"].update(sources=[SOURCE] * count))
    refused(tmp_path, data, f"zebra: 'sources' must be a list of 1 to 3 sources \\(got {count} items\\)")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://en.wikipedia.org/wiki/Zebra", "must be an https:// URL"),
        ("en.wikipedia.org/wiki/Zebra", "must be an https:// URL"),
        ("https://localhost/zebra", "must name a host with a dot"),
        ("https:///wiki/Zebra", "must name a host with a dot"),
        ("https://en.wikipedia.org/wiki/Plains zebra", "must not contain spaces"),
        ("https://[en.wikipedia.org/wiki", "is not a well-formed URL"),
    ],
)
def test_bad_source_url(tmp_path, url, problem):
    data = edit(lambda s: s["zebra"].update(sources=[{"title": "Zebra", "url": url}]))
    refused(tmp_path, data, rf"zebra: 'sources\[0\].url' {problem}")


def test_source_with_unknown_field(tmp_path):
    data = edit(lambda s: s["zebra"].update(sources=[SOURCE | {"year": 2020}]))
    refused(tmp_path, data, r"zebra: 'sources\[0\]' has unknown field 'year'")


# ---- taxonomy: one test per problem ------------------------------------------------------------------


def set_taxonomy(key: str, **ranks: str):
    return lambda s: s[key].update(taxonomy=ranks)


def test_unknown_rank(tmp_path):
    data = edit(lambda s: s["zebra"]["taxonomy"].update(subfamily="Equinae"))
    error = refused(
        tmp_path, data, r"zebra: 'taxonomy' has unknown rank 'subfamily' \(ranks, top down: phylum, class"
    )
    assert error.field == "taxonomy"


def test_ranks_out_of_order(tmp_path):
    data = edit(set_taxonomy("rodents", **{"order": "Rodentia", "class": "Mammalia"}))
    refused(tmp_path, data, "rodents: 'taxonomy' must start at 'class'")
    data = edit(set_taxonomy("rodents", **{"class": "Mammalia", "family": "Muridae", "order": "Rodentia"}))
    error = refused(tmp_path, data, "rodents: 'taxonomy' ranks out of order: 'order' comes after 'family'")
    assert error.field == "taxonomy.order"


def test_rank_skipped(tmp_path):
    data = edit(set_taxonomy("rodents", **{"class": "Mammalia", "family": "Muridae"}))
    refused(tmp_path, data, "rodents: 'taxonomy' skips 'order' between 'class' and 'family'")


@pytest.mark.parametrize(
    ("rank", "name"), [("family", "equidae"), ("family", "Equi dae"), ("species", "quagga"), ("genus", 7)]
)
def test_taxon_not_a_scientific_name(tmp_path, rank, name):
    data = edit(lambda s: s["zebra"]["taxonomy"].update({rank: name}))
    refused(tmp_path, data, f"zebra: 'taxonomy.{rank}' must be ")


def test_species_outside_its_genus(tmp_path):
    data = edit(lambda s: s["zebra"]["taxonomy"].update(genus="Diceros"))
    refused(tmp_path, data, "zebra: 'taxonomy.species' 'Equus quagga' must begin with its genus 'Diceros'")


def test_species_entry_must_reach_species(tmp_path):
    data = edit(lambda s: s["zebra"]["taxonomy"].pop("species"))
    refused(tmp_path, data, "zebra: 'taxonomy' of a species entry must go down to 'species'")


def test_taxonomy_disagrees_with_scientific_name(tmp_path):
    data = edit(lambda s: s["zebra"].update(scientific_name="Equus zebra"))
    refused(
        tmp_path, data, "zebra: 'taxonomy.species' is 'Equus quagga' but 'scientific_name' is 'Equus zebra'"
    )


def test_taxonomy_on_a_habitat_is_refused(tmp_path):
    data = edit(set_taxonomy("forest", **{"class": "Magnoliopsida"}))
    refused(tmp_path, data, "forest: 'taxonomy' does not belong on a habitat entry")
    data = edit(lambda s: s["forest"].update(range={"countries": "all", "note": "x"}))
    refused(tmp_path, data, "forest: 'range' does not belong on a habitat entry")


def test_taxon_under_two_parents_is_refused_with_both_lines(tmp_path):
    # wildebeest says the Equus genus is a bovid: the tree would fork
    def fork(s):
        s["wildebeest"]["taxonomy"] = {
            "class": "Mammalia",
            "order": "Artiodactyla",
            "family": "Bovidae",
            "genus": "Equus",
            "species": "Equus taurinus",
        }
        s["wildebeest"]["scientific_name"] = "Equus taurinus"

    error = refused(
        tmp_path, edit(fork), r"wildebeest: 'taxonomy.genus' puts 'Equus' \(line \d+\) under 'Bovidae', "
    )
    assert re.search(r"but 'zebra' \(line \d+\) puts it under 'Equidae'; a taxon has one parent", str(error))
    assert error.field == "taxonomy.genus"


def test_taxon_at_two_ranks_is_refused(tmp_path):
    # "Rodentia" as an order in one class and a family in another would make the tree loop
    data = edit(
        set_taxonomy("wildebeest", **{"class": "Mammalia", "order": "Artiodactyla", "family": "Rodentia"})
    )
    data["species"]["wildebeest"]["kind"] = "group"
    for field_name in ("iucn", "population_trend", "scientific_name"):
        data["species"]["wildebeest"].pop(field_name)
    error = refused(
        tmp_path,
        data,
        r"rodents: 'taxonomy.order' names 'Rodentia' \(line \d+\) as an order, but 'wildebeest'",
    )
    assert "has it as a family; a taxon has one rank" in str(error)


def test_taxon_lines_are_the_ones_in_the_file(tmp_path):
    text = yaml.safe_dump(edit(lambda s: s["zebra"]["taxonomy"].update(family="Bovidae")), sort_keys=False)
    with pytest.raises(SpeciesInfoError) as info:
        load_species_book(write(tmp_path, text))
    lines = [int(n) for n in re.findall(r"\(line (\d+)\)", str(info.value))]
    assert "wildebeest: 'taxonomy.family' puts 'Bovidae'" in str(info.value) and len(lines) == 2
    assert [text.splitlines()[n - 1].strip() for n in lines] == ["family: Bovidae"] * 2


def test_same_top_taxon_with_and_without_phylum_agrees(tmp_path):
    data = edit(lambda s: s["rodents"]["taxonomy"].update({}))
    data["species"]["rodents"]["taxonomy"] = {"phylum": "Chordata", "class": "Mammalia", "order": "Rodentia"}
    assert load_species_book(write(tmp_path, data)).get("rodents").taxonomy[0] == ("phylum", "Chordata")


# ---- range: one test per problem ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codes", "problem"),
    [
        (
            ["KEN", "KNY"],
            r"'range.countries\[1\]' 'KNY' is not an ISO 3166-1 alpha-3 country code \(like KEN",
        ),
        (["ken"], r"'range.countries\[0\]' 'ken': write country codes in capitals \(KEN\)"),
        (["KE"], r"'range.countries\[0\]' 'KE' is an alpha-2 code; write its alpha-3 code KEN"),
        (["KEN", 404], r"'range.countries\[1\]' 404 is not an ISO 3166-1"),
        (["KEN", "TZA", "KEN"], r"'range.countries\[2\]' lists KEN twice"),
        ([], r"'range.countries' must be a list of ISO 3166-1 alpha-3 codes, or 'all'"),
        ("everywhere", r"'range.countries' must be a list .* \(got 'everywhere'\)"),
    ],
)
def test_bad_country_codes(tmp_path, codes, problem):
    data = edit(lambda s: s["zebra"]["range"].update(countries=codes))
    error = refused(tmp_path, data, f"zebra: {problem}")
    assert error.field.startswith("range.countries")


def test_range_needs_a_note_and_nothing_else(tmp_path):
    refused(tmp_path, edit(lambda s: s["zebra"]["range"].pop("note")), "zebra: 'range' is missing 'note'")
    data = edit(lambda s: s["zebra"]["range"].update(source="IUCN"))
    refused(tmp_path, data, "zebra: 'range' has unknown field 'source'")
    refused(tmp_path, edit(lambda s: s["zebra"].update(range=["KEN"])), "zebra: 'range' must be a mapping")


# ---- taxa and rollup thresholds ----------------------------------------------------------------------


def test_taxa_name_must_be_a_taxon_of_the_file(tmp_path):
    data = valid_book() | {"taxa": {"Equida": "horse family"}}
    error = refused(tmp_path, data, "'taxa' names 'Equida', which is no taxon of any class in this file")
    assert error.field == "taxa"
    refused(tmp_path, valid_book() | {"taxa": {"Equidae": 3}}, "'taxa.Equidae' must be text")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            {"phylum": 0.5},
            "'rollup_thresholds' has unknown rank 'phylum' \\(ranks: species, genus, family, order\\)",
        ),
        ({"class": 0.5}, "'rollup_thresholds.class': an answer at class rank is never sure; remove it"),
        ({"genus": "high"}, "'rollup_thresholds.genus' must be a number above 0 and at most 1"),
        ({"genus": 0}, "'rollup_thresholds.genus' must be a number above 0"),
        ({"genus": 1.5}, "'rollup_thresholds.genus' must be a number above 0"),
        ({"genus": True}, "'rollup_thresholds.genus' must be a number"),
        ([0.5], "'rollup_thresholds' must be a mapping of rank to a number"),
    ],
)
def test_bad_rollup_thresholds(tmp_path, value, problem):
    refused(tmp_path, valid_book() | {"rollup_thresholds": value}, problem)


@pytest.mark.parametrize("value", [0, 1.5, "often", True])
def test_bad_rollup_under(tmp_path, value):
    refused(tmp_path, valid_book() | {"rollup_under": value}, "'rollup_under' must be a number above 0")


def test_a_class_may_stand_for_a_broader_taxon(tmp_path):
    data = valid_book()
    data["species"]["zebra"]["represents"] = "Equus"
    zebra = load_species_book(write(tmp_path, data)).get("zebra")
    assert (zebra.rank, zebra.taxon, zebra.scientific_name) == ("genus", "Equus", "Equus quagga")
    assert zebra.lineage == zebra.taxonomy[:-1] and zebra.taxonomy[-1] == ("species", "Equus quagga")


@pytest.mark.parametrize(
    ("represents", "problem"),
    [
        (
            "Papio",
            "zebra: 'represents' must name a taxon of its own 'taxonomy' above the deepest \\(Mammalia,",
        ),
        ("Equus quagga", "must name a taxon of its own 'taxonomy' above the deepest"),
        (3, "'represents' must be text"),
    ],
)
def test_represents_names_a_taxon_of_its_own_lineage(tmp_path, represents, problem):
    data = valid_book()
    data["species"]["zebra"]["represents"] = represents
    refused(tmp_path, data, problem)


# ---- every message names the line to fix, and the field meant ------------------------------------------

LOOK = {"species": "wildebeest", "how_to_tell": "Stripes."}


@pytest.mark.parametrize(
    ("change", "problem", "line"),
    [
        (lambda s: s["zebra"].update(iucn="XX"), r"zebra: 'iucn' must be one of .* \(got 'XX'\)", "iucn: XX"),
        (lambda s: s["zebra"].update(colour="black"), "zebra: unknown field 'colour'", "colour: black"),
        (lambda s: s["zebra"].pop("diet"), "zebra: missing required field 'diet'", "zebra:"),
        (
            lambda s: s["zebra"]["range"].update(countries=["KEN", "KNY"]),
            r"zebra: 'range.countries\[1\]' 'KNY' is not",
            "- KNY",
        ),
        (
            lambda s: s["zebra"]["taxonomy"].update(subfamily="Equinae"),
            "zebra: 'taxonomy' has unknown rank 'subfamily'",
            "subfamily: Equinae",
        ),
        (
            lambda s: s["zebra"]["look_alikes"][0].update(species="okapi"),
            r"zebra: 'look_alikes\[0\].species' names 'okapi'",
            "- species: okapi",
        ),
        (
            lambda s: s["zebra"].update(look_alikes="wildebeest"),
            r"zebra: 'look_alikes' must be a list \(got 'wildebeest'\)",
            "look_alikes: wildebeest",
        ),
        (
            lambda s: s["zebra"].update(look_alikes=[dict(LOOK), dict(LOOK)]),
            r"zebra: 'look_alikes\[1\].species' names 'wildebeest' twice",
            "- species: wildebeest",
        ),
        (
            lambda s: s["zebra"].update(look_alikes=["wildebeest"]),
            r"'look_alikes\[0\]' must be a mapping with 'species' and 'how_to_tell' \(got 'wildebeest'\)",
            "- wildebeest",
        ),
        (
            lambda s: s["zebra"].update(taxonomy={}),
            r"zebra: 'taxonomy' must be a mapping of rank to scientific name \(got an empty mapping\)",
            "taxonomy: {}",
        ),
        (
            lambda s: s["zebra"].update(sources=[{"title": "Zebra"}]),
            r"zebra: 'sources\[0\]' is missing 'url'",
            "- title: Zebra",
        ),
        (
            lambda s: s.update({" lion ": s.pop("forest")}),
            r"demo.yaml: class names must be text without surrounding spaces \(got ' lion '\)",
            "' lion ':",
        ),
        (
            lambda s: s["rodents"].update(kind="unwritten"),
            r"rodents: 'description' does not belong on an unwritten entry \(only on kind: species or group or",
            "description: Gnawing mammals.",
        ),
    ],
)
def test_each_message_names_the_line_to_fix(tmp_path, change, problem, line):
    text = yaml.safe_dump(edit(change), sort_keys=False)
    error = refused(tmp_path, text, problem)
    assert str(error).endswith(f" (line {error.line})")
    assert text.splitlines()[error.line - 1].strip() == line


def test_missing_or_empty_species(tmp_path):
    data = valid_book()
    del data["species"]
    refused(tmp_path, data, r"'species' must be a mapping of class name to entry \(got None\)")
    refused(tmp_path, valid_book() | {"species": {}}, r"'species' must be .* \(got an empty mapping\)")


def test_a_misspelled_field_is_named_with_the_one_meant(tmp_path):
    """Not as the field it lacks: 'comon_name' is reported, with 'common_name' to write instead."""

    def misspell(species):
        species["zebra"]["comon_name"] = species["zebra"].pop("common_name")

    error = refused(
        tmp_path, edit(misspell), r"zebra: unknown field 'comon_name'; did you mean 'common_name'\?"
    )
    assert error.field == "comon_name"
    refused(
        tmp_path, valid_book() | {"titel": "x"}, r"unknown top-level field 'titel'; did you mean 'title'\?"
    )


def test_an_unwritten_class_needs_only_its_name(tmp_path):
    # what `python -m train` writes for a class a person added in a review (train/review.py)
    data = valid_book()
    data["species"]["okapi"] = {"kind": "unwritten", "common_name": "okapi"}
    okapi = load_species_book(write(tmp_path, data)).get("okapi")
    assert (okapi.kind, okapi.description, okapi.sources, okapi.look_alikes, okapi.range) == (
        "unwritten",
        "",
        (),
        (),
        None,
    )
    only = {
        "bundle": "demo",
        "title": "Demo",
        "species": {"okapi": {"kind": "unwritten", "common_name": "o"}},
    }
    assert load_species_book(write(tmp_path, only)).subject == THING


def test_unreadable_file(tmp_path):
    path = tmp_path / "species_info" / "demo.yaml"
    path.mkdir(parents=True)
    with pytest.raises(SpeciesInfoError, match=r"^species_info/demo.yaml: cannot be read \("):
        load_species_book(path)


# ---- searching the book ------------------------------------------------------------------------------


def test_search_matches_key_common_and_scientific_name(tmp_path):
    book = load_species_book(write(tmp_path, valid_book()))

    def keys(text: str) -> list[str]:
        return [e.key for e in book.search(text)]

    assert keys("ZEBRA") == ["zebra"]
    assert keys("blue wild") == ["wildebeest"]
    assert keys("connochaetes") == ["wildebeest"]
    assert keys("rodentia") == ["rodents"]
    assert keys("okapi") == []
    assert keys("") == ["zebra", "wildebeest", "rodents", "forest"]


def test_search_ignores_separators_and_apostrophes(tmp_path):
    data = valid_book()
    data["species"]["zebra"]["common_name"] = "Grant's zebra"
    data["species"]["bat-eared-fox"] = data["species"].pop("wildebeest")
    data["species"]["zebra"]["look_alikes"] = []
    book = load_species_book(write(tmp_path, data))
    assert [e.key for e in book.search("bat eared")] == ["bat-eared-fox"]
    assert [e.key for e in book.search("grants")] == ["zebra"]


def test_missing_lists_classes_without_an_entry(tmp_path):
    book = load_species_book(write(tmp_path, valid_book()))
    assert book.missing(["zebra", "lion", "forest", "okapi", "lion"]) == ["lion", "okapi"]
    assert book.missing(["zebra", "rodents"]) == []


def test_by_iucn(tmp_path):
    book = load_species_book(write(tmp_path, valid_book()))
    assert [e.key for e in book.by_iucn(["NT", "EN"])] == ["zebra"]
    assert [e.key for e in book.by_iucn("lc")] == ["wildebeest"]
    with pytest.raises(ValueError, match="unknown IUCN code"):
        book.by_iucn(["XX"])


def test_every_iucn_category_has_a_colour():
    assert IUCN_COLOURS.keys() == IUCN_CATEGORIES.keys()
    assert all(re.fullmatch(r"#[0-9a-f]{6}", colour) for colour in IUCN_COLOURS.values())


# ---- the repository's species notes -----------------------------------------------------------------

YAML_FILES = sorted(SPECIES_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", YAML_FILES, ids=[p.name for p in YAML_FILES])
def test_repository_file_loads(path):
    book = load_species_book(path)
    assert book.bundle == path.stem
    for entry in book.entries.values():
        assert all(a.species != entry.key for a in entry.look_alikes)


@pytest.mark.parametrize("bundle", sorted(EXPECTED_CLASSES))
def test_repository_file_has_expected_classes(bundle):
    if not (SPECIES_DIR / f"{bundle}.yaml").exists():
        pytest.skip(f"species_info/{bundle}.yaml not written yet")
    book = find_species_book(bundle, SPECIES_DIR)
    assert sorted(book.entries) == sorted(EXPECTED_CLASSES[bundle])


@pytest.mark.parametrize("bundle", ["serengeti", "otters"])
def test_every_animal_class_has_taxonomy_and_range(bundle):
    book = find_species_book(bundle, SPECIES_DIR)
    for entry in book.entries.values():
        assert entry.taxonomy and entry.range, entry.key
        assert entry.taxonomy[0][0] == "class" or entry.key == "insect-spider"
        assert len(entry.range.note) > 20
        if entry.scientific_name:
            assert entry.taxonomy[-1][1] == entry.scientific_name
    for name in book.taxa:
        assert any(name in dict(e.taxonomy).values() for e in book.entries.values())


def test_habitat_scenes_take_no_taxonomy_or_range():
    book = find_species_book("habitat", SPECIES_DIR)
    assert all(e.taxonomy == () and e.range is None for e in book.entries.values())


def test_everywhere_classes_and_rollup_thresholds_of_serengeti():
    book = find_species_book("serengeti", SPECIES_DIR)
    everywhere = {k for k, e in book.entries.items() if e.range.countries is None}
    assert everywhere == {"bat", "cattle", "human", "insect-spider", "other-bird", "reptiles", "rodents"}
    assert book.get("lion-male").taxonomy == book.get("lion-female").taxonomy
    assert book.get("jackal").taxon == "Canidae" and book.get("jackal").rank == "family"
    assert (
        book.get("zebra").range.countries >= {"KEN", "TZA"} and "USA" not in book.get("zebra").range.countries
    )
    assert book.taxa["Bovidae"] and book.taxa["Felidae"] == "cat"
    assert set(book.rollup_thresholds) <= {"genus", "family", "order"} and book.rollup_under is not None


def test_a_class_is_kept_where_the_taxon_it_stands_for_lives():
    """A camera-trap user's "baboon" is any baboon: Gorongosa's (Mozambique) are chacma and yellow baboons,
    not the field guide's olive baboon, and its reedbucks southern reedbucks."""
    book = find_species_book("serengeti", SPECIES_DIR)
    for name, taxon in {"baboon": "Papio", "reedbuck": "Redunca", "elephant": "Loxodonta"}.items():
        entry = book.get(name)
        assert (entry.taxon, entry.rank) == (taxon, "genus") and entry.range.allows("MOZ")
    assert book.get("elephant").range.allows("GAB")  # the forest elephant's
    assert not book.get("hyena-striped").range.allows("MOZ")


@pytest.mark.parametrize("bundle", sorted(p.stem for p in YAML_FILES))
def test_repository_file_covers_its_model(bundle):
    report = ROOT / "models" / bundle / "report.json"
    if not report.exists():
        pytest.skip(f"no models/{bundle}/report.json")
    classes = json.loads(report.read_text())["classes"]
    assert find_species_book(bundle, SPECIES_DIR).missing(classes) == []


def test_otter_facts():
    if not (SPECIES_DIR / "otters.yaml").exists():
        pytest.skip("species_info/otters.yaml absent")
    book = find_species_book("otters", SPECIES_DIR)
    sea, river = book.get("sea_otter"), book.get("river_otter")
    assert (sea.scientific_name, sea.iucn, sea.population_trend) == ("Enhydra lutris", "EN", "decreasing")
    assert (river.scientific_name, river.iucn) == ("Lontra canadensis", "LC")
    assert [a.species for a in sea.look_alikes] == ["river_otter"]
    assert [a.species for a in river.look_alikes] == ["sea_otter"]


# ---- anything at all is either notes or one SpeciesInfoError ----------------------------------------

YAML_CHARS = st.sampled_from([*"abz019 :-_?!&*|>'\"#%@`[]{},.\n\t", "species", "bundle: ", "  "])
VALID_TEXT = yaml.safe_dump(valid_book(), sort_keys=False)


@st.composite
def mutated_valid_text(draw) -> str:
    """The valid demo file with one slice replaced by random YAML-ish text, to reach the validator."""
    start = draw(st.integers(0, len(VALID_TEXT)))
    end = draw(st.integers(start, min(len(VALID_TEXT), start + 40)))
    return VALID_TEXT[:start] + draw(st.lists(YAML_CHARS, max_size=8).map("".join)) + VALID_TEXT[end:]


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(), st.lists(YAML_CHARS, max_size=40).map("".join), mutated_valid_text()))
def test_any_text_loads_or_raises_species_info_error(tmp_path_factory, text):
    path = tmp_path_factory.getbasetemp() / "species_info" / "demo.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    try:
        book = load_species_book(path)
    except SpeciesInfoError as error:
        assert len(str(error).splitlines()) == 1
    else:
        assert book.bundle == "demo"


def test_filter_classes_keeps_classes_without_notes_for_a_search_but_not_for_an_iucn_filter(tmp_path) -> None:
    from classifier.knowledge.species import filter_classes

    book = find_species_book("otters")
    classes = ["river_otter", "sea_otter", "mink"]
    assert filter_classes(classes, book) == classes
    assert filter_classes(classes, book, "otter") == ["river_otter", "sea_otter"]
    assert filter_classes(classes, book, "MINK") == ["mink"]
    assert filter_classes(classes, book, "", ["EN"]) == ["sea_otter"]
    assert filter_classes(classes, None, "sea") == ["sea_otter"]
    assert filter_classes(classes, None, "", ["LC"]) == []
