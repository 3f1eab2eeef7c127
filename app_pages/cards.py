"""How a species is drawn: its name, the IUCN badge and the card the classify and species pages share."""

from __future__ import annotations

import html

import streamlit as st

from classifier.knowledge.species import IUCN_COLOURS, SpeciesBook, SpeciesEntry
from classifier.knowledge.taxonomy import label_parts
from classifier.models.bundle_photos import Example

SPECIES_PAGE = "app_pages/species.py"
LOOKALIKES_PAGE = "app_pages/lookalikes.py"
_DARK_BADGES = {"EX", "EW", "CR"}
TREND_ARROWS = {"increasing": "↗", "stable": "→", "decreasing": "↘", "unknown": "?"}


def shown_name(book: SpeciesBook | None, label: str) -> str:
    """What a person reads for a class ("Plains zebra") or a rolled-up group ("carnivore"); pages bind
    their notes once: `functools.partial(shown_name, book)`."""
    entry = book.get(label) if book else None
    if entry:
        return entry.common_name
    group = label_parts(label)
    return (group[1] or group[0]) if group else label


def iucn_badge(entry: SpeciesEntry) -> str:
    """An HTML badge in the Red List's colour, or a plain label for groups and habitats."""
    if not entry.iucn:
        label = {"habitat": "habitat", "unwritten": "notes not written yet"}.get(
            entry.kind, "group of species (no single IUCN status)"
        )
        return f"<span style='color:#666'>{label}</span>"
    text_colour = "#fff" if entry.iucn in _DARK_BADGES else "#111"
    return (
        f"<span style='background:{IUCN_COLOURS[entry.iucn]};color:{text_colour};border:1px solid #999;"
        f"border-radius:0.4em;padding:0.1em 0.5em;font-weight:600'>{entry.iucn} · "
        f"{html.escape(entry.iucn_name or '')}</span>"
    )


def heading(entry: SpeciesEntry) -> str:
    science = f" · *{entry.scientific_name}*" if entry.scientific_name else ""
    return f"**{entry.common_name}**{science}"


def status_line(entry: SpeciesEntry) -> str:
    trend = entry.population_trend
    trend_text = f" &nbsp; population {TREND_ARROWS[trend]} {trend}" if trend else ""
    return iucn_badge(entry) + trend_text


def example_photo(example: Example | None) -> None:
    """A class's example photo with its source and licence under it; nothing without one."""
    if example is not None:
        st.image(str(example.path), caption=example.credit, width="stretch")


def species_card(
    entry: SpeciesEntry, bundle_name: str, example: Example | None = None, country: str | None = None
) -> None:
    """The short card under a prediction: its example photo, names, status, description, threats, action,
    and a link to its page (which marks `country`, the photo's, on the range map)."""
    with st.container(border=True):
        if example is None:
            _card_text(entry, bundle_name, country)
            return
        photo, text = st.columns([1, 2])
        with photo:
            example_photo(example)
        with text:
            _card_text(entry, bundle_name, country)


def _card_text(entry: SpeciesEntry, bundle_name: str, country: str | None) -> None:
    st.markdown(heading(entry))
    if entry.kind == "unwritten":
        st.caption(
            f"A class added in a review: its notes are not written yet (the `{entry.key}` entry of the "
            f"model's species notes, `{bundle_name}.yaml`)."
        )
        return
    st.markdown(status_line(entry), unsafe_allow_html=True)
    st.write(entry.description)
    st.markdown(f"**Threats.** {entry.threats}")
    st.markdown(f"**What is being done.** {entry.conservation}")
    st.page_link(
        SPECIES_PAGE,
        label=f"More about the {entry.common_name}: where it lives, look-alikes",
        query_params={
            "species": entry.key,
            "model": bundle_name,
            **({"country": country} if country else {}),
        },
    )
