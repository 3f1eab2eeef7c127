"""Species notes: load and validate `species_info/<bundle>.yaml` (format: docs/species_yaml.md).

The format is stated once, as pydantic models: `_File` at the top, one model per kind of entry, and the
dataclasses a loaded book hands out. Every problem in a file raises one `SpeciesInfoError` whose message
is a single line naming the file, the class, the field, what to write instead and the line in the file,
so the app can show it as is and the author knows exactly what to fix.
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from classifier.intake.images import one_line
from classifier.knowledge.geography import country_table
from classifier.schema.rows import RANKS as ROLLUP_RANKS

SPECIES_DIR = Path(__file__).resolve().parents[2] / "species_info"
SPECIES_DIR_VARIABLE = "WILDLIFE_SPECIES_DIR"  # another folder of notes, for self-hosters and tests

IUCN_CATEGORIES: dict[str, str] = {
    "EX": "Extinct",
    "EW": "Extinct in the Wild",
    "CR": "Critically Endangered",
    "EN": "Endangered",
    "VU": "Vulnerable",
    "NT": "Near Threatened",
    "LC": "Least Concern",
    "DD": "Data Deficient",
    "NE": "Not Evaluated",
}

# Badge colours of the IUCN Red List website; NE is white there, so draw its badge with a border.
IUCN_COLOURS: dict[str, str] = {
    "EX": "#000000",
    "EW": "#542344",
    "CR": "#d81e05",
    "EN": "#fc7f3f",
    "VU": "#f9e814",
    "NT": "#cce226",
    "LC": "#60c659",
    "DD": "#d1d1c6",
    "NE": "#ffffff",
}

POPULATION_TRENDS = ("increasing", "stable", "decreasing", "unknown")
# `unwritten`: a class a person added in a review (train/review.py writes it): only its name so far.
KINDS = ("species", "group", "habitat", "unwritten")
# Taxonomic ranks a class may name, top down. `phylum` is only for groups above a class ("insect-spider" is
# Arthropoda). Rollup sums probability up to `class`, but answers at most at `order`: "mammal" or "bird" tells
# a person nothing a camera trap did not, so it is never a sure answer (ANSWER_RANKS).
RANKS = ("phylum", "class", "order", "family", "genus", "species")
ANSWER_RANKS = ROLLUP_RANKS[:-1]
ANIMAL, HABITAT, THING = "animal", "habitat", "thing"  # what a bundle's classes are (`SpeciesBook.subject`)
EVERYWHERE = "all"  # `range.countries: all`: a class found everywhere (people, livestock, birds)

# Field order as in the format doc; messages list fields in this order so they read like the file.
FIELDS = (
    "kind",
    "common_name",
    "scientific_name",
    "iucn",
    "population_trend",
    "description",
    "look_alikes",
    "habitat",
    "diet",
    "wildlife",
    "threats",
    "conservation",
    "taxonomy",
    "represents",
    "range",
    "sources",
)
_MAX_SOURCES = 3
# Bundle names become file names: refusing separators and leading dots keeps lookups inside `root`.
_BUNDLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_HOST = re.compile(r"(?:[^\W_][\w-]*\.)+[^\W_][\w-]*")
_TAXON = re.compile(r"[A-Z][a-z]+")
_BINOMIAL = re.compile(r"[A-Z][a-z]+ [a-z]+(?: [a-z]+)?")  # a subspecies' third word is allowed


class SpeciesInfoError(ValueError):
    """A species notes file that cannot be used; `str()` is one line: file, class, field, problem, line."""

    def __init__(
        self,
        file: str,
        problem: str,
        species: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ):
        self.file, self.species, self.field, self.line = file, species, field, line
        where = file if species is None else f"{file}: {_name(species)}"
        super().__init__(f"{where}: {problem}" + (f" (line {line})" if line else ""))


# ---- what a loaded book hands out ------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    title: Text
    url: Url


@dataclass(frozen=True)
class LookAlike:
    species: Text
    how_to_tell: Text


@dataclass(frozen=True)
class Range:
    """Where a class lives wild: ISO 3166-1 alpha-3 codes, or None for everywhere (never removed by place)."""

    countries: Countries
    note: Text

    def allows(self, country: str) -> bool:
        return self.countries is None or country in self.countries


@dataclass(frozen=True)
class SpeciesEntry:
    key: str
    kind: str
    common_name: str
    scientific_name: str | None = None
    iucn: str | None = None
    population_trend: str | None = None
    description: str = ""
    look_alikes: tuple[LookAlike, ...] = ()
    habitat: str | None = None
    diet: str | None = None
    wildlife: str | None = None
    threats: str = ""
    conservation: str = ""
    sources: tuple[Source, ...] = ()
    taxonomy: tuple[tuple[str, str], ...] = ()  # (rank, scientific name), top down
    range: Range | None = None
    represents: str | None = None  # the taxon the class stands for, when broader than its photos' species

    @property
    def lineage(self) -> tuple[tuple[str, str], ...]:
        """The taxonomy down to what the class stands for: a `baboon` trained on olive baboons answers for
        the genus Papio, so the rollup and the exports stop there."""
        if self.represents is None:
            return self.taxonomy
        names = [name for _, name in self.taxonomy]
        return self.taxonomy[: names.index(self.represents) + 1]

    @property
    def iucn_name(self) -> str | None:
        """The IUCN category in words ("Endangered"), None for groups and habitats."""
        return IUCN_CATEGORIES.get(self.iucn) if self.iucn else None

    @property
    def rank(self) -> str | None:
        """The rank of the taxon the class stands for ("species", "order" for rodents), None without one."""
        return self.lineage[-1][0] if self.lineage else None

    @property
    def taxon(self) -> str | None:
        """The taxon the class stands for ("Panthera leo", "Papio", "Rodentia"), None without taxonomy."""
        return self.lineage[-1][1] if self.lineage else None


@dataclass(frozen=True)
class SpeciesBook:
    bundle: str
    title: str
    entries: dict[str, SpeciesEntry]
    taxa: dict[str, str] = field(default_factory=dict)  # scientific name -> common name ("Felidae": "cat")
    rollup_thresholds: dict[str, float] = field(default_factory=dict)  # rank -> measured cut-off
    rollup_under: float | None = None  # roll up only when the best class scores less (None: always)

    def get(self, key: str) -> SpeciesEntry | None:
        return self.entries.get(key)

    def missing(self, classes: Iterable[str]) -> list[str]:
        """The classes (in the order given, once each) that have no entry in this book."""
        return [c for c in dict.fromkeys(classes) if c not in self.entries]

    def search(self, text: str) -> list[SpeciesEntry]:
        """Entries whose class, common or scientific name contains `text`; all entries for blank text.

        Case, '-', '_' and apostrophes are ignored so "bat eared" finds `bat-eared-fox` and "thomsons"
        finds "Thomson's gazelle".
        """
        needle = _normalise(text)
        return [e for e in self.entries.values() if needle in _haystack(e)]

    @property
    def subject(self) -> str:
        """What the classes are, for a page's words: `ANIMAL` when any note describes a species or a group of
        them, `HABITAT` when they all describe places, `THING` when no note says (only unwritten ones)."""
        kinds = {e.kind for e in self.entries.values()} - {"unwritten"}
        if kinds & {"species", "group"}:
            return ANIMAL
        return HABITAT if kinds else THING

    def by_iucn(self, codes: str | Iterable[str]) -> list[SpeciesEntry]:
        """Species entries in any of the given IUCN categories ("EN" or ["CR", "EN"]), in file order."""
        wanted = {c.strip().upper() for c in ([codes] if isinstance(codes, str) else codes)}
        unknown = sorted(wanted - IUCN_CATEGORIES.keys())
        if unknown:
            known = ", ".join(sorted(IUCN_CATEGORIES))
            raise ValueError(f"unknown IUCN code(s) {', '.join(unknown)}; use {known}")
        return [e for e in self.entries.values() if e.iucn in wanted]


def filter_classes(
    classes: Iterable[str], book: SpeciesBook | None, text: str = "", codes: Iterable[str] = ()
) -> list[str]:
    """The classes (in model order) matching a search and an IUCN filter, notes or not.

    A class without notes matches a search by its own name, and never an IUCN filter (its status is
    unknown to us); with no filter and blank text every class is kept.
    """
    needle, wanted = _normalise(text), set(codes)
    found = {e.key for e in book.search(text)} if book else set()
    if wanted:
        found &= {e.key for e in book.by_iucn(wanted)} if book else set()
    no_notes = (
        []
        if wanted
        else [c for c in classes if (not book or c not in book.entries) and needle in _normalise(c)]
    )
    return [c for c in classes if c in found or c in no_notes]


# ---- loading ---------------------------------------------------------------------------------------


def load_species_book(path: Path) -> SpeciesBook:
    """Read and validate one species notes file; any problem raises a one-line `SpeciesInfoError`."""
    path = Path(path)
    file = _display(path)
    root, data = _parse_yaml(_read_text(path, file), file)
    if data is None:
        raise SpeciesInfoError(file, "is empty; expected 'bundle', 'title' and 'species'")
    if not isinstance(data, dict):
        problem = f"must be a mapping with 'bundle', 'title' and 'species' (got {_show(data)})"
        raise SpeciesInfoError(file, problem)
    try:
        notes = _File.model_validate(data, context={"stem": path.stem, "root": root})
    except ValidationError as error:
        raise _refusal(error, file, root) from None
    return notes.book()


def find_species_book(bundle: str, root: Path | None = None) -> SpeciesBook | None:
    """The notes of `bundle` from `root/<bundle>.yaml` (default: $WILDLIFE_SPECIES_DIR, else the
    species_info folder); None if absent."""
    if not isinstance(bundle, str) or not _BUNDLE_NAME.fullmatch(bundle):
        raise SpeciesInfoError(repr(bundle), "is not a bundle name (letters, digits, '.', '_', '-')")
    root = root if root is not None else Path(os.environ.get(SPECIES_DIR_VARIABLE) or SPECIES_DIR)
    path = Path(root) / f"{bundle}.yaml"
    return load_species_book(path) if path.is_file() else None


# ---- the pieces of the format: each refuses a wrong value saying what to write instead ---------------


def _refuse(problem: str, *at: str | int, named: bool = True, lined: bool = False) -> PydanticCustomError:
    """A problem `_refusal` words for the author. `at` leads from the value being validated to the one at
    fault; `named` puts that value's field in front ("'range.note' must be text"); `lined` says the problem
    gives its own line numbers."""
    context = {"problem": problem, "at": at, "named": named, "lined": lined}
    return PydanticCustomError("species_notes", "{problem}", context)


def _one_of(choices: Iterable[str]) -> BeforeValidator:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise _refuse(f"must be one of {', '.join(sorted(choices))} (got {_show(value)})")
        return value

    return BeforeValidator(check)


def _shape(kind: type, what: str, least: int = 0, most: float = math.inf) -> BeforeValidator:
    """Refuse anything but a `kind` (dict or list) of `least` to `most` items, saying it must be `what`."""

    def check(value: Any) -> Any:
        if not isinstance(value, kind):
            raise _refuse(f"must be {what} (got {_show(value)})")
        if not least <= len(value) <= most:
            got = f"{len(value)} items" if isinstance(value, list) else _show(value)  # a mapping: only empty
            raise _refuse(f"must be {what} (got {got})")
        return value

    return BeforeValidator(check)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        hint = "; quote it in the YAML" if isinstance(value, int | float | bool) else ""
        raise _refuse(f"must be text (got {_show(value)}{hint})")
    if not value.strip():
        raise _refuse("must not be empty")
    return value.strip()


def _fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value <= 1.0:
        raise _refuse(f"must be a number above 0 and at most 1 (got {_show(value)})")
    return float(value)


def _https(url: str) -> str:
    if any(c.isspace() for c in url):
        raise _refuse(f"must not contain spaces (got {_show(url)})")
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port  # .port raises on a malformed port
    except ValueError:
        raise _refuse(f"is not a well-formed URL (got {_show(url)})") from None
    if parts.scheme != "https":
        raise _refuse(f"must be an https:// URL (got {_show(url)})")
    if parts.username is not None or not host or not _HOST.fullmatch(host):
        raise _refuse(f"must name a host with a dot, like en.wikipedia.org (got {_show(url)})")
    return url


def _countries(codes: Any) -> frozenset[str] | None:
    """ISO 3166-1 alpha-3 codes, each once, or None for `all`."""
    if codes == EVERYWHERE:
        return None
    if not isinstance(codes, list) or not codes:
        raise _refuse(
            f"must be a list of ISO 3166-1 alpha-3 codes, or '{EVERYWHERE}' for a class found everywhere "
            f"(got {_show(codes)})"
        )
    for i, code in enumerate(codes):
        problem = _country_problem(code) or (f"lists {code} twice" if code in codes[:i] else None)
        if problem:
            raise _refuse(problem, i)
    return frozenset(codes)


def _country_problem(code: Any) -> str | None:
    """Why `code` is not an ISO 3166-1 alpha-3 code as the notes write it, or None when it is one."""
    table = country_table()
    if isinstance(code, str) and code in table:
        return None
    text = code if isinstance(code, str) else ""
    if text.upper() in table:
        return f"{_show(code)}: write country codes in capitals ({text.upper()})"
    by_alpha2 = {c.alpha2: c.alpha3 for c in table.values()}
    if text.upper() in by_alpha2:
        return f"{_show(code)} is an alpha-2 code; write its alpha-3 code {by_alpha2[text.upper()]}"
    return f"{_show(code)} is not an ISO 3166-1 alpha-3 country code (like KEN, TZA, USA)"


def _lineage(taxonomy: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The (rank, scientific name) pairs, top down; refuse misorder, gaps and names that are no taxa."""
    ranks = list(taxonomy)
    if ranks[0] not in ("phylum", "class"):
        raise _refuse(f"must start at 'class' ('phylum' only for a group above a class), not {ranks[0]!r}")
    for upper, lower in itertools.pairwise(ranks):
        if RANKS.index(lower) < RANKS.index(upper):
            problem = f"'taxonomy' ranks out of order: {lower!r} comes after {upper!r}; list them top down: {', '.join(RANKS)}"
            raise _refuse(problem, lower, named=False)
    for upper, lower in itertools.pairwise(ranks):
        if RANKS.index(lower) > RANKS.index(upper) + 1:
            gap = RANKS[RANKS.index(upper) + 1]
            problem = f"'taxonomy' skips {gap!r} between {upper!r} and {lower!r}; give every rank down to the deepest"
            raise _refuse(problem, gap, named=False)
    for rank, name in taxonomy.items():
        pattern, example = (_BINOMIAL, "'Panthera leo'") if rank == "species" else (_TAXON, "'Felidae'")
        if not pattern.fullmatch(name):
            raise _refuse(f"must be a scientific name like {example} (got {_show(name)})", rank)
    species, genus = taxonomy.get("species"), taxonomy.get("genus")
    if species and genus and species.split()[0] != genus:
        raise _refuse(f"{species!r} must begin with its genus {genus!r}", "species")
    return tuple(taxonomy.items())


def _rank(rank: Any) -> str:
    if rank not in RANKS:
        raise _refuse(f"has unknown rank {_show(rank)} (ranks, top down: {', '.join(RANKS)})")
    return rank


def _answer_rank(rank: Any) -> str:
    if rank in ROLLUP_RANKS and rank not in ANSWER_RANKS:
        problem = f"'rollup_thresholds.{rank}': an answer at {rank} rank is never sure; remove it"
        raise _refuse(problem, named=False)
    if rank not in ANSWER_RANKS:
        raise _refuse(f"has unknown rank {_show(rank)} (ranks: {', '.join(ANSWER_RANKS)})")
    return rank


def _class_name(key: Any) -> str:
    if not isinstance(key, str) or not key.strip() or key != key.strip():
        raise _refuse(f"class names must be text without surrounding spaces (got {_show(key)})", named=False)
    return key


Text = Annotated[str, BeforeValidator(_text)]  # stripped, never empty
Fraction = Annotated[float, BeforeValidator(_fraction)]
Url = Annotated[Text, AfterValidator(_https)]
Countries = Annotated[frozenset[str] | None, BeforeValidator(_countries)]  # None: everywhere
Taxonomy = Annotated[
    dict[Annotated[str, BeforeValidator(_rank)], Text],
    _shape(dict, "a mapping of rank to scientific name", least=1),
    AfterValidator(_lineage),
]


# ---- the format: the file, and one model per kind of entry ------------------------------------------
# A field without `| None` whose default is None may be left out but not written empty: `represents:` with
# no value is refused as not text.


class _Format(BaseModel):
    # Any field a model does not name is refused; validators are built on the first load, not at import.
    model_config = ConfigDict(extra="forbid", defer_build=True)


class _Placed(_Format):
    """Where a class sits in the tree of life and in the world (docs/species_yaml.md, "Taxonomy and range")."""

    kind: str
    scientific_name: Text = None
    taxonomy: Taxonomy = ()
    represents: Text = None
    range: Range = None

    @model_validator(mode="after")
    def _names_agree(self) -> _Placed:
        above = [name for _, name in self.taxonomy[:-1]]
        if self.taxonomy:
            rank, deepest = self.taxonomy[-1]
            if self.kind == "species" and rank != "species":
                problem = f"of a species entry must go down to 'species' (it stops at {rank!r})"
                raise _refuse(problem, "taxonomy")
            if self.scientific_name and self.scientific_name != deepest:
                problem = (
                    f"is {deepest!r} but 'scientific_name' is {self.scientific_name!r}; "
                    "the deepest taxon and the scientific name must be the same"
                )
                raise _refuse(problem, "taxonomy", rank)
        if self.represents is not None and self.represents not in above:
            choices = ", ".join(above) if above else "none: give 'taxonomy' first"
            problem = f"must name a taxon of its own 'taxonomy' above the deepest ({choices}); got {_show(self.represents)}"
            raise _refuse(problem, "represents")
        return self


class _Written(_Format):
    """What every entry a person has written says."""

    common_name: Text
    description: Text
    look_alikes: Annotated[tuple[LookAlike, ...], _shape(list, "a list")] = ()
    threats: Text
    conservation: Text
    sources: Annotated[
        tuple[Source, ...], _shape(list, f"a list of 1 to {_MAX_SOURCES} sources", 1, _MAX_SOURCES)
    ]


class _GroupNotes(_Written, _Placed):
    kind: Literal["group"]
    habitat: Text
    diet: Text


class _SpeciesNotes(_GroupNotes):
    kind: Literal["species"] = "species"
    scientific_name: Text
    iucn: Annotated[str, _one_of(IUCN_CATEGORIES)]
    population_trend: Annotated[str, _one_of(POPULATION_TRENDS)]


class _HabitatNotes(_Written):
    kind: Literal["habitat"]
    wildlife: Text


class _UnwrittenNotes(_Placed):
    kind: Literal["unwritten"]
    common_name: Text


_NOTES: dict[str, type[_Format]] = {
    "species": _SpeciesNotes,
    "group": _GroupNotes,
    "habitat": _HabitatNotes,
    "unwritten": _UnwrittenNotes,
}


def _kind(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return None
    kind = entry.get("kind", "species")
    return kind if isinstance(kind, str) else _show(kind)  # anything but text names no kind


Notes = Annotated[
    Annotated[_SpeciesNotes, Tag("species")]
    | Annotated[_GroupNotes, Tag("group")]
    | Annotated[_HabitatNotes, Tag("habitat")]
    | Annotated[_UnwrittenNotes, Tag("unwritten")],
    Discriminator(_kind),
]


class _File(_Format):
    """A species notes file. Validate it with `context={"stem": file name, "root": its YAML node}`."""

    # Left out, `bundle`, `title` and `species` are checked as None: refused, saying what to write.
    bundle: str = Field(None, validate_default=True)
    title: Text = Field(None, validate_default=True)
    # `taxa` names are checked against the classes' taxonomies (`_classes_agree`)
    taxa: Annotated[dict[Any, Text], _shape(dict, "a mapping of scientific name to common name")] = {}
    rollup_thresholds: Annotated[
        dict[Annotated[str, BeforeValidator(_answer_rank)], Fraction],
        _shape(dict, "a mapping of rank to a number"),
    ] = {}
    rollup_under: Fraction = None
    species: Annotated[
        dict[Annotated[str, BeforeValidator(_class_name)], Notes],
        _shape(dict, "a mapping of class name to entry", least=1),
    ] = Field(None, validate_default=True)

    @field_validator("bundle", mode="before")
    @classmethod
    def _named_as_the_file(cls, bundle: Any, info: ValidationInfo) -> str:
        stem = info.context["stem"]
        if bundle != stem:
            raise _refuse(f"must be {stem!r}, the file's name without .yaml (got {_show(bundle)})")
        return bundle

    @model_validator(mode="after")
    def _classes_agree(self, info: ValidationInfo) -> _File:
        entries = self.entries()
        for key, entry in entries.items():
            for i, alike in enumerate(entry.look_alikes):
                at = ("species", key, "look_alikes", i, "species")
                if alike.species == key:
                    raise _refuse("names the class itself", *at)
                if alike.species not in entries:
                    raise _refuse(f"names {alike.species!r}, which is not a class in this file", *at)
                if alike.species in (a.species for a in entry.look_alikes[:i]):
                    raise _refuse(f"names {alike.species!r} twice", *at)
        tree = _tree(entries, info.context["root"])
        for name in self.taxa:
            if name not in tree:
                problem = (
                    f"names {_show(name)}, which is no taxon of any class in this file; check its spelling"
                )
                raise _refuse(problem, "taxa", name, "[key]")
        return self

    def entries(self) -> dict[str, SpeciesEntry]:
        return {key: SpeciesEntry(key=key, **dict(notes)) for key, notes in self.species.items()}

    def book(self) -> SpeciesBook:
        return SpeciesBook(
            self.bundle, self.title, self.entries(), self.taxa, self.rollup_thresholds, self.rollup_under
        )


def _tree(entries: dict[str, SpeciesEntry], root: yaml.Node) -> set[str]:
    """Every taxon named; refuse one given two ranks or two parents across classes (the tree would fork or
    loop). A class's top taxon with no rank above it given has an unknown parent, which agrees with any:
    "Mammalia" under "Chordata" in one entry and at the top in another is fine."""
    found: dict[str, tuple[str, str | None, str]] = {}  # name -> (rank, parent, class that said so)
    for key, entry in entries.items():
        parent = None
        for rank, name in entry.taxonomy:
            known = found.get(name)
            if known and (known[0] != rank or (parent and known[1] and known[1] != parent)):
                raise _tree_conflict(root, key, rank, name, parent, known)
            if not known or (parent and not known[1]):
                found[name] = (rank, parent, key)
            parent = name
    return set(found)


def _tree_conflict(
    root: yaml.Node, key: str, rank: str, name: str, parent: str | None, known: tuple[str, str | None, str]
) -> PydanticCustomError:
    other_rank, other_parent, other = known
    here = _line(root, ("species", key, "taxonomy", rank))
    there = _line(root, ("species", other, "taxonomy", other_rank))
    if other_rank != rank:
        problem = (
            f"names {name!r} (line {here}) as {_a(rank)}, but {other!r} (line {there}) has it as {_a(other_rank)}; "
            "a taxon has one rank, so fix whichever is wrong"
        )
    else:
        problem = (
            f"puts {name!r} (line {here}) under {parent!r}, but {other!r} (line {there}) puts it under "
            f"{other_parent!r}; a taxon has one parent, so fix whichever is wrong"
        )
    return _refuse(problem, "species", key, "taxonomy", rank, lined=True)


# ---- reading ---------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reports bad scalars with their line.

    PyYAML keeps the last of two equal keys without a word, which would silently drop a whole entry, and
    raises a bare ValueError without position for scalars like `2001-13-01` or `0x_`.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(None, None, str(exc), node.start_mark) from exc

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<:` merges may legitimately repeat keys
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable: the parent class reports it with its position
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {_show(key)}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_text(path: Path, file: str) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpeciesInfoError(file, f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        text = raw.decode("utf-8-sig")  # tolerate a BOM some Windows editors add
    except UnicodeDecodeError as exc:
        problem = f"is not valid UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})"
        raise SpeciesInfoError(file, problem) from None
    return text


def _parse_yaml(text: str, file: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for line numbers) and its data, as `yaml.load` makes it."""
    try:
        loader = _StrictLoader(text)  # a SafeLoader subclass: builds no objects
        root = loader.get_single_node()
        return root, None if root is None else loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}: " if mark else ""
        raise SpeciesInfoError(
            file, f"{line}invalid YAML: {one_line(exc.problem or exc.context or 'unknown error')}"
        ) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        problem = f"line {line}: invalid YAML: control character U+{ord(char):04X} is not allowed"
        raise SpeciesInfoError(file, problem) from None
    except yaml.YAMLError as exc:
        raise SpeciesInfoError(file, f"invalid YAML: {one_line(str(exc) or 'unknown error')}") from None
    except RecursionError:
        raise SpeciesInfoError(file, "invalid YAML: nested too deeply") from None


# ---- pydantic's errors, worded for the author -------------------------------------------------------


def _refusal(error: ValidationError, file: str, root: yaml.Node) -> SpeciesInfoError:
    """The problem found first in the file, as one `SpeciesInfoError`. Within an entry (or a top-level
    field), a field no kind knows comes before the fields it lacks, and those before wrong values: a
    misspelled field is then named as such, not as a missing one."""
    problems = [_worded(e) for e in error.errors(include_url=False)]

    def first(problem: tuple[tuple, str, bool, int]) -> tuple[int, int, int]:
        loc, _, _, order = problem
        return _line(root, loc[:2] if loc[:1] == ("species",) else loc[:1]), order, _line(root, loc)

    loc, problem, lined, _ = min(problems, key=first)  # stable: pydantic's order on ties
    species, where = _place(loc)
    return SpeciesInfoError(file, problem, species, where or None, None if lined else _line(root, loc))


def _worded(error: ErrorDetails) -> tuple[tuple, str, bool, int]:
    """Where in the file one of pydantic's errors is, what to tell the author, whether that gives its own
    line numbers, and its order among an entry's problems (0: unknown fields, 1: missing ones, 2: values)."""
    kind, value, context = error["type"], error["input"], error.get("ctx", {})
    loc = _untagged(error["loc"])
    if kind == "species_notes":
        loc += context["at"]
        problem = (f"'{_place(loc)[1]}' " if context["named"] else "") + context["problem"]
        return loc, problem, context["lined"], 0 if loc[-1:] == ("[key]",) else 2  # a wrong key: unknown
    *parent, name = loc
    if kind in ("extra_forbidden", "unexpected_keyword_argument", "invalid_key"):
        name = value if kind == "invalid_key" else name  # a key that is no text: its location is str(key)
        return loc, _unknown_field(tuple(parent), name, error["loc"]), False, 0
    if kind == "missing" and _is_entry(parent):
        entry_kind = error["loc"][2]  # pydantic names the kind it read the entry as
        model = _NOTES[entry_kind].model_fields
        absent = [n for n in FIELDS if n in model and model[n].is_required() and n not in value]
        names = ", ".join(f"'{n}'" for n in absent)
        return (*parent, absent[0]), f"missing required field {names} for kind: {entry_kind}", False, 1
    if kind == "missing":
        return loc, f"'{_place(parent)[1]}' is missing '{name}'", False, 1
    if kind == "dataclass_type":
        names = " and ".join(f"'{f.name}'" for f in fields(_MAPPINGS[context["class_name"]]))
        return loc, f"'{_place(loc)[1]}' must be a mapping with {names} (got {_show(value)})", False, 2
    if kind == "union_tag_not_found":
        return loc, f"entry must be a mapping of fields (got {_show(value)})", False, 0
    if kind == "union_tag_invalid":
        problem = f"'kind' must be one of {', '.join(sorted(KINDS))} (got {_show(value['kind'])})"
        return (*loc, "kind"), problem, False, 0
    raise AssertionError(f"no words for pydantic's {kind!r} error at {loc}")  # a bug here, not in the file


_MAPPINGS = {c.__name__: c for c in (Source, LookAlike, Range)}


def _unknown_field(parent: tuple, name: Any, tagged: tuple) -> str:
    if not parent:
        return f"unknown top-level field {_show(name)}{_did_you_mean(name, _File.model_fields)}"
    if not _is_entry(parent):
        return f"'{_place(parent)[1]}' has unknown field {_show(name)}"
    if name not in FIELDS:
        return f"unknown field {_show(name)}{_did_you_mean(name, FIELDS)}"
    owners = " or ".join(kind for kind, model in _NOTES.items() if name in model.model_fields)
    return f"'{name}' does not belong on {_a(tagged[2])} entry (only on kind: {owners})"


def _did_you_mean(name: Any, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(name), known, n=1)
    return (f"; did you mean {close[0]!r}?" if close else "") + f" (known: {', '.join(known)})"


def _is_entry(loc: tuple | list) -> bool:
    return len(loc) == 2 and loc[0] == "species"


def _untagged(loc: tuple) -> tuple:
    # pydantic names the kind it read an entry as right after the class: `species.zebra.species.diet`
    return loc[:2] + loc[3:] if len(loc) > 2 and loc[0] == "species" and loc[2] != "[key]" else loc


def _place(loc: tuple) -> tuple[str | None, str]:
    """The class and the field path (`look_alikes[0].species`) of a location; a mapping's key is the
    mapping's problem."""
    if loc[-1:] == ("[key]",):
        loc = loc[:-2]
    species = None
    if len(loc) >= 2 and loc[0] == "species":
        species, loc = str(loc[1]), loc[2:]
    return species, "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in loc).lstrip(".")


def _line(root: yaml.Node, loc: tuple) -> int:
    """The line of the deepest key or item of `loc` found in the file (a missing field: its entry's)."""
    node, line = root, root.start_mark.line
    for step in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == str(step)), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
            line = node.start_mark.line
        else:
            break
    return line + 1


# ---- small helpers ---------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A short one-line rendering of a YAML value for messages.

    Containers are named, never printed: YAML aliases can make a tiny file expand to a huge structure.
    """
    if isinstance(value, dict | list):
        return ("a " if value else "an empty ") + ("mapping" if isinstance(value, dict) else "list")
    if isinstance(value, str) and len(value) > 60:
        return repr(value[:57]) + "..."
    return repr(value)[:60]


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _name(key: str) -> str:
    return key if key.isprintable() else repr(key)


def _display(path: Path) -> str:
    # Folder and file name ("species_info/serengeti.yaml"): enough to find it, and shows no server paths.
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _normalise(text: str) -> str:
    text = re.sub(r"['’]", "", text.casefold())
    return " ".join(re.sub(r"[_-]", " ", text).split())


def _haystack(entry: SpeciesEntry) -> str:
    # "\n" separates names so a search cannot match across two of them.
    return "\n".join(_normalise(n) for n in (entry.key, entry.common_name, entry.scientific_name or ""))
