"""The landing page: what the app does and for whom, the classes it knows, example photos to try in one
click; then classify a photo: upload one, take one with the camera, or paste its web address.

Under the answer: where the model looked (a heatmap, computed only when its toggle is turned on) and
how it decided, step by step (classifier/results/steps.py words it; this page only draws).
"""

import hashlib
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st
from PIL import Image

from app_pages.cards import LOOKALIKES_PAGE, shown_name, species_card
from app_pages.common import (
    example_thumbnail,
    examples_or_warn,
    explaining_network,
    release_page_memory,
    require_bundle,
    require_predictor,
    species_book_or_warn,
)
from classifier.intake.images import ImageError, Photo, load_photo
from classifier.intake.urlfetch import FetchError, fetch_image
from classifier.knowledge.geography import country_table
from classifier.knowledge.lookalikes import answer_pair
from classifier.knowledge.species import ANIMAL, HABITAT
from classifier.models.bundle_photos import showcase
from classifier.models.detect import crop_box
from classifier.results.annotate import annotate, blur
from classifier.results.steps import CROP, DETECTOR, SCORES, decision_steps, group_members, verdict_words
from classifier.schema.observations import observation_type
from classifier.schema.rows import BLANK, HUMAN, NOT_SURE, OK, ROLLED_UP, Decision, Row

if TYPE_CHECKING:  # the heatmap's module itself is imported when the toggle asks for it
    from classifier.models.explain import Explanation

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"]
DISPLAY_SIZE = 1024  # decode big frames at a reduced scale: the page never shows more than this

bundle = require_bundle()
book = species_book_or_warn(bundle)
examples = examples_or_warn(bundle)
subject = book.subject if book else None
TITLES = {ANIMAL: "What animal is this?", HABITAT: "What kind of place is this?"}
st.title(TITLES.get(subject, "What is in this photo?"))
things = {ANIMAL: "animals", HABITAT: "kinds of place"}.get(subject, "classes")
if subject == HABITAT:
    st.markdown(
        f"Show it a landscape photo and it says which of the {len(bundle.classes)} kinds of place it knows it "
        "shows, how sure it is and where in the photo it looked, and tells you about that habitat.  \n"
        "For curious people and students, and for tagging the setting of many photos at once "
        "(**Batch-label photos** in the menu)."
    )
else:
    st.markdown(
        f"Show it a photo of a wild animal, from a camera trap or your phone, and it says which of the "
        f"{len(bundle.classes)} {things} it knows is there, how sure it is and where in the photo it looked, and "
        "tells you about the species.  \nFor curious people and students, and for ecologists with thousands of "
        "camera-trap photos to sort (**Batch-label photos** in the menu)."
    )
known = " · ".join(book.get(c).common_name if book and book.get(c) else c for c in bundle.classes)
st.caption(f"Model: {bundle.title}. The {len(bundle.classes)} {things} it knows: {known}.")


def forget_example() -> None:
    st.session_state.pop("classify_example", None)


upload_tab, camera_tab, url_tab = st.tabs(["Upload a photo", "Take a photo", "Paste a web address"])
with upload_tab:
    uploaded = st.file_uploader("Photo", type=UPLOAD_TYPES, key="classify_upload", on_change=forget_example)
with camera_tab:
    snapshot = st.camera_input("Camera", key="classify_camera", on_change=forget_example)
with url_tab, st.form("classify_url_form", border=False):
    url = st.text_input("Web address of a photo", placeholder="https://…", key="classify_url")
    fetch = st.form_submit_button("Fetch and classify", on_click=forget_example)
strip = st.container()


def chosen_photo() -> tuple[bytes | Path, str] | None:
    """The photo from whichever input was used, as its bytes (or file) and name; None when none is."""
    if fetch and url.strip():
        try:
            with st.spinner("Fetching the photo…"):
                fetched = fetch_image(url.strip())
        except FetchError as error:
            st.error(str(error))
            return None
        return fetched.content, fetched.url
    example = examples.get(st.session_state.get("classify_example", ""))
    if example is not None:
        return example.path, example.path.name
    source = uploaded or snapshot
    return None if source is None else (source.getvalue(), source.name)


def shown_photo(chosen: tuple[bytes | Path, str] | None) -> Photo | None:
    """The photo decoded for the page to show (prediction decodes it its own way), or None; a photo that
    cannot be used shows its one-line error."""
    if chosen is None:
        return None
    try:
        return load_photo(chosen[0], name=chosen[1], target_size=DISPLAY_SIZE)
    except ImageError as error:
        st.error(str(error))
        return None


def photo_key(photo: Photo) -> str:
    """Which photo a "classify the whole frame anyway" click was for (a new photo is detected again)."""
    return hashlib.blake2b(photo.image.tobytes(), digest_size=8).hexdigest()


given = chosen_photo()
photo = shown_photo(given)
with strip:
    if photo is None and examples:
        st.markdown("**No photo at hand? Try one of these:**")
        for column, example in zip(st.columns(6), showcase(examples, bundle.report), strict=False):
            column.image(example_thumbnail(str(example.path)), width="stretch", alt="An example photo to try")
            column.button(
                "Try this one",
                key=f"classify_try_{example.label}",
                on_click=st.session_state.update,
                kwargs={"classify_example": example.label},
                width="stretch",
            )
    elif st.session_state.get("classify_example") in examples:
        st.button("Try another example photo", key="classify_other_example", on_click=forget_example)
if photo is None:
    st.stop()

predictor = require_predictor(bundle)
whole_frame = st.session_state.get("classify_whole_frame") == photo_key(photo)
row = predictor.predict_photo(given[0], name=given[1], detect=not whole_frame)
decision = row.decision or Decision(rule=NOT_SURE)


def place_name(decision: Decision) -> str:
    known = country_table().get(decision.country)
    return known.name if known else "the place given"


common_name = partial(shown_name, book)


def score_of(label: str, top_k: Sequence[tuple[str, float]]) -> str:
    """ " (61%)": the score the bars and the box show for `label`, so a caption never gives another."""
    return next((f" ({p:.0%})" for name, p in top_k if name == label), "")


def explanation_for(row: Row) -> "Explanation":
    """Where the model looked, computed once per photo and answer (this session keeps the last one)."""
    from classifier.models.explain import explain

    key = (
        photo_key(photo),
        bundle.name,
        bundle.model_sha256,
        row.label,
        tuple(label for label, _ in row.top_k),
        tuple(tuple(d.bbox) for d in row.detections or ()),
    )
    cached = st.session_state.get("classify_explanation")
    if cached is not None and cached[0] == key:
        return cached[1]
    with st.spinner("Working out where the model looked…"):
        found = explain(predictor, photo.image, row, network=explaining_network(predictor, bundle))
    st.session_state["classify_explanation"] = (key, found)
    return found


def seen_picture(bbox: Sequence[float] | None, label: str, hide_people: bool) -> Image.Image:
    """The picture the classifier saw: the crop around `bbox` (None: the whole photo), squished to its
    input size; a person's crop blurred when people are blurred."""
    side = predictor.image_size
    picture = photo.image if bbox is None else crop_box(photo.image, bbox, predictor.crop_margin)
    picture = picture.convert("RGB").resize((side, side))
    if hide_people and observation_type(label, detected=True) == HUMAN:
        picture = blur(picture, (0, 0, 1, 1))
    return picture


picture, verdict = st.columns([3, 2])
with picture:
    hide_people = True
    if row.detections:
        hide_people = st.toggle(
            "Blur people", value=True, key="classify_blur", help="People's boxes are blurred."
        )
    looked = row.observation_type != BLANK and st.toggle(
        "Show where the model looked",
        value=False,
        key="classify_heatmap",
        help="A heatmap over the photo: the brighter a place, the more it counted for the answer.",
    )
    shown = photo.image
    explanation = explanation_for(row) if looked else None
    if explanation is not None:
        from classifier.models.explain import overlay

        shown = overlay(photo.image, explanation.frame, max_side=DISPLAY_SIZE)
    st.image(
        annotate(shown, row.detections or (), name=common_name, blur_people=hide_people), width="stretch"
    )
    if explanation is not None:
        heat = explanation.frame
        if heat.empty:
            st.caption(f"Nothing in the whole photo counted for {common_name(heat.label)}.")
        else:
            st.caption(
                f"Where the model looked for **{common_name(heat.label)}**{score_of(heat.label, row.top_k)} "
                f"in the whole photo: the brighter, the more it counted. Worked out in "
                f"{explanation.seconds:.2f} s."
            )
        if explanation.crops:
            tiles = st.columns(min(len(explanation.crops), 4))
            for number, (crop, detection) in enumerate(
                zip(explanation.crops, row.detections or (), strict=True)
            ):
                tile = overlay(seen_picture(crop.bbox, detection.label, hide_people), crop.heatmap)
                tiles[number % len(tiles)].image(
                    tile,
                    caption=f"Animal {number + 1}: looking for {common_name(crop.heatmap.label)}"
                    f"{score_of(crop.heatmap.label, detection.top_k)}",
                    width="stretch",
                )
    facts = [f"taken {photo.taken:%Y-%m-%d %H:%M}" if photo.taken else "", photo.camera or ""]
    shown_example = examples.get(st.session_state.get("classify_example", ""))
    st.caption(
        shown_example.credit
        if shown_example
        else " · ".join(f for f in facts if f) or "No date or camera in this photo's EXIF."
    )
with verdict:
    title, lines = verdict_words(row, predictor, common_name)
    st.subheader(title)
    for line in lines:
        st.markdown(line)
    if row.observation_type == BLANK:
        st.button(
            "Classify the whole frame anyway",
            key="classify_anyway",
            on_click=st.session_state.update,
            kwargs={"classify_whole_frame": photo_key(photo)},
        )
    members = group_members(row, predictor)
    for label, probability, here in members[:5]:
        away = "" if here else f" (not in {place_name(decision)})"
        st.progress(probability, text=f"{common_name(label)}{away} · {probability:.1%}")
    if members and not any(here for _, _, here in members):
        st.caption(
            f"None of them lives in {place_name(decision)}: most likely a kind of {common_name(row.label)} "
            "this model has no class for."
        )
    for label, probability in row.top_k if not members else ():
        st.progress(probability, text=f"{common_name(label)} · {probability:.1%}")
    if decision.removed >= 0.005:
        st.caption(
            f"{decision.removed:.0%} of the score went to classes that do not live in {place_name(decision)}: "
            "they are left out, and the others' scores are shown as the model gave them."
        )
    others = [d for d in row.detections or () if d.label != row.label]
    if others:
        st.caption(
            "Also in the photo: " + ", ".join(f"{common_name(d.label)} ({d.confidence:.0%})" for d in others)
        )
    if row.geofenced:
        st.caption(
            f"The model's first answer, {common_name(row.geofenced)}, does not live in "
            f"{place_name(decision)}, so it was left out."
        )
    if whole_frame:
        st.caption("The whole frame was classified, as you asked; the detector found no animal in it.")
    unsure = row.status != OK or decision.rule == ROLLED_UP
    pair = answer_pair(row.top_k, bundle.report, book) if unsure and row.observation_type != BLANK else None
    if pair is not None:
        st.page_link(
            LOOKALIKES_PAGE,
            label=f"How to tell {common_name(pair[0])} from {common_name(pair[1])}",
            icon=":material/compare:",
            query_params={"species": pair[0], "vs": pair[1], "model": bundle.name},
        )

with st.expander("How it decided, step by step"):
    for number, step in enumerate(
        decision_steps(row, predictor, name=common_name, whole_frame_asked=whole_frame), 1
    ):
        st.markdown(f"**{number}. {step.title}.** {step.text}")
        if step.kind == DETECTOR and step.boxes:
            st.image(
                annotate(photo.image, row.detections or (), name=common_name, blur_people=hide_people),
                width=320,
            )
        elif step.kind == CROP:
            chosen = next((d for d in row.detections or () if tuple(d.bbox) == step.bbox), None)
            st.image(seen_picture(step.bbox, chosen.label if chosen else row.label, hide_people), width=160)
        elif step.kind == SCORES:
            st.dataframe(
                {"class": [label for label, _ in step.bars], "score": [p for _, p in step.bars]},
                column_config={
                    "class": st.column_config.TextColumn("Class"),
                    "score": st.column_config.ProgressColumn(
                        "Score", format="percent", min_value=0, max_value=1
                    ),
                },
                hide_index=True,
                key="classify_steps_scores",
            )

entry = book.get(row.label) if book else None
if row.status == OK and entry is not None:
    # The card's photo, unless the photo classified is that very example.
    card_photo = examples.get(row.label) if st.session_state.get("classify_example") != row.label else None
    species_card(entry, bundle.name, card_photo, decision.country or None)
elif row.status == OK and row.label in bundle.classes:
    st.caption(f"No species notes for '{row.label}' yet.")
release_page_memory()
