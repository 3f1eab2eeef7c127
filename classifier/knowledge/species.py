"""Species notes: load and validate `species_info/<bundle>.yaml` (format: docs/species_yaml.md).

Every problem in a file raises one `SpeciesInfoError` whose message is a single line naming the file, the
class and the field, so the app can show it as is and the author knows exactly what to fix.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from classifier.knowledge.geography import country_table

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
ROLLUP_RANKS = ("species", "genus", "family", "order", "class")
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
_NOT_TEXT = ("kind", "iucn", "population_trend", "look_alikes", "taxonomy", "represents", "range", "sources")
_TEXT_FIELDS = tuple(f for f in FIELDS if f not in _NOT_TEXT)
_SHARED = {"common_name", "description", "threats", "conservation", "sources"}
_REQUIRED = {
    "species": _SHARED | {"scientific_name", "iucn", "population_trend", "habitat", "diet"},
    "group": _SHARED | {"habitat", "diet"},
    "habitat": _SHARED | {"wildlife"},
    "unwritten": {"common_name"},
}
# Taxonomy and range are optional so older notes still load; the repository's own notes give both
# (tests/test_species.py). A habitat scene is no taxon and lives everywhere: it takes neither.
_OPTIONAL = {
    "species": {"kind", "look_alikes", "taxonomy", "represents", "range"},
    "group": {"kind", "look_alikes", "scientific_name", "taxonomy", "represents", "range"},
    "habitat": {"kind", "look_alikes"},
    "unwritten": {"kind", "scientific_name", "taxonomy", "represents", "range"},
}
_TOP_LEVEL = ("bundle", "title", "taxa", "rollup_thresholds", "rollup_under", "species")
_MAX_SOURCES = 3
# Bundle names become file names: refusing separators and leading dots keeps lookups inside `root`.
_BUNDLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_HOST = re.compile(r"(?:[^\W_][\w-]*\.)+[^\W_][\w-]*")
_TAXON = re.compile(r"[A-Z][a-z]+")
_BINOMIAL = re.compile(r"[A-Z][a-z]+ [a-z]+(?: [a-z]+)?")  # a subspecies' third word is allowed


class SpeciesInfoError(ValueError):
    """A species notes file that cannot be used; `str()` is one line: file, class, field and problem."""

    def __init__(self, file: str, problem: str, species: str | None = None, field: str | None = None):
        self.file, self.species, self.field = file, species, field
        where = file if species is None else f"{file}: {_name(species)}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Source:
    title: str
    url: str


@dataclass(frozen=True)
class LookAlike:
    species: str
    how_to_tell: str


@dataclass(frozen=True)
class Range:
    """Where a class lives wild: ISO 3166-1 alpha-3 codes, or None for everywhere (never removed by place)."""

    countries: frozenset[str] | None
    note: str

    def allows(self, country: str) -> bool:
        return self.countries is None or country in self.countries


@dataclass(frozen=True)
class SpeciesEntry:
    key: str
    kind: str
    common_name: str
    scientific_name: str | None
    iucn: str | None
    population_trend: str | None
    description: str
    look_alikes: tuple[LookAlike, ...]
    habitat: str | None
    diet: str | None
    wildlife: str | None
    threats: str
    conservation: str
    sources: tuple[Source, ...]
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


def load_species_book(path: Path) -> SpeciesBook:
    """Read and validate one species notes file; any problem raises a one-line `SpeciesInfoError`."""
    path = Path(path)
    file = _display(path)
    text = _read_text(path, file)
    data = _parse_yaml(text, file)
    if data is None:
        raise SpeciesInfoError(file, "is empty; expected 'bundle', 'title' and 'species'")
    species = _check_top_level(data, path.stem, file)
    classes = set(species)
    entries = {key: _parse_entry(file, key, raw, classes) for key, raw in species.items()}
    names = _check_tree(file, text, entries)
    return SpeciesBook(
        bundle=data["bundle"],
        title=data["title"].strip(),
        entries=entries,
        taxa=_taxa(file, data.get("taxa", {}), names),
        rollup_thresholds=_thresholds(file, data.get("rollup_thresholds", {})),
        rollup_under=_fraction(file, "rollup_under", data["rollup_under"])
        if "rollup_under" in data
        else None,
    )


def find_species_book(bundle: str, root: Path | None = None) -> SpeciesBook | None:
    """The notes of `bundle` from `root/<bundle>.yaml` (default: $WILDLIFE_SPECIES_DIR, else the
    species_info folder); None if absent."""
    if not isinstance(bundle, str) or not _BUNDLE_NAME.fullmatch(bundle):
        raise SpeciesInfoError(repr(bundle), "is not a bundle name (letters, digits, '.', '_', '-')")
    root = root if root is not None else Path(os.environ.get(SPECIES_DIR_VARIABLE) or SPECIES_DIR)
    path = Path(root) / f"{bundle}.yaml"
    return load_species_book(path) if path.is_file() else None


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


def _parse_yaml(text: str, file: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: builds no objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}: " if mark else ""
        raise SpeciesInfoError(file, f"{line}invalid YAML: {_one_line(exc.problem or exc.context)}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        problem = f"line {line}: invalid YAML: control character U+{ord(char):04X} is not allowed"
        raise SpeciesInfoError(file, problem) from None
    except yaml.YAMLError as exc:
        raise SpeciesInfoError(file, f"invalid YAML: {_one_line(str(exc))}") from None
    except RecursionError:
        raise SpeciesInfoError(file, "invalid YAML: nested too deeply") from None


# ---- validating ------------------------------------------------------------------------------------


def _check_top_level(data: Any, stem: str, file: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        problem = f"must be a mapping with 'bundle', 'title' and 'species' (got {_show(data)})"
        raise SpeciesInfoError(file, problem)
    for key in data:
        if key not in _TOP_LEVEL:
            problem = f"unknown top-level field {_show(key)} (known: {', '.join(_TOP_LEVEL)})"
            raise SpeciesInfoError(file, problem, field=str(key))
    if data.get("bundle") != stem:
        got = _show(data.get("bundle"))
        problem = f"'bundle' must be {stem!r}, the file's name without .yaml (got {got})"
        raise SpeciesInfoError(file, problem, field="bundle")
    _text(file, None, "title", data.get("title"))
    return _check_species_map(data.get("species"), file)


def _check_species_map(species: Any, file: str) -> dict[str, Any]:
    if not isinstance(species, dict) or not species:
        problem = f"'species' must be a mapping of class name to entry (got {_show(species)})"
        raise SpeciesInfoError(file, problem, field="species")
    for key in species:
        if not isinstance(key, str) or not key.strip() or key != key.strip():
            problem = f"class names must be text without surrounding spaces (got {_show(key)})"
            raise SpeciesInfoError(file, problem, field="species")
    return species


def _parse_entry(file: str, key: str, raw: Any, classes: set[str]) -> SpeciesEntry:
    if not isinstance(raw, dict):
        raise SpeciesInfoError(file, f"entry must be a mapping of fields (got {_show(raw)})", key)
    kind = _check_fields(file, key, raw)
    text = {name: _text(file, key, name, raw[name]) for name in _TEXT_FIELDS if name in raw}
    taxonomy = (
        _taxonomy(file, key, raw["taxonomy"], kind, text.get("scientific_name")) if "taxonomy" in raw else ()
    )
    return SpeciesEntry(
        key=key,
        kind=kind,
        common_name=text["common_name"],
        scientific_name=text.get("scientific_name"),
        iucn=_choice(file, key, "iucn", raw["iucn"], IUCN_CATEGORIES) if "iucn" in raw else None,
        population_trend=(
            _choice(file, key, "population_trend", raw["population_trend"], POPULATION_TRENDS)
            if "population_trend" in raw
            else None
        ),
        description=text.get("description", ""),
        look_alikes=_look_alikes(file, key, raw.get("look_alikes", []), classes),
        habitat=text.get("habitat"),
        diet=text.get("diet"),
        wildlife=text.get("wildlife"),
        threats=text.get("threats", ""),
        conservation=text.get("conservation", ""),
        sources=_sources(file, key, raw["sources"]) if "sources" in raw else (),
        taxonomy=taxonomy,
        range=_range(file, key, raw["range"]) if "range" in raw else None,
        represents=_represents(file, key, raw["represents"], taxonomy) if "represents" in raw else None,
    )


def _check_fields(file: str, key: str, raw: dict) -> str:
    """Refuse unknown, misplaced and missing fields; return the entry's kind."""
    for name in raw:
        if name not in FIELDS:
            problem = f"unknown field {_show(name)} (known: {', '.join(FIELDS)})"
            raise SpeciesInfoError(file, problem, key, str(name))
    kind = _choice(file, key, "kind", raw.get("kind", "species"), KINDS)
    allowed = _REQUIRED[kind] | _OPTIONAL[kind]
    for name in FIELDS:
        if name in raw and name not in allowed:
            owners = " or ".join(k for k in KINDS if name in _REQUIRED[k] | _OPTIONAL[k])
            problem = f"'{name}' does not belong on a {kind} entry (only on kind: {owners})"
            raise SpeciesInfoError(file, problem, key, name)
    missing = [name for name in FIELDS if name in _REQUIRED[kind] and name not in raw]
    if missing:
        names = ", ".join(f"'{name}'" for name in missing)
        raise SpeciesInfoError(file, f"missing required field {names} for kind: {kind}", key, missing[0])
    return kind


def _text(file: str, key: str | None, field: str, value: Any) -> str:
    if not isinstance(value, str):
        hint = "; quote it in the YAML" if isinstance(value, int | float | bool) else ""
        raise SpeciesInfoError(file, f"'{field}' must be text (got {_show(value)}{hint})", key, field)
    if not value.strip():
        raise SpeciesInfoError(file, f"'{field}' must not be empty", key, field)
    return value.strip()


def _choice(file: str, key: str, field: str, value: Any, choices: Iterable[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        problem = f"'{field}' must be one of {', '.join(sorted(choices))} (got {_show(value)})"
        raise SpeciesInfoError(file, problem, key, field)
    return value


def _look_alikes(file: str, key: str, value: Any, classes: set[str]) -> tuple[LookAlike, ...]:
    if not isinstance(value, list):
        raise SpeciesInfoError(file, f"'look_alikes' must be a list (got {_show(value)})", key, "look_alikes")
    result: list[LookAlike] = []
    for i, item in enumerate(value):
        where = f"look_alikes[{i}]"
        fields = _exact_fields(file, key, where, item, ("species", "how_to_tell"))
        other = _text(file, key, f"{where}.species", fields["species"])
        if other == key:
            raise SpeciesInfoError(file, f"'{where}.species' names the class itself", key, where)
        if other not in classes:
            problem = f"'{where}.species' names {other!r}, which is not a class in this file"
            raise SpeciesInfoError(file, problem, key, where)
        if any(a.species == other for a in result):
            raise SpeciesInfoError(file, f"'{where}.species' names {other!r} twice", key, where)
        result.append(LookAlike(other, _text(file, key, f"{where}.how_to_tell", fields["how_to_tell"])))
    return tuple(result)


def _sources(file: str, key: str, value: Any) -> tuple[Source, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= _MAX_SOURCES:
        got = f"{len(value)} items" if isinstance(value, list) else _show(value)
        problem = f"'sources' must be a list of 1 to {_MAX_SOURCES} sources (got {got})"
        raise SpeciesInfoError(file, problem, key, "sources")
    result = []
    for i, item in enumerate(value):
        where = f"sources[{i}]"
        fields = _exact_fields(file, key, where, item, ("title", "url"))
        title = _text(file, key, f"{where}.title", fields["title"])
        url = _text(file, key, f"{where}.url", fields["url"])
        problem = _url_problem(url)
        if problem:
            raise SpeciesInfoError(file, f"'{where}.url' {problem} (got {_show(url)})", key, f"{where}.url")
        result.append(Source(title, url))
    return tuple(result)


def _exact_fields(file: str, key: str, where: str, item: Any, names: tuple[str, ...]) -> dict:
    """Check `item` is a mapping with exactly the fields `names`."""
    if not isinstance(item, dict):
        expected = " and ".join(f"'{n}'" for n in names)
        problem = f"'{where}' must be a mapping with {expected} (got {_show(item)})"
        raise SpeciesInfoError(file, problem, key, where)
    for name in item:
        if name not in names:
            raise SpeciesInfoError(file, f"'{where}' has unknown field {_show(name)}", key, where)
    for name in names:
        if name not in item:
            raise SpeciesInfoError(file, f"'{where}' is missing '{name}'", key, f"{where}.{name}")
    return item


def _url_problem(url: str) -> str | None:
    """Why `url` is not a well-formed https URL, or None when it is."""
    if any(c.isspace() for c in url):
        return "must not contain spaces"
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port  # .port raises on a malformed port
    except ValueError:
        return "is not a well-formed URL"
    if parts.scheme != "https":
        return "must be an https:// URL"
    if parts.username is not None or not host or not _HOST.fullmatch(host):
        return "must name a host with a dot, like en.wikipedia.org"
    return None


# ---- taxonomy and range ----------------------------------------------------------------------------


def _taxonomy(
    file: str, key: str, value: Any, kind: str, scientific: str | None
) -> tuple[tuple[str, str], ...]:
    """The (rank, name) pairs, top down, from an entry's `taxonomy` mapping; refuse gaps and misorder."""
    if not isinstance(value, dict) or not value:
        problem = f"'taxonomy' must be a mapping of rank to scientific name (got {_show(value)})"
        raise SpeciesInfoError(file, problem, key, "taxonomy")
    pairs = [(_rank(file, key, rank), value[rank]) for rank in value]
    _check_rank_order(file, key, [rank for rank, _ in pairs])
    lineage = tuple((rank, _taxon_name(file, key, rank, name)) for rank, name in pairs)
    _check_lineage(file, key, lineage, kind, scientific)
    return lineage


def _rank(file: str, key: str, rank: Any) -> str:
    if rank not in RANKS:
        problem = f"'taxonomy' has unknown rank {_show(rank)} (ranks, top down: {', '.join(RANKS)})"
        raise SpeciesInfoError(file, problem, key, "taxonomy")
    return rank


def _check_rank_order(file: str, key: str, ranks: list[str]) -> None:
    order = ", ".join(RANKS)
    if ranks[0] not in ("phylum", "class"):
        problem = (
            f"'taxonomy' must start at 'class' ('phylum' only for a group above a class), not {ranks[0]!r}"
        )
        raise SpeciesInfoError(file, problem, key, "taxonomy")
    for upper, lower in itertools.pairwise(ranks):
        if RANKS.index(lower) < RANKS.index(upper):
            problem = (
                f"'taxonomy' ranks out of order: {lower!r} comes after {upper!r}; list them top down: {order}"
            )
            raise SpeciesInfoError(file, problem, key, f"taxonomy.{lower}")
    for upper, lower in itertools.pairwise(ranks):
        if RANKS.index(lower) > RANKS.index(upper) + 1:
            gap = RANKS[RANKS.index(upper) + 1]
            problem = f"'taxonomy' skips {gap!r} between {upper!r} and {lower!r}; give every rank down to the deepest"
            raise SpeciesInfoError(file, problem, key, f"taxonomy.{gap}")


def _taxon_name(file: str, key: str, rank: str, name: Any) -> str:
    name = _text(file, key, f"taxonomy.{rank}", name)
    pattern, example = (_BINOMIAL, "'Panthera leo'") if rank == "species" else (_TAXON, "'Felidae'")
    if not pattern.fullmatch(name):
        problem = f"'taxonomy.{rank}' must be a scientific name like {example} (got {_show(name)})"
        raise SpeciesInfoError(file, problem, key, f"taxonomy.{rank}")
    return name


def _check_lineage(
    file: str, key: str, lineage: tuple[tuple[str, str], ...], kind: str, scientific: str | None
) -> None:
    names = dict(lineage)
    if "species" in names and "genus" in names and names["species"].split()[0] != names["genus"]:
        problem = f"'taxonomy.species' {names['species']!r} must begin with its genus {names['genus']!r}"
        raise SpeciesInfoError(file, problem, key, "taxonomy.species")
    if kind == "species" and "species" not in names:
        problem = f"'taxonomy' of a species entry must go down to 'species' (it stops at {lineage[-1][0]!r})"
        raise SpeciesInfoError(file, problem, key, "taxonomy")
    if scientific and scientific != lineage[-1][1]:
        problem = (
            f"'taxonomy.{lineage[-1][0]}' is {lineage[-1][1]!r} but 'scientific_name' is {scientific!r}; "
            "the deepest taxon and the scientific name must be the same"
        )
        raise SpeciesInfoError(file, problem, key, f"taxonomy.{lineage[-1][0]}")


def _represents(file: str, key: str, value: Any, taxonomy: tuple[tuple[str, str], ...]) -> str:
    """The taxon a class stands for: one of its own taxonomy's, above the deepest."""
    name = _text(file, key, "represents", value)
    above = [taxon for _, taxon in taxonomy[:-1]]
    if name not in above:
        choices = ", ".join(above) if above else "none: give 'taxonomy' first"
        problem = f"'represents' must name a taxon of its own 'taxonomy' above the deepest ({choices}); got {_show(name)}"
        raise SpeciesInfoError(file, problem, key, "represents")
    return name


def _range(file: str, key: str, value: Any) -> Range:
    fields = _exact_fields(file, key, "range", value, ("countries", "note"))
    note = _text(file, key, "range.note", fields["note"])
    codes = fields["countries"]
    if codes == EVERYWHERE:
        return Range(None, note)
    if not isinstance(codes, list) or not codes:
        problem = (
            f"'range.countries' must be a list of ISO 3166-1 alpha-3 codes, or '{EVERYWHERE}' for a class "
            f"found everywhere (got {_show(codes)})"
        )
        raise SpeciesInfoError(file, problem, key, "range.countries")
    seen: set[str] = set()
    for i, code in enumerate(codes):
        problem = _country_problem(code) or (f"lists {code} twice" if code in seen else None)
        if problem:
            raise SpeciesInfoError(file, f"'range.countries[{i}]' {problem}", key, f"range.countries[{i}]")
        seen.add(code)
    return Range(frozenset(seen), note)


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


def _check_tree(file: str, text: str, entries: dict[str, SpeciesEntry]) -> dict[str, tuple[str, str | None]]:
    """Refuse a taxon given two ranks or two parents across classes (the tree would fork or loop).

    Returns every taxon's (rank, parent). A class's top taxon with no rank above it given has an unknown
    parent, which agrees with any: "Mammalia" under "Chordata" in one entry and at the top in another is fine.
    """
    found: dict[str, tuple[str, str | None, str]] = {}  # name -> (rank, parent, class that said so)
    for key, entry in entries.items():
        parent = None
        for rank, name in entry.taxonomy:
            known = found.get(name)
            if known and (known[0] != rank or (parent and known[1] and known[1] != parent)):
                raise _tree_conflict(file, text, key, rank, name, parent, known)
            if not known or (parent and not known[1]):
                found[name] = (rank, parent, key)
            parent = name
    return {name: (rank, parent) for name, (rank, parent, _) in found.items()}


def _tree_conflict(
    file: str,
    text: str,
    key: str,
    rank: str,
    name: str,
    parent: str | None,
    known: tuple[str, str | None, str],
) -> SpeciesInfoError:
    other_rank, other_parent, other = known
    here, there = _taxonomy_line(text, key, rank), _taxonomy_line(text, other, other_rank)
    if other_rank != rank:
        problem = (
            f"'taxonomy.{rank}' names {name!r}{here} as {_a(rank)}, but {other!r}{there} has it as {_a(other_rank)}; "
            "a taxon has one rank, so fix whichever is wrong"
        )
    else:
        problem = (
            f"'taxonomy.{rank}' puts {name!r}{here} under {parent!r}, but {other!r}{there} puts it under "
            f"{other_parent!r}; a taxon has one parent, so fix whichever is wrong"
        )
    return SpeciesInfoError(file, problem, key, f"taxonomy.{rank}")


def _taxonomy_line(text: str, key: str, rank: str) -> str:
    """ " (line N)" for `species.<key>.taxonomy.<rank>` in the YAML text, "" if it cannot be found.

    Only called to word an error, so composing the document a second time costs nothing in normal use.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        for step in ("species", key, "taxonomy", rank):
            node = next(v for k, v in node.value if getattr(k, "value", None) == step)
    except Exception:  # anything odd: the message simply goes without the line
        return ""
    return f" (line {node.start_mark.line + 1})"


def _taxa(file: str, value: Any, tree: dict[str, tuple[str, str | None]]) -> dict[str, str]:
    if not isinstance(value, dict):
        raise SpeciesInfoError(
            file,
            f"'taxa' must be a mapping of scientific name to common name (got {_show(value)})",
            field="taxa",
        )
    for name in value:
        if name not in tree:
            problem = (
                f"'taxa' names {_show(name)}, which is no taxon of any class in this file; check its spelling"
            )
            raise SpeciesInfoError(file, problem, field="taxa")
    return {name: _text(file, None, f"taxa.{name}", common) for name, common in value.items()}


def _thresholds(file: str, value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        problem = f"'rollup_thresholds' must be a mapping of rank to a number (got {_show(value)})"
        raise SpeciesInfoError(file, problem, field="rollup_thresholds")
    result = {}
    for rank, cut in value.items():
        if rank in ROLLUP_RANKS and rank not in ANSWER_RANKS:
            problem = f"'rollup_thresholds.{rank}': an answer at {rank} rank is never sure; remove it"
            raise SpeciesInfoError(file, problem, field=f"rollup_thresholds.{rank}")
        if rank not in ANSWER_RANKS:
            problem = f"'rollup_thresholds' has unknown rank {_show(rank)} (ranks: {', '.join(ANSWER_RANKS)})"
            raise SpeciesInfoError(file, problem, field="rollup_thresholds")
        result[rank] = _fraction(file, f"rollup_thresholds.{rank}", cut)
    return result


def _fraction(file: str, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value <= 1.0:
        problem = f"'{where}' must be a number above 0 and at most 1 (got {_show(value)})"
        raise SpeciesInfoError(file, problem, field=where)
    return float(value)


# ---- small helpers ---------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A short one-line rendering of a YAML value for messages.

    Containers are named, never printed: YAML aliases can make a tiny file expand to a huge structure.
    """
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str) and len(value) > 60:
        return repr(value[:57]) + "..."
    return repr(value)[:60]


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _name(key: str) -> str:
    return key if key.isprintable() else repr(key)


def _one_line(text: str | None) -> str:
    return " ".join((text or "unknown error").split())


def _display(path: Path) -> str:
    # Folder and file name ("species_info/serengeti.yaml"): enough to find it, and shows no server paths.
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _normalise(text: str) -> str:
    text = re.sub(r"['’]", "", text.casefold())
    return " ".join(re.sub(r"[_-]", " ", text).split())


def _haystack(entry: SpeciesEntry) -> str:
    # "\n" separates names so a search cannot match across two of them.
    return "\n".join(_normalise(n) for n in (entry.key, entry.common_name, entry.scientific_name or ""))
