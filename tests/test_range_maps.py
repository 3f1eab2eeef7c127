"""Range maps: the notes' countries filled on the library's borders, the photo's country outlined."""

from __future__ import annotations

import json

from classifier.knowledge.geography import country_box, country_outlines
from classifier.knowledge.species import Range, find_species_book
from classifier.results.range_maps import ELSEWHERE, LIVES, range_map

EAST_AFRICA = Range(countries=frozenset({"KEN", "TZA", "UGA"}), note="East Africa.")


def features(chart: dict, layer: int = 1) -> list[dict]:
    """The map's outlines: layer 0 is the sea, 1 the countries, 2 the photo's country."""
    return chart["layer"][layer]["data"]["values"]


def fitted_box(chart: dict) -> tuple[float, float, float, float]:
    ring = chart["layer"][0]["projection"]["fit"]["geometry"]["coordinates"][0]
    return ring[0][0], ring[0][1], ring[2][0], ring[2][1]


def test_the_range_is_filled_and_a_photo_from_outside_it_is_outlined_and_said() -> None:
    found = range_map(EAST_AFRICA, country="MOZ")
    chart = found.chart.to_dict()
    where = {f["properties"]["code"]: f["properties"]["where"] for f in features(chart)}
    assert {where[c] for c in ("KEN", "TZA", "UGA")} == {LIVES} and where["MOZ"] == ELSEWHERE
    assert {f["properties"]["code"] for f in features(chart, 2)} == {"MOZ"}  # the outline: its country only
    assert found.lives_there is False
    assert (
        "3 countries" in found.caption
        and "Mozambique" in found.caption
        and "not in its range" in found.caption
    )
    west, south, east, north = fitted_box(chart)
    for code in ("KEN", "TZA", "UGA", "MOZ"):  # every range country and the photo's are on the map
        box = country_box(code)
        assert west <= box[0] and south <= box[1] and box[2] <= east and box[3] <= north, code


def test_a_photo_from_inside_the_range_and_no_photo_at_all() -> None:
    inside = range_map(EAST_AFRICA, country="TZA")
    assert inside.lives_there is True and "Tanzania" in inside.caption and "in its range" in inside.caption
    nowhere = range_map(EAST_AFRICA)
    assert nowhere.lives_there is None and len(nowhere.chart.to_dict()["layer"]) == 2  # no outline
    assert "sidebar" in nowhere.caption


def test_a_class_found_everywhere_is_green_on_a_world_map_and_a_class_without_range_has_no_map() -> None:
    everywhere = range_map(Range(countries=None, note="Everywhere."), country="USA")
    assert {f["properties"]["where"] for f in features(everywhere.chart.to_dict())} == {LIVES}
    assert "every country" in everywhere.caption and everywhere.lives_there is True
    assert range_map(None) is None


def test_the_widest_serengeti_ranges_draw_light_maps() -> None:
    book = find_species_book("serengeti")
    for key in ("hare", "human", "leopard"):  # Africa and Eurasia; the world
        entry = book.get(key)
        found = range_map(entry.range, country="MOZ")
        assert found is not None, entry.key
        assert len(json.dumps(found.chart.to_dict())) < 150_000, entry.key  # sent to every visitor


def test_simplified_outlines_keep_every_country_and_its_mainland_box() -> None:
    full = {code for code, _ in country_outlines(28, -12, 41, -1)}
    simple = country_outlines(28, -12, 41, -1, tolerance=0.5)
    assert {code for code, _ in simple} == full  # a country's largest ring stays, however small
    assert (
        sum(len(ring) for _, ring in simple) < sum(len(r) for _, r in country_outlines(28, -12, 41, -1)) / 5
    )
    west, south, east, north = country_box("FRA")
    assert west > -6 and east < 10 and south > 41 and north < 52  # mainland France, not French Guiana
    assert country_box("XXX") is None
