"""Batch-label photos: many files or a zip in, a table, counts per species and a CSV out.

The uploads stay saved for the session (`classifier.results.review.Photos`, a temporary folder removed with it),
so that "Review and correct" hands the batch's rows and photos to the review page.
"""

import uuid

import pandas as pd
import streamlit as st

from app_pages.common import PHOTO_UPLOAD_TYPES, require_bundle, require_predictor
from classifier.intake.images import thumbnail_data_url
from classifier.intake.inputs import close_archives, read_item
from classifier.results.review import Photos
from classifier.results.sequences import assign_sequences
from classifier.schema.rows import ANIMAL, BLANK, CSV_COLUMNS, ERROR, HUMAN, OK

TABLE_COLUMNS = [
    "thumbnail",
    "path",
    "label",
    "count",
    "confidence",
    "status",
    "observation_type",
    "error",
    "datetime",
    "sequence_id",
]

bundle = require_bundle()
st.title("Batch-label photos")
st.write(
    "Upload camera-trap photos (or a zip of them). Every photo gets a label; photos the model is not sure "
    "about, and files that are not readable photos, are set aside for review. Download the CSV for a "
    "spreadsheet or your camera-trap tools."
)
uploads = st.file_uploader(
    "Photos or a zip", type=PHOTO_UPLOAD_TYPES, accept_multiple_files=True, key="batch_uploads"
)
gap = st.number_input(
    "Photos taken within this many seconds by the same camera are one sequence",
    min_value=0,
    max_value=3600,
    value=60,
    key="batch_gap",
)


def label_uploads() -> dict:
    """Label the uploads: the table this page shows, and what the review page needs (rows and photos)."""
    predictor = require_predictor(bundle)
    progress = st.progress(0.0, text="Reading the files…")
    photos = Photos()  # the uploads, saved in one folder (loose photos then share sequences)
    expansion = photos.add((upload.name, upload.getvalue()) for upload in uploads)
    rows, thumbnails, total = [], [], len(expansion.items)
    # predict_many yields one row per item, in order, so the two can be walked together.
    for item, row in zip(expansion.items, predictor.predict_many(expansion.items), strict=True):
        rows.append(row)
        thumbnails.append(None if row.status == ERROR else thumbnail_data_url(read_item(item)))
        progress.progress(len(rows) / max(total, 1), text=f"Labelled {len(rows)} of {total} photos")
    close_archives()  # the thumbnails opened the uploaded zips on this thread
    for row in rows:
        row.path = photos.relative(row.path)  # what the user uploaded, not our temp folder
    progress.empty()
    assign_sequences(rows, float(gap))
    table = pd.DataFrame(
        [row.to_csv(sequence_label=True) for row in rows], columns=[*CSV_COLUMNS, "sequence_label"]
    )
    table["confidence"] = pd.to_numeric(table["confidence"])
    table.insert(0, "thumbnail", thumbnails)
    if expansion.skipped_total:
        st.info(f"Skipped {expansion.skipped_summary()}.")
    return {
        "model": bundle.name,
        "table": table,
        "records": list(rows),
        "photos": photos,
        "batch": uuid.uuid4().hex,  # tells one batch from the next, for the review page
    }


if uploads and st.button(f"Label {len(uploads)} file(s)", type="primary"):
    st.session_state["batch_results"] = label_uploads()

results = st.session_state.get("batch_results")
if not results or results["model"] != bundle.name:
    st.stop()
table = results["table"]
needs_review = table["status"] != OK
kinds = table["observation_type"]

detected = bool(kinds.isin([ANIMAL, BLANK, HUMAN]).any())  # the model finds animals first
figures = [("Photos", len(table), None), ("Labelled", int((~needs_review).sum()), None)]
if detected:
    figures += [
        ("With animals", int((kinds == ANIMAL).sum()), None),
        ("Blank", int((kinds == BLANK).sum()), "The animal detector found nothing in them."),
        ("With people", int((kinds == HUMAN).sum()), None),
    ]
figures.append(
    ("Needs review", int(needs_review.sum()), "Not sure, unreadable, or blank in a burst of animals.")
)
for column, (name, value, note) in zip(st.columns(len(figures)), figures, strict=True):
    column.metric(name, value, help=note)


def open_review() -> None:
    """Hand the batch's rows and photos to the review page (a review of this batch goes on as it was)."""
    review = st.session_state.get("review")
    if review is None or getattr(review, "origin", None) != ("batch", results["batch"]):
        st.session_state["review_handover"] = {
            "records": results["records"],
            "photos": results["photos"],
            "classes": bundle.classes,
            "source": f"labels-{bundle.name}.csv",
            "origin": ("batch", results["batch"]),
        }


if st.button(
    "Review and correct",
    key="batch_review",
    icon=":material/fact_check:",
    help="Go through the photos that need a person (not sure, unreadable, blank in a burst of animals, "
    "and a few sure ones as spot checks), relabel them with a click or a key, and export.",
):
    open_review()
    st.switch_page("app_pages/review.py")

st.subheader("Photos per species")
per_species = (
    table.loc[~needs_review & (kinds != BLANK), "label"]
    .value_counts()
    .rename_axis("species")
    .reset_index(name="photos")
)
if per_species.empty:
    st.caption("No photo was labelled with confidence.")
else:
    st.bar_chart(per_species, x="species", y="photos", horizontal=True)

review_only = st.toggle(
    "Show only photos that need review (not sure, or unreadable)", key="batch_review_only"
)
with_blanks = st.toggle(
    "Show blank frames too",
    key="batch_blanks",
    help="Frames the detector found empty are left out of the table unless a sequence of animals "
    "makes them worth a look (those are marked 'uncertain').",
)
shown = table[needs_review] if review_only else table
if not with_blanks:
    shown = shown[(shown["observation_type"] != BLANK) | (shown["status"] != OK)]
st.dataframe(
    shown[TABLE_COLUMNS],
    hide_index=True,
    width="stretch",
    column_config={
        "thumbnail": st.column_config.ImageColumn("photo"),
        "confidence": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="percent"),
    },
)
st.download_button(
    "Download CSV",
    table[[*CSV_COLUMNS, "sequence_label"]].to_csv(index=False),
    file_name=f"labels-{bundle.name}.csv",
    mime="text/csv",
)
