"""Review and correct: the photos a person should look at, relabelled with a click or a key, then exported.

Reached from the batch page ("Review and correct" hands the batch's rows and photos over in session
state), or on its own: upload a predictions CSV or JSON (this page's, the batch page's or
`python -m classifier predict`'s) and the same photos, and the review goes on where it stopped. The queue,
corrections, undo, photos and exports are `classifier.results.review`'s; this page only shows them.

Keys (Streamlit's button shortcuts; none fires while the cursor is in a text box): 1-5 the model's
guesses for the open photo, A keep its label, B blank, U unknown, S whole sequence on or off, N next,
P previous, Z undo. Tab moves between the buttons; Enter or Space presses the focused one.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from app_pages.common import (
    PHOTO_UPLOAD_TYPES,
    current_bundle,
    species_taxa,
    teacher_for,
    working_bundles,
)
from classifier.intake.inputs import close_archives
from classifier.results.deployments import parse_deployments
from classifier.results.review import (
    BLANK_IN_SEQUENCE,
    BLANK_LABEL,
    DEFAULT_REVIEWER,
    NOT_SURE,
    REVIEWED,
    SPOT_CHECK,
    SPOT_CHECK_SHARE,
    UNKNOWN_LABEL,
    UNREADABLE,
    Photos,
    Review,
    ReviewError,
    camtrap_dp_zip,
    csv_text,
    deployments_from_table,
    megadetector_text,
)
from classifier.results.taxa import Taxon
from classifier.schema.predictions_file import ExportError
from classifier.schema.rows import ERROR, Row, labels_of

if TYPE_CHECKING:  # torch comes with them, once a model is needed
    from classifier.results.teaching import Taught, Teacher


PAGE_SIZE = 12  # photos a page of the queue shows: a 10,000-row file renders as fast as a small one
PER_ROW = 4
GUESSES = 5  # the model's guesses offered as buttons 1-5
MAX_PILLS = 80  # more labels than this are offered in a drop-down list instead
SHARES = {0.0: "none", SPOT_CHECK_SHARE: "5% (default)", 0.1: "10%", 0.25: "25%", 1.0: "all"}
SHOW = ("to review", "reviewed", "all")
KEYS = (
    "Keys: **1-5** the model's guesses · **A** keep the label · **B** blank · **U** unknown · "
    "**S** whole sequence on/off · **N** next · **P** previous · **Z** undo · **Tab** moves between "
    "buttons, **Enter** presses one · in *Another label*, type and press Enter."
)


def markdown_text(text: str) -> str:
    """`text` shown as it is where Streamlit reads Markdown (a label may hold * _ [ ] and the like)."""
    return re.sub(r"([\\`*_\[\]<>#|~$:])", r"\\\1", text)


def reviewer() -> str:
    return (st.session_state.get("review_reviewer") or "").strip() or DEFAULT_REVIEWER


def remember_reviewer() -> None:
    st.session_state["reviewer_name"] = st.session_state.get("review_reviewer", "")


def start(review: Review) -> None:
    """Make `review` the page's, open at its first photo still to review."""
    st.session_state["review"] = review
    st.session_state["review_model"] = review.model_name  # a retrain's answers name another
    st.session_state.pop("review_teach", None)
    st.session_state["review_serial"] = st.session_state.get("review_serial", 0) + 1
    st.session_state["review_cursor"] = first_open(review)
    st.session_state["review_whole_sequence"] = False
    for key in ("review_camtrap", "review_grid_page", "review_share", "review_blanks"):
        st.session_state.pop(key, None)


def first_open(review: Review) -> int | None:
    index = review.next_to_review()
    return index if index is not None else (review.queue[0] if review.queue else None)


def model_classes(review: Review) -> tuple[str, ...]:
    """The classes of the model that labelled the file (its rows name it), else of the picked model when
    the file uses them; a file from an unknown model offers the labels it holds."""
    bundles = working_bundles()
    named = next((b for b in bundles if b.name == review.model_name), None)
    if named is not None:
        return named.classes
    bundle = current_bundle()
    labels = {r.label for r in review.records} | {k for r in review.records for k, _ in r.top_k}
    return bundle.classes if bundle is not None and labels & set(bundle.classes) else ()


def load(saved: UploadedFile, photo_files: list[UploadedFile], before: Review | None) -> None:
    """Continue the saved review: its rows, with the uploaded photos (else those of the review before)."""
    try:
        review = Review.from_file(saved.getvalue(), name=saved.name)
    except ExportError as error:
        st.error(str(error))
        return
    if photo_files:
        review.photos = Photos()
        expansion = review.photos.add((f.name, f.getvalue()) for f in photo_files)
        if expansion.skipped_total:
            st.info(f"Skipped {expansion.skipped_summary()}.")
    elif before is not None:
        review.photos = before.photos  # the photos already here (a batch's) serve the saved file too
    review.classes = model_classes(review)
    start(review)


# ---------------------------------------------------------------------------------------------- actions


def relabel(index: int, label: str) -> None:
    review: Review = st.session_state["review"]
    whole = bool(st.session_state.get("review_whole_sequence"))
    try:
        changed = review.relabel(index, label, by=reviewer(), whole_sequence=whole)
    except ReviewError as error:
        st.session_state["review_problem"] = str(error)
        return
    following = review.next_to_review(max(changed))
    st.session_state["review_cursor"] = index if following is None else following
    st.session_state["review_whole_sequence"] = False


def pick(key: str, index: int) -> None:
    label = st.session_state.get(key)
    if label:
        relabel(index, label)


def typed(index: int) -> None:
    relabel(index, st.session_state.get("review_typed", ""))


def undo() -> None:
    changed = st.session_state["review"].undo()
    if changed:
        st.session_state["review_cursor"] = changed[0]
        st.session_state["review_note"] = f"Undone: {len(changed)} photo(s) back as they were."


def go(index: int | None) -> None:
    if index is not None:
        st.session_state["review_cursor"] = index
        st.session_state["review_whole_sequence"] = False


def flip_sequence() -> None:
    st.session_state["review_whole_sequence"] = not st.session_state.get("review_whole_sequence")


def teach_order(teacher: Teacher) -> None:
    review: Review = st.session_state["review"]
    review.teach_first(teacher.order(review) if st.session_state.get("review_teach") else None)
    st.session_state["review_cursor"] = first_open(review)


def retrain(teacher: Teacher) -> None:
    review: Review = st.session_state["review"]
    try:
        taught = teacher.retrain(review)
    except ReviewError as error:
        st.session_state["review_problem"] = str(error)
        return
    st.session_state["review_taught"] = taught


def taught_words(taught: Taught) -> str:
    """What a retrain did, in a line or two."""
    new = f" (new: {', '.join(taught.new_classes)})" if taught.new_classes else ""
    words = (
        f"Retrained on the {taught.photos} photos you labelled{new} in {taught.seconds:.1f} s. The "
        f"{taught.answered} photos not reviewed yet have the new model's answers: {taught.changed} changed."
    )
    if taught.estimate is not None:
        words += (
            f" Estimated right: {taught.estimate:.0%} of the {taught.estimated_on} photos you labelled, each "
            "answered by a model fitted without it"
        )
        words += (
            f"; {taught.spot_checked:.0%} of the {taught.spot_checks} spot checks (drawn at random, so the "
            "best guess for the rest)."
            if taught.spot_checked is not None
            else "; spot-check more sure answers for an estimate that holds for the rest."
        )
    return words


# ---------------------------------------------------------------------------------------------- the page

st.title("Review and correct")
handover = st.session_state.pop("review_handover", None)
if handover is not None:
    start(
        Review(
            handover["records"],
            handover["photos"],
            classes=handover["classes"],
            source=handover["source"],
            origin=handover["origin"],
        )
    )
review: Review | None = st.session_state.get("review")

with st.expander("Continue a saved review", expanded=review is None, icon=":material/upload_file:"):
    st.caption(
        "Upload the CSV (or JSON) that this page, the batch page or `python -m classifier predict` wrote, "
        "and the same photos (files or zips). Each row finds its photo by its path; reviewed rows stay "
        "reviewed and the review opens at the first photo still to review."
    )
    saved = st.file_uploader("The saved CSV or JSON", type=["csv", "json"], key="review_file")
    photo_files = st.file_uploader(
        "Its photos (files or zips)", type=PHOTO_UPLOAD_TYPES, accept_multiple_files=True, key="review_photos"
    )
    if st.button("Load and continue", key="review_load", disabled=saved is None, type="primary"):
        load(saved, photo_files, review)
        review = st.session_state.get("review")

if review is None:
    st.info(
        "Label photos on the batch page and press **Review and correct**, or continue a saved review above."
    )
    st.stop()

if "review_reviewer" not in st.session_state:
    st.session_state["review_reviewer"] = st.session_state.get("reviewer_name", DEFAULT_REVIEWER)
st.session_state.setdefault("review_share", review.share if review.share in SHARES else SPOT_CHECK_SHARE)
st.session_state.setdefault("review_blanks", review.include_blanks)
name_column, share_column, blanks_column = st.columns([2, 1, 1], vertical_alignment="bottom")
name_column.text_input(
    "Your name, saved with each correction",
    key="review_reviewer",
    max_chars=80,
    on_change=remember_reviewer,
)
share_column.selectbox(
    "Spot checks of sure answers",
    list(SHARES),
    format_func=SHARES.get,
    key="review_share",
    help="A share of the answers the model was sure of, drawn by a hash of each photo's path: the same "
    "photos every time, also after a saved review is loaded again.",
)
blanks_column.toggle(
    "Blank frames too",
    key="review_blanks",
    help="Frames the detector found empty are left out unless asked for (a blank frame in a sequence of "
    "animals is always in: it is marked not sure).",
)
review.set_options(share=st.session_state["review_share"], include_blanks=st.session_state["review_blanks"])

teaching_bundle = next((b for b in working_bundles() if b.name == st.session_state.get("review_model")), None)
teacher = teacher_for(teaching_bundle) if teaching_bundle is not None else None
if teacher is not None:
    teach_column, retrain_column = st.columns([2, 1], vertical_alignment="bottom")
    teach_column.toggle(
        "Teach the model: the photos it learns most from first",
        key="review_teach",
        on_change=teach_order,
        args=(teacher,),
        help="One photo a sequence, the most typical first, then each time the photo least like those "
        "before it: a few of them teach a retrained model most (docs/learning_loop.md).",
    )
    retrain_column.button(
        "Retrain on my corrections",
        key="review_retrain",
        on_click=retrain,
        args=(teacher,),
        disabled=not any(r.reviewed for r in review.records),
        help="Fit the model to the photos you labelled (seconds) and answer the photos not reviewed yet "
        "again. Undo (Z) takes it back.",
        width="stretch",
    )
    if taught := st.session_state.pop("review_taught", None):
        st.success(taught_words(taught), icon=":material/model_training:")

queue = review.queue
done, total = review.progress()
st.progress(done / total if total else 1.0, text=f"{done} of {total} reviewed")
reasons = review.reasons()
parts = [
    f"{reasons[reason]} {words}"
    for reason, words in (
        (NOT_SURE, "not sure"),
        (UNREADABLE, "unreadable"),
        (BLANK_IN_SEQUENCE, "blank in a sequence of animals"),
        (SPOT_CHECK, "spot checks"),
        ("blank", "blank"),
        (REVIEWED, "corrected outside these"),
    )
    if reasons[reason]
]
source = f" from {review.source}" if review.source else ""
st.caption(
    f"{len(review.records):,} photos{markdown_text(source)}; in the queue: {', '.join(parts) or 'none'}."
)
if note := st.session_state.pop("review_note", None):
    st.toast(note)

cursor = st.session_state.get("review_cursor")
if cursor is None or not 0 <= cursor < len(review.records):
    cursor = first_open(review)
    st.session_state["review_cursor"] = cursor

if cursor is None:
    st.success("Nothing here needs a person: no photo is unsure or unreadable. Export below.")
else:
    record = review.records[cursor]
    sequence = review.sequence(cursor)
    whole = bool(st.session_state.get("review_whole_sequence")) and len(sequence) > 1
    picture_column, answer_column = st.columns([3, 2], gap="large")
    with picture_column:
        if review.photos is None:
            st.info(
                "No photos were given: upload them with the saved file to see them. You can still relabel."
            )
        else:
            picture, why = review.photos.picture(record, 720)
            if picture:
                st.image(picture, caption=record.path, width="stretch")
            else:
                st.warning(f"Photo missing: {why}", icon=":material/hide_image:")
                st.caption(record.path)
            if len(sequence) > 1:
                strip = [(review.photos.picture(review.records[i], 200)[0], i) for i in sequence[:8]]
                shown = [(data, i) for data, i in strip if data]
                if shown:
                    st.image(
                        [data for data, _ in shown],
                        caption=[("▶ " if i == cursor else "") + review.records[i].label for _, i in shown],
                        width=120,
                    )
    with answer_column:
        position = (
            f"{queue.index(cursor) + 1} of {len(queue)} in the queue" if cursor in queue else "not queued"
        )
        st.subheader(markdown_text(record.label or "no label"))
        st.caption(f"{position} · {review.reason(cursor) or 'sure'} · {markdown_text(record.path)}")
        if record.status == ERROR:
            st.error(record.error or "The photo could not be read.")
        elif record.confidence is not None and not record.reviewed:
            st.caption(f"The model's answer, {record.confidence:.0%} sure ({record.status}).")
        if record.reviewed:
            when = record.classified_at.strftime("%Y-%m-%d %H:%M") if record.classified_at else ""
            st.success(f"Reviewed by {markdown_text(record.classified_by)} {when}".strip())
        guesses = list(record.top_k[:GUESSES])
        if not guesses and record.label and record.status != ERROR:
            guesses = [(record.label, record.confidence)]
        for number, (label, p) in enumerate(guesses, start=1):
            st.button(
                markdown_text(label) + ("" if p is None else f" · {p:.0%}"),
                key=f"review_guess_{number}",
                shortcut=str(number),
                on_click=relabel,
                args=(cursor, label),
                width="stretch",
            )
        keep, blank, unknown = st.columns(3)
        keep.button(
            "Keep",
            key="review_keep",
            shortcut="A",
            on_click=relabel,
            args=(cursor, record.label),
            disabled=not record.label,
            help="The label is right: mark it reviewed.",
            width="stretch",
        )
        blank.button(
            "Blank",
            key="review_blank",
            shortcut="B",
            on_click=relabel,
            args=(cursor, BLANK_LABEL),
            width="stretch",
        )
        unknown.button(
            "Unknown",
            key="review_unknown",
            shortcut="U",
            on_click=relabel,
            args=(cursor, UNKNOWN_LABEL),
            width="stretch",
        )
        st.button(
            f"Whole sequence ({len(sequence)} photos): {'on' if whole else 'off'}",
            key="review_sequence",
            shortcut="S",
            on_click=flip_sequence,
            disabled=len(sequence) < 2,
            type="primary" if whole else "secondary",
            help="When on, the next label goes to every photo of this sequence (one undo takes it back).",
            width="stretch",
        )
        labels = review.labels()
        pick_key = f"review_pick_{cursor}_{review.version}"
        if len(labels) <= MAX_PILLS:
            st.pills(
                "Any label",
                labels,
                key=pick_key,
                on_change=pick,
                args=(pick_key, cursor),
                format_func=markdown_text,
            )
        else:
            st.selectbox(
                "Any label",
                labels,
                index=None,
                key=pick_key,
                on_change=pick,
                args=(pick_key, cursor),
                placeholder="Type to search the labels",
            )
        with st.form("review_new_label", clear_on_submit=True, border=False):
            st.text_input(
                "Another label",
                key="review_typed",
                placeholder="a name the model does not know",
                max_chars=100,
            )
            st.form_submit_button("Use this label", on_click=typed, args=(cursor,))
        if problem := st.session_state.pop("review_problem", None):
            st.error(problem)
        back, forward, take_back = st.columns(3)
        back.button(
            "Previous",
            key="review_previous",
            shortcut="P",
            on_click=go,
            args=(review.neighbour(cursor, -1),),
            width="stretch",
        )
        forward.button(
            "Next",
            key="review_next",
            shortcut="N",
            on_click=go,
            args=(review.neighbour(cursor, 1),),
            width="stretch",
        )
        take_back.button(
            "Undo",
            key="review_undo",
            shortcut="Z",
            on_click=undo,
            disabled=not review.can_undo,
            width="stretch",
        )
        st.caption(KEYS)

# -------------------------------------------------------------------------------------------- the queue

st.subheader("The queue")
show = st.segmented_control("Show", SHOW, default=SHOW[0], key="review_show", required=True)
if show == "to review":
    listed = [i for i in queue if not review.records[i].reviewed]
elif show == "reviewed":
    listed = [i for i in queue if review.records[i].reviewed]
else:
    listed = queue
pages = max(1, math.ceil(len(listed) / PAGE_SIZE))
if st.session_state.get("review_grid_page", 1) > pages:
    st.session_state["review_grid_page"] = pages
page = st.pagination(pages, key="review_grid_page") if pages > 1 else 1
shown = listed[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
if not shown:
    st.caption("No photo here.")
for start_at in range(0, len(shown), PER_ROW):
    for column, index in zip(st.columns(PER_ROW), shown[start_at : start_at + PER_ROW], strict=False):
        with column:
            row = review.records[index]
            picture, why = review.photos.picture(row, 240) if review.photos else (None, "no photos given")
            if picture:
                st.image(picture, width="stretch")
            else:
                st.caption(f"Photo missing: {why}")
            mark = "✓ " if row.reviewed else ""
            st.caption(
                f"{mark}**{markdown_text(row.label or 'no label')}** · {review.reason(index)}  \n"
                f"{markdown_text(row.path)}"
            )
            st.button(
                "Open" if index != cursor else "Open above",
                key=f"review_open_{index}",
                on_click=go,
                args=(index,),
                disabled=index == cursor,
            )

# ----------------------------------------------------------------------------------------------- export

st.subheader("Save and export")
st.caption(
    "The CSV is the review itself: download it to stop, and upload it with the photos (above) to go on. "
    "Corrected rows say who labelled them: `classification_method` human, `classified_by`, "
    "`classified_at`."
)
stem = re.sub(r"-reviewed$", "", PurePosixPath(review.source or "labels.csv").stem) or "labels"
records = list(review.records)  # what the downloads hold: the rows as they are now


def taxa_for(rows: list[Row]) -> dict[str, Taxon]:
    return species_taxa(labels_of(rows))


def megadetector_file(rows: list[Row]) -> str:
    return megadetector_text(rows, taxa_for(rows))[0]


csv_column, megadetector_column = st.columns(2)
csv_column.download_button(
    "CSV with the corrections",
    data=functools.partial(csv_text, records),  # made when clicked: no cost to every run of the page
    file_name=f"{stem}-reviewed.csv",
    mime="text/csv",
    key="review_download_csv",
    icon=":material/download:",
    on_click="ignore",
    type="primary",
)
megadetector_column.download_button(
    "MegaDetector batch JSON (1.6)",
    data=functools.partial(megadetector_file, records),
    file_name=f"{stem}.megadetector.json",
    mime="application/json",
    key="review_download_megadetector",
    icon=":material/download:",
    on_click="ignore",
)
if any(r.status != ERROR and r.whole_frame for r in records[:1000]):
    megadetector_column.caption(
        "Photos classified whole (no detector box) have empty `detections` and an image-level "
        "`classifications` list: tools that read only boxes (Timelapse) show them as empty."
    )

with st.expander(
    "Camtrap DP 1.0 package", icon=":material/inventory_2:", key="review_camtrap_open", on_change="rerun"
) as camtrap:
    if camtrap.open:
        st.caption(
            "For GBIF, camtrapR and friends. A package needs where each camera stood: type the coordinates "
            "of each folder and camera of the photos, or upload a deployments CSV "
            "(`deploymentID,latitude,longitude,folder[,camera,locationName,timezone,...]`)."
        )
        way = st.radio(
            "Deployments", ["Type them here", "Upload a CSV"], horizontal=True, key="review_deployments_from"
        )
        deployments = None
        try:
            if way == "Upload a CSV":
                upload = st.file_uploader("Deployments CSV", type=["csv"], key="review_deployments_file")
                if upload is not None:
                    deployments = parse_deployments(upload.getvalue(), name=upload.name)
            else:
                groups = pd.DataFrame(review.deployment_table())
                groups[["latitude", "longitude"]] = groups[["latitude", "longitude"]].astype(float)
                table = st.data_editor(
                    groups,
                    key=f"review_deployments_{st.session_state.get('review_serial', 0)}",
                    hide_index=True,
                    disabled=["folder", "camera", "photos"],
                    column_config={
                        "latitude": st.column_config.NumberColumn(min_value=-90, max_value=90, format="%.6f"),
                        "longitude": st.column_config.NumberColumn(
                            min_value=-180, max_value=180, format="%.6f"
                        ),
                        "timezone": st.column_config.TextColumn(help="+03:00, Z or Africa/Nairobi"),
                    },
                )
                if table[["latitude", "longitude"]].notna().all(axis=None):
                    deployments = deployments_from_table(table.to_dict("records"))
                else:
                    st.caption("Give every row a latitude and a longitude (decimal degrees, WGS84).")
        except ExportError as error:
            st.error(str(error))
        if deployments and st.button("Make the package", key="review_make_camtrap"):
            try:
                data, warnings = camtrap_dp_zip(records, deployments, taxa_for(records))
            except ExportError as error:
                st.error(str(error))
            else:
                st.session_state["review_camtrap"] = (review.version, deployments, data, warnings)
        prepared = st.session_state.get("review_camtrap")
        if prepared and prepared[0] == review.version and prepared[1] == deployments:
            for warning in prepared[3]:
                st.warning(warning)
            st.download_button(
                "Camtrap DP 1.0 zip",
                data=prepared[2],
                file_name=f"{stem}.camtrap-dp.zip",
                mime="application/zip",
                key="review_download_camtrap",
                icon=":material/download:",
                on_click="ignore",
            )
        elif prepared:
            st.caption("Changed since the package was made: make it again.")

close_archives()  # the photos read from uploaded zips on this run's thread
