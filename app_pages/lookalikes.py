"""Look-alikes: two classes side by side, how to tell them apart, and how often this model mixes them up.

Shareable: `?species=jackal&vs=bat-eared-fox` (and `&model=serengeti` for another model's classes). The
words and numbers come from classifier/knowledge/lookalikes.py; this page only draws them.
"""

from functools import partial

import streamlit as st

from app_pages.cards import SPECIES_PAGE, example_photo, heading, shown_name, status_line
from app_pages.common import examples_or_warn, require_bundle, species_book_or_warn
from classifier.knowledge.lookalikes import compare, confusion_sentences, most_confused_pair, partner

bundle = require_bundle()
book = species_book_or_warn(bundle)
examples = examples_or_warn(bundle)
classes = list(bundle.classes)


common_name = partial(shown_name, book)


def pick(parameter: str, fallback: str) -> str:
    """The class the link names (`?species=`, `?vs=`), else `fallback`."""
    linked = st.query_params.get(parameter)
    return linked if linked in classes else fallback


def linked_choice(parameter: str) -> None:
    """Keep the address in step with the pickers, so the page can be shared as it is."""
    st.query_params[parameter] = st.session_state[f"lookalikes_{parameter}"]
    st.query_params["model"] = bundle.name


st.title("Look-alikes")
st.caption(
    f"Model: {bundle.title}. Two classes side by side: how to tell them apart, and how often this model mixes them up."
)
if len(classes) < 2:
    st.info("This model has a single class: nothing to compare.")
    st.stop()
default_a, default_b = most_confused_pair(bundle.report) or (classes[0], classes[1])
first = pick("species", default_a)
# A species page links `?species=` alone: put its own look-alike beside it.
fallback = partner(bundle.report, book, first) or next(c for c in (default_b, *classes) if c != first)
second = pick("vs", fallback)
for parameter, value in (("species", first), ("vs", second)):
    if st.session_state.get(f"lookalikes_{parameter}") not in classes or parameter in st.query_params:
        st.session_state[f"lookalikes_{parameter}"] = value
left, right = st.columns(2)
a = left.selectbox(
    "Species",
    classes,
    key="lookalikes_species",
    format_func=common_name,
    on_change=linked_choice,
    args=("species",),
)
b = right.selectbox(
    "Compared with",
    classes,
    key="lookalikes_vs",
    format_func=common_name,
    on_change=linked_choice,
    args=("vs",),
)
if a == b:
    st.info("Pick two different classes to compare.")
    st.stop()

comparison = compare(bundle.report, book, a, b)
st.subheader("How often this model mixes them up")
for sentence in confusion_sentences(comparison, common_name):
    st.markdown(sentence)
if not comparison.listed:
    st.caption("The species notes do not name these two as look-alikes.")

for column, side, other in ((left, comparison.a, comparison.b), (right, comparison.b, comparison.a)):
    with column.container(border=True):
        example_photo(examples.get(side.key))
        if side.entry is None:
            st.markdown(f"**{side.key}**")
            st.caption("No notes about this class yet.")
        else:
            st.markdown(heading(side.entry))
            st.markdown(status_line(side.entry), unsafe_allow_html=True)
        st.markdown(f"**How to tell it from the {common_name(other.key)}**")
        st.write(
            side.how_to_tell
            or other.how_to_tell
            or "The notes say nothing about telling these two apart yet."
        )
        if side.scores:
            scores = st.columns(4)
            for place, (label, field, hint) in zip(
                scores,
                (
                    ("Precision", "precision", "Of the photos the model called this, the share that were."),
                    ("Recall", "recall", "Of the held-out photos of this, the share the model named right."),
                    ("F1", "f1", "Precision and recall in one number."),
                    ("Photos", "support", "Held-out photos of this class in the model's report."),
                ),
                strict=True,
            ):
                value = side.scores.get(field)
                shown = "–" if value is None else f"{value:.0f}" if field == "support" else f"{value:.2f}"
                place.metric(label, shown, help=hint)
        st.page_link(
            SPECIES_PAGE,
            label=f"About the {common_name(side.key)}",
            query_params={"species": side.key, "model": bundle.name},
        )
