"""A season's figures as interactive Altair charts (the app's Season page); the files of
`classifier.results.season_files` hold the same numbers.

    st.altair_chart(activity_chart(season, ["Equus quagga", "Panthera leo"]))
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from classifier.knowledge.geography import outlines
from classifier.results.activity import HOURS
from classifier.results.season import Season
from classifier.results.season_files import label


def summary_table(season: Season) -> pd.DataFrame:
    """summary.csv as a table (rai empty where a deployment ran no time)."""
    return pd.DataFrame(
        season.summary, columns=["deploymentID", "scientificName", "events", "camera_days", "rai"]
    )


def activity_chart(season: Season, taxa: list[str]) -> alt.Chart:
    """Each taxon's activity density over the day (overlap::densityPlot), one line per taxon."""
    rows = [
        {"taxon": label(season, a.taxon), "hour": float(h), "density": float(d), "events": a.events}
        for a in season.activity
        if a.taxon in taxa
        for h, d in zip(HOURS, a.density, strict=True)
    ]
    basis = season.activity[0].basis if season.activity else "clock"
    title = "sun time (sunrise 06:00, sunset 18:00)" if basis == "sun" else "time of day (clock)"
    return (
        alt.Chart(pd.DataFrame(rows, columns=["taxon", "hour", "density", "events"]))
        .mark_line()
        .encode(
            x=alt.X(
                "hour:Q",
                title=title,
                scale=alt.Scale(domain=[0, 24]),
                axis=alt.Axis(values=list(range(0, 25, 3))),
            ),
            y=alt.Y("density:Q", title="activity density (per hour)"),
            color=alt.Color("taxon:N", title=None),
            tooltip=[
                "taxon",
                alt.Tooltip("hour:Q", format=".1f"),
                alt.Tooltip("density:Q", format=".3f"),
                "events",
            ],
        )
        .interactive(bind_y=False)
    )


def accumulation_chart(season: Season) -> alt.Chart:
    """Species expected against camera-days (exact rarefaction)."""
    table = pd.DataFrame([{"camera_days": 0, "species": 0.0}, *season.accumulation])
    return (
        alt.Chart(table)
        .mark_line(color="#2e7d32")
        .encode(
            x=alt.X("camera_days:Q", title="camera-days"),
            y=alt.Y("species:Q", title="species expected"),
            tooltip=["camera_days:Q", alt.Tooltip("species:Q", format=".2f")],
        )
    )


def occupancy_chart(season: Season) -> alt.Chart:
    """Naive occupancy per taxon: the share of deployments with an event."""
    table = pd.DataFrame(season.occupancy, columns=["scientificName", "deployments_detected", "deployments",
                                                    "naive_occupancy"])  # fmt: skip
    return (
        alt.Chart(table)
        .mark_bar()
        .encode(
            x=alt.X(
                "naive_occupancy:Q",
                title="share of deployments with an event",
                scale=alt.Scale(domain=[0, 1]),
            ),
            y=alt.Y("scientificName:N", title=None, sort="-x"),
            tooltip=["scientificName:N", "deployments_detected:Q", "deployments:Q"],
        )
    )


def map_chart(season: Season, taxon: str | None) -> alt.LayerChart | None:
    """The deployments on the country borders, sized by the events of `taxon`; None without positions."""
    placed = [s for s in season.data.sites if s.latitude is not None and s.longitude is not None]
    if not placed:
        return None
    counts = season.events_at(taxon) if taxon else {}
    points = pd.DataFrame(
        [{"deploymentID": s.deployment_id, "longitude": s.longitude, "latitude": s.latitude,
          "events": counts.get(s.deployment_id, 0), "camera_days": round(s.camera_days, 2)} for s in placed]
    )  # fmt: skip
    pad = max(0.05, 0.15 * max(np.ptp(points["longitude"]), np.ptp(points["latitude"])))
    west, east = points["longitude"].min() - pad, points["longitude"].max() + pad
    south, north = points["latitude"].min() - pad, points["latitude"].max() + pad
    lines = pd.DataFrame(
        [{"ring": i, "order": j, "longitude": x, "latitude": y}
         for i, ring in enumerate(outlines(west, south, east, north)) for j, (x, y) in enumerate(ring)]
    , columns=["ring", "order", "longitude", "latitude"])  # fmt: skip
    x = alt.X("longitude:Q", scale=alt.Scale(domain=[west, east], clamp=False), title="longitude")
    y = alt.Y("latitude:Q", scale=alt.Scale(domain=[south, north], clamp=False), title="latitude")
    borders = (
        alt.Chart(lines)
        .mark_line(color="#8a8a8a", strokeWidth=0.8, clip=True)
        .encode(x, y, detail="ring:N", order="order:Q")
    )
    sites = (
        alt.Chart(points)
        .mark_circle(color="#b3402a", opacity=0.7, stroke="#333333", strokeWidth=0.5, clip=True)
        .encode(
            x,
            y,
            size=alt.Size("events:Q", title=f"events of {taxon}" if taxon else "events", scale=alt.Scale(range=[20, 600])),
            tooltip=["deploymentID:N", "events:Q", "camera_days:Q", alt.Tooltip("latitude:Q", format=".4f"),
                     alt.Tooltip("longitude:Q", format=".4f")],
        )
    )  # fmt: skip
    return alt.layer(borders, sites).properties(height=480)
