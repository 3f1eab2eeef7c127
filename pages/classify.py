"""Classify a photo: upload one, take one with the camera, or paste its web address."""

import hashlib

import streamlit as st

from classifier.annotate import annotate
from classifier.images import ImageError, Photo, load_photo
from classifier.rows import BLANK
from classifier.urlfetch import FetchError, fetch_image
from pages.cards import species_card
from pages.common import require_bundle, require_predictor, species_book_or_warn, use_navigation

use_navigation()

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"]
DISPLAY_SIZE = 1024  # decode big frames at a reduced scale: the page never shows more than this

bundle = require_bundle()
st.title("What animal is this?")
st.caption(f"Model: {bundle.title} · {len(bundle.classes)} classes")

upload_tab, camera_tab, url_tab = st.tabs(["Upload a photo", "Take a photo", "Paste a web address"])
with upload_tab:
    uploaded = st.file_uploader("Photo", type=UPLOAD_TYPES, key="classify_upload")
with camera_tab:
    snapshot = st.camera_input("Camera", key="classify_camera")
with url_tab, st.form("classify_url_form", border=False):
    url = st.text_input("Web address of a photo", placeholder="https://…", key="classify_url")
    fetch = st.form_submit_button("Fetch and classify")


def chosen_photo() -> Photo | None:
    """The photo from whichever input was used, or None; a bad one shows its one-line error."""
    try:
        if fetch and url.strip():
            with st.spinner("Fetching the photo…"):
                fetched = fetch_image(url.strip())
            return load_photo(fetched.content, name=fetched.url, target_size=DISPLAY_SIZE)
        source = uploaded or snapshot
        if source is not None:
            return load_photo(source.getvalue(), name=source.name, target_size=DISPLAY_SIZE)
    except (ImageError, FetchError) as error:
        st.error(str(error))
    return None


def photo_key(photo: Photo) -> str:
    """Which photo a "classify the whole frame anyway" click was for (a new photo is detected again)."""
    return hashlib.blake2b(photo.image.tobytes(), digest_size=8).hexdigest()


photo = chosen_photo()
if photo is None:
    st.stop()

predictor = require_predictor(bundle)
whole_frame = st.session_state.get("classify_whole_frame") == photo_key(photo)
row = predictor.frame_row(photo.image, detect=not whole_frame, location=photo.location)
book = species_book_or_warn(bundle)


def common_name(label: str) -> str:
    entry = book.get(label) if book else None
    return entry.common_name if entry else label


picture, verdict = st.columns([3, 2])
with picture:
    blur = True
    if row.detections:
        blur = st.toggle("Blur people", value=True, key="classify_blur", help="People's boxes are blurred.")
    st.image(annotate(photo.image, row.detections or (), name=common_name, blur_people=blur), width="stretch")
    facts = [f"taken {photo.taken:%Y-%m-%d %H:%M}" if photo.taken else "", photo.camera or ""]
    st.caption(" · ".join(f for f in facts if f) or "No date or camera in this photo's EXIF.")
with verdict:
    if row.observation_type == BLANK:
        st.subheader("No animal found")
        st.markdown(
            f"The animal detector found nothing it was sure of (its best guess: **{row.detector_best or 0:.0%}**, "
            f"it needs {predictor.detector.confidence:.0%}). Camera traps take many empty frames: wind, "
            "sun and warm ground set them off."
        )
        st.button(
            "Classify the whole frame anyway",
            key="classify_anyway",
            on_click=st.session_state.update,
            kwargs={"classify_whole_frame": photo_key(photo)},
        )
    elif row.status == "ok" and row.rank not in ("", "species"):
        st.subheader("Not sure of the species")
        st.markdown(f"Most likely **{row.label}** ({row.confidence:.0%} together). Its species here:")
    elif row.status == "ok":
        many = f"{row.count} × " if row.count and row.count > 1 else ""
        st.subheader(f"{many}{common_name(row.label)}")
        st.markdown(f"**{row.confidence:.0%}** confident")
    else:
        st.subheader("Not sure")
        guesses = ", ".join(common_name(label) for label, _ in row.top_k[:3])
        st.markdown(f"Below the {predictor.threshold:.0%} threshold. Best guesses: {guesses}.")
    for label, probability in row.top_k:
        st.progress(probability, text=f"{common_name(label)} · {probability:.1%}")
    others = [d for d in row.detections or () if d.label != row.label]
    if others:
        st.caption(
            "Also in the photo: " + ", ".join(f"{common_name(d.label)} ({d.confidence:.0%})" for d in others)
        )
    if row.geofenced:
        st.caption(
            f"The model's first answer, {common_name(row.geofenced)}, does not live where this photo was "
            "taken, so it was left out."
        )
    if whole_frame:
        st.caption("The whole frame was classified, as you asked; the detector found no animal in it.")

entry = book.get(row.label) if book else None
if row.status == "ok" and entry is not None:
    species_card(entry, bundle.name)
elif row.status == "ok" and row.observation_type != BLANK:
    st.caption(f"No species notes for '{row.label}' yet.")
