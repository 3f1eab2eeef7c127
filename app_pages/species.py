"""Species: every class of the chosen model with its photo, searchable and filterable, and a page per
species: its photo, notes, a map of where it lives and its look-alikes.

A species page is shareable: `?species=zebra` (and `&model=habitat` for another model's classes,
`&country=MOZ` to mark a photo's country on the map; else the sidebar's). It links the classes this model
most often mixes up with the species to the look-alikes page, and that page for any other class.
"""

import streamlit as st

from app_pages.cards import LOOKALIKES_PAGE, SPECIES_PAGE, example_photo, heading, status_line
from app_pages.common import (
    current_country,
    example_thumbnail,
    examples_or_warn,
    require_bundle,
    species_book_or_warn,
)
from classifier.knowledge.geography import country_table
from classifier.knowledge.lookalikes import confused_with
from classifier.knowledge.species import IUCN_CATEGORIES, SpeciesBook, SpeciesEntry, filter_classes
from classifier.results.range_maps import range_map

bundle = require_bundle()
book = species_book_or_warn(bundle)
examples = examples_or_warn(bundle)
chosen = st.query_params.get("species")
linked_country = st.query_params.get("country", "").upper()
country = linked_country if linked_country in country_table() else current_country()


def detail(book: SpeciesBook | None, key: str) -> None:
    st.page_link(
        SPECIES_PAGE, label="All species", icon=":material/arrow_back:", query_params={"model": bundle.name}
    )
    entry = book.get(key) if book else None
    if key not in bundle.classes:
        st.warning(f"'{key}' is not one of the classes of {bundle.title}.")
        return
    if entry is None:
        st.title(key.replace("-", " ").replace("_", " ").capitalize())
        example_photo(examples.get(key))
        st.info("We have no notes about this class yet; the model still recognises it.")
        confusions(book, key)
        return
    st.title(entry.common_name)
    words, photo = st.columns([3, 2]) if key in examples else (st.container(), None)
    with words:
        if entry.scientific_name:
            st.markdown(f"*{entry.scientific_name}*")
        st.markdown(status_line(entry), unsafe_allow_html=True)
        st.write(entry.description)
    if photo is not None:
        with photo:
            example_photo(examples[key])
    where_it_lives(entry)
    for title, text in (
        ("Habitat", entry.habitat),
        ("Diet", entry.diet),
        ("Wildlife that depends on it", entry.wildlife),
        ("Threats", entry.threats),
        ("What is being done", entry.conservation),
    ):
        if text:
            st.subheader(title)
            st.write(text)
    if entry.look_alikes:
        st.subheader("Look-alikes")
        for look_alike in entry.look_alikes:
            other = book.get(look_alike.species) if book else None
            label = other.common_name if other else look_alike.species
            st.page_link(
                SPECIES_PAGE, label=label, query_params={"species": look_alike.species, "model": bundle.name}
            )
            st.caption(look_alike.how_to_tell)
            st.page_link(
                LOOKALIKES_PAGE,
                label="Side by side",
                icon=":material/compare:",
                query_params={"species": key, "vs": look_alike.species, "model": bundle.name},
            )
    confusions(book, key)
    if entry.sources:
        st.subheader("Sources")
        st.markdown("\n".join(f"- [{source.title}]({source.url})" for source in entry.sources))


def where_it_lives(entry: SpeciesEntry) -> None:
    """The range map, the photo's country outlined, and the notes' words on the range."""
    found = range_map(entry.range, country)
    if found is None:
        return
    st.subheader("Where it lives")
    st.altair_chart(found.chart, width="stretch")
    st.caption(found.caption)
    st.write(entry.range.note)


def confusions(book: SpeciesBook | None, key: str) -> None:
    """The classes this model most often mixes up with `key` on its held-out photos, each linked to the
    look-alikes page, then that page for any class."""
    mixed = confused_with(bundle.report, key)
    if mixed:
        confused_links(book, key, mixed)
    st.page_link(
        LOOKALIKES_PAGE,
        label="Compare with another class",
        icon=":material/compare:",
        query_params={"species": key, "model": bundle.name},
    )


def confused_links(book: SpeciesBook | None, key: str, mixed: list[tuple[str, int, int]]) -> None:
    st.subheader("Often confused with")
    st.caption(f"What {bundle.title} mixed up with this class on its held-out photos.")
    for other, called, taken_for in mixed:
        entry = book.get(other) if book else None
        label = entry.common_name if entry else other
        times = called + taken_for
        st.page_link(
            LOOKALIKES_PAGE,
            label=f"{label}: mixed up {times} {'time' if times == 1 else 'times'}, side by side",
            icon=":material/compare:",
            query_params={"species": key, "vs": other, "model": bundle.name},
        )


def overview(book: SpeciesBook | None) -> None:
    st.title(f"Species · {bundle.title}")
    search, status = st.columns([2, 1])
    text = search.text_input("Search", placeholder="name, scientific name…", key="species_search")
    codes = status.multiselect(
        "IUCN status",
        list(IUCN_CATEGORIES),
        format_func=lambda c: f"{c} · {IUCN_CATEGORIES[c]}",
        key="species_iucn",
    )
    shown = filter_classes(bundle.classes, book, text, codes)
    st.caption(f"{len(shown)} of {len(bundle.classes)} classes")
    first = next(iter(examples.values()), None)
    if first is not None:
        st.caption(f"Photos from the {first.source}, {first.licence}")
    columns = st.columns(4)
    for index, key in enumerate(shown):
        entry = book.get(key) if book else None
        with columns[index % 4].container(border=True):
            if key in examples:
                st.image(example_thumbnail(str(examples[key].path)), width="stretch", alt=f"A photo of {key}")
            if entry is None:
                st.markdown(f"**{key}**")
                st.caption("No notes yet.")
            else:
                st.markdown(heading(entry))
                st.markdown(status_line(entry), unsafe_allow_html=True)
            st.page_link(SPECIES_PAGE, label="Read more", query_params={"species": key, "model": bundle.name})


if chosen:
    detail(book, chosen)
else:
    overview(book)
