"""Classify a photo: upload one, take one with the camera, or paste its web address."""

import streamlit as st

from classifier.images import ImageError, Photo, load_photo
from classifier.urlfetch import FetchError, fetch_image
from pages.cards import species_card
from pages.common import require_bundle, require_predictor, species_book_or_warn

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


photo = chosen_photo()
if photo is None:
    st.stop()

predictor = require_predictor(bundle)
prediction = predictor.predict_image(photo.image)
book = species_book_or_warn(bundle)


def common_name(label: str) -> str:
    entry = book.get(label) if book else None
    return entry.common_name if entry else label


picture, verdict = st.columns([3, 2])
with picture:
    st.image(photo.image, width="stretch")
    facts = [f"taken {photo.taken:%Y-%m-%d %H:%M}" if photo.taken else "", photo.camera or ""]
    st.caption(" · ".join(f for f in facts if f) or "No date or camera in this photo's EXIF.")
with verdict:
    if prediction.status == "ok":
        st.subheader(f"{common_name(prediction.label)}")
        st.markdown(f"**{prediction.confidence:.0%}** confident")
    else:
        st.subheader("Not sure")
        guesses = ", ".join(common_name(label) for label, _ in prediction.top_k[:3])
        st.markdown(f"Below the {predictor.threshold:.0%} threshold. Best guesses: {guesses}.")
    for label, probability in prediction.top_k:
        st.progress(probability, text=f"{common_name(label)} · {probability:.1%}")

entry = book.get(prediction.label) if book else None
if prediction.status == "ok" and entry is not None:
    species_card(entry, bundle.name)
elif prediction.status == "ok":
    st.caption(f"No species notes for '{prediction.label}' yet.")
