"""Season: what a season's labels say about its animals: independent events, camera-days and relative
abundance, daily activity and its overlap between species, species accumulation, naive occupancy, a map.

From this session's review or batch (each folder and camera a deployment; a deployments CSV adds their
positions) or an uploaded Camtrap DP package. The figures are `classifier.results.season`'s, the same as
`python -m classifier season` writes (docs/season.md); this page only shows them and offers the files.
"""

from __future__ import annotations

import functools

import streamlit as st

from app_pages.common import species_taxa
from classifier.intake.camtrap_dp_package import CamtrapDPError, parse_camtrap_dp
from classifier.results.deployments import parse_deployments
from classifier.results.season import BOOTSTRAP_SAMPLES, DEFAULT_GAP_MINUTES, MIN_EVENTS, analyse
from classifier.results.season_charts import (
    accumulation_chart,
    activity_chart,
    map_chart,
    occupancy_chart,
    summary_table,
)
from classifier.results.season_files import default_map_taxon, label, season_zip
from classifier.results.season_input import SeasonError, from_package, from_records
from classifier.schema.predictions_file import ExportError
from classifier.schema.rows import labels_of

SESSION, PACKAGE = "This session's labels", "A Camtrap DP package"

st.title("A season's ecology")
st.write(
    "Independent events, camera-days and relative abundance (RAI) per deployment, when each species is "
    "active and how much two species overlap, how many species more camera-days would find, and where. "
    "The figures equal what R's camtrapR, camtraptor and overlap packages compute (see docs/season.md)."
)


def session_records() -> list:
    """The rows of this session's review (with its corrections), else of its batch."""
    review = st.session_state.get("review")
    if review is not None:
        return list(review.records)
    return list((st.session_state.get("batch_results") or {}).get("records") or [])


records = session_records()
source = st.radio(
    "Labels from", [SESSION, PACKAGE], index=0 if records else 1, horizontal=True, key="season_source"
)
upload = deployments_file = None
if source == PACKAGE:
    upload = st.file_uploader("Camtrap DP package (zip)", type=["zip"], key="season_package")
elif records:
    st.caption(f"{len(records)} photos labelled in this session. Each folder and camera is a deployment.")
    deployments_file = st.file_uploader(
        "Where each camera stood (optional): deployments CSV as for the Camtrap DP export", type=["csv"],
        key="season_deployments",
    )  # fmt: skip
else:
    st.info("Label photos on the batch page (and review them) first, or upload a Camtrap DP package.")
    st.stop()

left, middle, right = st.columns(3)
gap = left.number_input(
    "Minutes between independent events", min_value=0.0, max_value=24 * 60.0, value=DEFAULT_GAP_MINUTES,
    step=5.0, key="season_gap",
)  # fmt: skip
min_events = middle.number_input(
    "Events a species needs for its activity", min_value=2, max_value=1000, value=MIN_EVENTS, key="season_min"
)
samples = right.number_input(
    "Bootstrap samples per overlap", min_value=100, max_value=10_000, value=BOOTSTRAP_SAMPLES, step=100,
    key="season_bootstrap",
)  # fmt: skip

if st.button(
    "Analyse the season", type="primary", key="season_run", disabled=source == PACKAGE and upload is None
):
    try:
        with st.spinner("Counting events and fitting activity curves…"):
            if source == PACKAGE:
                data = from_package(parse_camtrap_dp(upload.getvalue(), name=upload.name))
            else:
                deployments = parse_deployments(deployments_file.getvalue(), name=deployments_file.name) if (
                    deployments_file) else None  # fmt: skip
                labels = labels_of(records)
                data = from_records(records, deployments, species_taxa(labels), source="this session")
            st.session_state["season_result"] = analyse(
                data, gap_minutes=float(gap), min_events=int(min_events), bootstrap=int(samples)
            )
    except (CamtrapDPError, SeasonError, ExportError) as error:
        st.error(str(error))
        st.stop()

season = st.session_state.get("season_result")
if season is None:
    st.stop()

for warning in season.warnings:
    st.warning(warning)
if season.data.problems:
    with st.expander(f"The package has {len(season.data.problems)} problems against the standard's schemas"):
        st.code("\n".join(str(p) for p in season.data.problems[:500]), language=None)

sites = season.data.sites
figures = [
    ("Deployments", len(sites)),
    ("Camera-days", f"{sum(s.camera_days for s in sites):,.1f}"),
    ("Independent events", len(season.events)),
    ("Taxa", len(season.taxa)),
]
for column, (name, value) in zip(st.columns(len(figures)), figures, strict=True):
    column.metric(name, value)

st.subheader("Events, camera-days and RAI")
st.caption(
    f"Events {season.gap_minutes:g} minutes apart or more are independent; RAI is events per 100 camera-days."
)
st.dataframe(summary_table(season), hide_index=True, width="stretch")

st.subheader("Activity")
with_curves = [a.taxon for a in season.activity]
if with_curves:
    shown = st.multiselect("Species", with_curves, default=with_curves[:3], format_func=functools.partial(label, season),
                           key="season_activity_taxa")  # fmt: skip
    st.altair_chart(activity_chart(season, shown), width="stretch")
else:
    st.caption(f"No species has {int(min_events)} events or more.")
if season.overlap:
    st.markdown("**Overlap** (Ridout & Linkie's Δ, 95% bootstrap interval)")
    st.dataframe(season.overlap, hide_index=True, width="stretch")

st.subheader("Species accumulation and occupancy")
left, right = st.columns(2)
left.altair_chart(accumulation_chart(season), width="stretch")
right.altair_chart(occupancy_chart(season), width="stretch")

st.subheader("Map")
taxon = None
if season.taxa:
    taxon = st.selectbox("Size the deployments by the events of", season.taxa,
                         index=season.taxa.index(default_map_taxon(season)), format_func=functools.partial(label, season),
                         key="season_map_taxon")  # fmt: skip
chart = map_chart(season, taxon)
if chart is None:
    st.caption(
        "The deployments have no positions: upload a deployments CSV with their latitude and longitude."
    )
else:
    st.altair_chart(chart, width="stretch")

st.download_button(
    "All figures (CSV and PNG, zip)",
    data=functools.partial(season_zip, season, map_taxon=taxon),
    file_name="season.zip",
    mime="application/zip",
    key="season_download",
    icon=":material/download:",
    on_click="ignore",
)
