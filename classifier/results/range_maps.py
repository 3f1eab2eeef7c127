"""Where a class lives, on a map: the countries of its range (the species notes' `range.countries`) filled on
the country borders the library has (classifier/knowledge/geography.py), the photo's country outlined.

    found = range_map(entry.range, country="MOZ")
    st.altair_chart(found.chart); st.caption(found.caption)

The chart is an Altair (Vega-Lite) map drawn in the browser: no network, no tiles. Outlines are simplified
to the map's scale (a continent's map sends about 2,000 points).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import altair as alt

from classifier.knowledge.geography import country_box, country_outlines, country_table
from classifier.knowledge.species import Range

LIVES = "lives here"
ELSEWHERE = "not in its range"
COLOURS = {LIVES: "#5a9e4b", ELSEWHERE: "#e6e3dc"}
PHOTO_COLOUR = "#c2410c"
SEA = "#e3eef6"
WORLD = (-170.0, -56.0, 180.0, 78.0)
MIN_SPAN = 12.0  # degrees: a one-country range is still shown among its neighbours
POINTS_ACROSS = 250  # outlines are simplified to about this many steps across the map


@dataclass(frozen=True)
class RangeMap:
    chart: alt.LayerChart
    caption: str  # what the map shows, in words (also for a reader who cannot see it)
    lives_there: bool | None  # whether the photo's country is in the range; None without a country


def range_map(found: Range | None, country: str | None = None) -> RangeMap | None:
    """The map of a range (None without one), with `country` (alpha-3) outlined when given."""
    if found is None:
        return None
    table = country_table()
    codes = sorted(found.countries) if found.countries is not None else None
    here = country if country in table else None
    extent = _extent([*(codes or []), *([here] if here else [])]) if codes else WORLD
    shapes = _shapes(extent, codes)
    layers = [_sea(extent), _countries(shapes, extent)]
    if here is not None:
        layers.append(_photo_country(shapes, here, extent))
    lives = None if here is None else found.allows(here)
    return RangeMap(
        chart=alt.layer(*layers).properties(height=420, width="container"),
        caption=_caption(codes, here, lives),
        lives_there=lives,
    )


def _extent(codes: Sequence[str]) -> tuple[float, float, float, float]:
    """The box holding every country's mainland, padded, at least `MIN_SPAN` degrees each way."""
    boxes = [box for code in codes if (box := country_box(code)) is not None]
    if not boxes:
        return WORLD
    west, south = min(b[0] for b in boxes), min(b[1] for b in boxes)
    east, north = max(b[2] for b in boxes), max(b[3] for b in boxes)
    pad_x = max(0.08 * (east - west), (MIN_SPAN - (east - west)) / 2, 1.0)
    pad_y = max(0.08 * (north - south), (MIN_SPAN - (north - south)) / 2, 1.0)
    return max(west - pad_x, -180), max(south - pad_y, -90), min(east + pad_x, 180), min(north + pad_y, 90)


def _shapes(extent: tuple[float, float, float, float], codes: Sequence[str] | None) -> list[dict[str, Any]]:
    """One GeoJSON feature per outline in the extent, largest first (an enclave is drawn over its
    surroundings), each with its country's name and whether the class lives there."""
    table = country_table()
    tolerance = max(0.05, (extent[2] - extent[0]) / POINTS_ACROSS)
    living = set(codes) if codes is not None else set(table)
    rings = country_outlines(*extent, tolerance=tolerance)
    rings.sort(key=lambda item: -float((item[1].max(axis=0) - item[1].min(axis=0)).prod()))
    return [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring.round(3).tolist()]},
            "properties": {
                "code": code,
                "name": table[code].name if code in table else code,
                "where": LIVES if code in living else ELSEWHERE,
            },
        }
        for code, ring in rings
    ]


def _projection(extent: tuple[float, float, float, float]) -> dict[str, Any]:
    """Longitude and latitude as they are (a plain grid, north up), fitted to the extent."""
    west, south, east, north = extent
    box = {
        "type": "Feature",
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[west, south], [west, north], [east, north], [east, south], [west, south]]],
        },
        "properties": {},
    }
    return {"type": "identity", "reflectY": True, "fit": box}


def _sea(extent: tuple[float, float, float, float]) -> alt.Chart:
    box = _projection(extent)["fit"]
    return (
        alt.Chart(alt.Data(values=[box])).mark_geoshape(fill=SEA, stroke=None).project(**_projection(extent))
    )


def _countries(shapes: list[dict[str, Any]], extent: tuple[float, float, float, float]) -> alt.Chart:
    return (
        alt.Chart(alt.Data(values=shapes))
        .mark_geoshape(stroke="#ffffff", strokeWidth=0.5, clip=True)
        .encode(
            color=alt.Color(
                "properties.where:N",
                scale=alt.Scale(domain=list(COLOURS), range=list(COLOURS.values())),
                legend=alt.Legend(title=None, orient="bottom"),
            ),
            tooltip=[
                alt.Tooltip("properties.name:N", title="country"),
                alt.Tooltip("properties.where:N", title=""),
            ],
        )
        .project(**_projection(extent))
    )


def _photo_country(
    shapes: list[dict[str, Any]], code: str, extent: tuple[float, float, float, float]
) -> alt.Chart:
    mine = [shape for shape in shapes if shape["properties"]["code"] == code]
    return (
        alt.Chart(alt.Data(values=mine))
        .mark_geoshape(filled=False, stroke=PHOTO_COLOUR, strokeWidth=2.5, clip=True)
        .encode(tooltip=[alt.Tooltip("properties.name:N", title="your photo")])
        .project(**_projection(extent))
    )


def _caption(codes: Sequence[str] | None, here: str | None, lives: bool | None) -> str:
    if codes is None:
        said = "Found in every country: its notes set no range."
    else:
        said = f"Green: the {len(codes)} {'country' if len(codes) == 1 else 'countries'} of its range, where it lives wild."
    if here is None:
        return said + " Give the photo's country in the sidebar to see it on the map."
    place = country_table()[here].name
    if lives:
        return said + f" Outlined in orange: {place}, where the photo was taken, in its range."
    return (
        said
        + f" Outlined in orange: {place}, where the photo was taken: not in its range, so the model never "
        "gives this answer for a photo from there."
    )
