"""Taxonomic rollup: when no class is sure enough, answer the lowest rank that is, by summed probability.

A model that has no class for the animal in front of it (a coyote shown to a Serengeti model) spreads its
probability over the classes that look alike: jackal, bat-eared fox, hyena. None clears the cut-off, but
together they may say "dog family (Canidae)" or "carnivore (Carnivora)" with confidence. `rollup` sums
the classes' probabilities up the taxonomy in the species notes (`taxonomy:` of each class, common names
from `taxa:`) and answers:

1. the top class, when its probability reaches `thresholds["species"]` (the class cut-off);
2. else a species two classes share (the lion's two), when their sum reaches that cut-off;
3. else, when no class is a plausible answer (the best scores under the notes' `rollup_under`), from genus
   up through family to order, the first rank where the best taxon's summed probability reaches that rank's
   threshold;
4. else the top class, `uncertain`: a person should look.

A sum over many classes is not surer than one class: most of the serengeti bundle's classes are mammals,
so spread-out probability always adds up to "mammal". So the class rank is never an answer (only the
`group` a "not sure" answer mentions), each rank has its own measured cut-off, and a class that is a
plausible answer is not traded for a group: "not sure: impala?" tells a person more than "even-toed
hoofed mammal", and on the frames `benchmarks/verdict.py` measures, rolled-up answers over a plausible
class cost right species answers without being right more often.

The thresholds are measured, not guessed: `benchmarks/verdict.py` picks them on camera-trap frames
from other projects and stores them in the notes (`rollup_thresholds:`, `rollup_under:`). A rank without
a threshold is never answered. Classes without taxonomy (habitat scenes, notes missing) only ever answer
as themselves.

With a place, `decide` runs the geofence first and rolls up the model's own probabilities with the
removed classes passed as `removed`: they are never answered, and their probability counts only for their
family and the ranks above (`PASS_UP_FROM`), because an animal that looks like a jackal where no jackal
lives is likely a relative that does live there, like a coyote. Rolling up the geofence's renormalised
probabilities instead hands the jackal's share to whatever classes are left (people, rodents) and makes
confident wrong answers of them: measured (2026-11, serengeti bundle, frames from the USA and Borneo of
animals it has no class for), 33.5% came out other than a confident wrong answer that way, 87.3% with the
removed probability passed up, 57.6% with neither rule.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from classifier.knowledge.geography import UNKNOWN, parse_country
from classifier.knowledge.species import ANSWER_RANKS, ROLLUP_RANKS, SpeciesBook

OK, UNCERTAIN = "ok", "uncertain"
# The lowest rank a removed class's probability still counts for. Its species and genus live elsewhere;
# families, orders and classes span continents (cats, dogs and antelopes live in Kenya and the USA alike).
PASS_UP_FROM = "family"
MOST_LIKELY = 0.5  # a group holding more than half the probability is what a "not sure" answer names


@dataclass(frozen=True)
class Rollup:
    """The answer after rollup: a class of the model, or a taxon above it."""

    label: str  # the class ("zebra"), a taxon with its common name ("cat (Felidae)"), or "unknown"
    rank: str  # species|genus|family|order|class (phylum for insect-spider); "" without taxonomy
    taxon: str | None  # the scientific name answered; None for a class without taxonomy
    confidence: float  # the class's probability, or the taxon's summed probability
    status: str  # ok | uncertain
    candidates: tuple[tuple[str, float], ...]  # the model's classes under the answer, best first
    rolled_up: bool  # True when the answer is a taxon above the top class, not the class itself
    geofenced: str | None = None  # the model's best class, when the place ruled it out (set by `decide`)
    removed: tuple[str, ...] = ()  # every class the place ruled out (set by `decide`)
    # For a "not sure" answer, the lowest group above the class holding most of the probability:
    # (rank, label, summed probability), e.g. ("class", "mammal (Mammalia)", 0.94); None if none does.
    group: tuple[str, str, float] | None = None


def decide(
    probabilities: Sequence[float],
    classes: Sequence[str],
    book: SpeciesBook | None,
    country: str | None,
    thresholds: Mapping[str, float],
) -> Rollup:
    """The place and taxonomy rules as the pipeline runs them: geofence, then rollup.

    Without a country this is `rollup` alone. With one, the classes that do not live there are never
    answered (their probability still counts from family up); `geofenced` names the model's best class
    when it was one of them, and the label is "unknown" when the place leaves no class at all. A country
    that is no ISO 3166-1 alpha-3 code raises `GeographyError` (one line).
    """
    fenced = geofence(probabilities, classes, book, country)
    answer = rollup(probabilities, classes, book, thresholds, removed=fenced.removed)
    return replace(answer, geofenced=fenced.geofenced, removed=fenced.removed)


def thresholds_for(book: SpeciesBook | None, class_threshold: float) -> dict[str, float]:
    """The notes' measured cut-offs per rank, with the bundle's own cut-off for its classes ("species").

    The bundle's report is the authority on its classes' cut-off (a retrained model brings its own); the
    notes carry the ranks above, measured by `benchmarks/verdict.py`.
    """
    return {**(book.rollup_thresholds if book else {}), "species": class_threshold}


def lineages(classes: Sequence[str], book: SpeciesBook | None) -> list[tuple[tuple[str, str], ...]]:
    """Each class's (rank, name) pairs from the notes, top down, down to what the class stands for
    (`represents`); () for a class without taxonomy."""
    entries = [book.get(c) if book else None for c in classes]
    return [e.lineage if e else () for e in entries]


def taxon_label(name: str, book: SpeciesBook | None) -> str:
    """ "cat (Felidae)" when the notes give the taxon a common name, else the scientific name alone."""
    common = book.taxa.get(name) if book else None
    return f"{common} ({name})" if common else name


# What `taxon_label` writes: "cat (Felidae)", or the scientific name alone ("Felidae", "Panthera leo").
_TAXON_LABEL = re.compile(
    r"(?:(?P<common>.*\S)\s*\((?P<inner>[A-Z][a-z]+(?: [a-z]+)?)\))|(?P<alone>[A-Z][a-z]+(?: [a-z]+)?)"
)


def label_parts(label: str) -> tuple[str, str] | None:
    """(scientific name, common name) of a rolled-up answer's label, as `taxon_label` wrote it; None for a
    label that is not one ("zebra")."""
    match = _TAXON_LABEL.fullmatch(label.strip())
    return (match["inner"] or match["alone"], match["common"] or "") if match else None


def rollup(
    probabilities: Sequence[float],
    classes: Sequence[str],
    book: SpeciesBook | None,
    thresholds: Mapping[str, float],
    removed: Collection[str] = (),
) -> Rollup:
    """The answer for one photo's class probabilities (in `classes` order); see the module docstring.

    `thresholds` maps rank to cut-off (`thresholds_for` builds it from the notes and the bundle); a rank
    without one is never answered, and without "species" the top class is never `ok` on its own.
    """
    if len(probabilities) != len(classes):
        raise ValueError(f"{len(probabilities)} probabilities for {len(classes)} classes")
    cuts = {rank: cut for rank, cut in thresholds.items() if rank in ANSWER_RANKS}
    lines = lineages(classes, book)
    allowed = [i for i, c in enumerate(classes) if c not in removed and probabilities[i] > 0]
    if not allowed:
        return Rollup(UNKNOWN, "", None, 0.0, UNCERTAIN, (), False)
    top = max(allowed, key=lambda i: probabilities[i])
    answer = _class_answer(top, probabilities, classes, lines, OK)
    if "species" in cuts and probabilities[top] >= cuts["species"]:
        return answer
    plausible = book is not None and book.rollup_under is not None and probabilities[top] >= book.rollup_under
    for rank in ANSWER_RANKS:
        if rank in cuts and not (plausible and rank != "species"):
            found = _best_taxon(rank, probabilities, classes, lines, removed)
            if found and found[1] >= cuts[rank]:
                return _taxon_answer(rank, *found, probabilities, classes, lines, book, removed)
    unsure = _class_answer(top, probabilities, classes, lines, UNCERTAIN)
    return replace(unsure, group=_most_likely_group(probabilities, classes, lines, book, removed))


def _most_likely_group(
    p: Sequence[float],
    classes: Sequence[str],
    lines: list,
    book: SpeciesBook | None,
    removed: Collection[str],
) -> tuple[str, str, float] | None:
    """The lowest rank above species whose best taxon holds most of the probability, for "not sure" words."""
    for rank in ROLLUP_RANKS[1:]:
        found = _best_taxon(rank, p, classes, lines, removed)
        if found and found[1] > MOST_LIKELY:
            return rank, taxon_label(found[0], book), found[1]
    return None


def _class_answer(i: int, p: Sequence[float], classes: Sequence[str], lines: list, status: str) -> Rollup:
    rank, taxon = lines[i][-1] if lines[i] else ("", None)
    return Rollup(classes[i], rank, taxon, float(p[i]), status, ((classes[i], float(p[i])),), False)


def _counts(i: int, rank: str, classes: Sequence[str], removed: Collection[str]) -> bool:
    """Whether class i's probability counts for its taxon at `rank`."""
    return classes[i] not in removed or ROLLUP_RANKS.index(rank) >= ROLLUP_RANKS.index(PASS_UP_FROM)


def _best_taxon(
    rank: str, p: Sequence[float], classes: Sequence[str], lines: list, removed: Collection[str]
) -> tuple[str, float] | None:
    """The taxon at `rank` with the most summed probability, and that sum (first in class order on ties)."""
    mass: dict[str, float] = {}
    for i, line in enumerate(lines):
        name = dict(line).get(rank)
        if name and _counts(i, rank, classes, removed):
            mass[name] = mass.get(name, 0.0) + float(p[i])
    return max(mass.items(), key=lambda item: item[1]) if mass else None


def _taxon_answer(
    rank: str,
    name: str,
    mass: float,
    p: Sequence[float],
    classes: Sequence[str],
    lines: list,
    book: SpeciesBook | None,
    removed: Collection[str],
) -> Rollup:
    under = [i for i, line in enumerate(lines) if dict(line).get(rank) == name and classes[i] not in removed]
    candidates = tuple(sorted(((classes[i], float(p[i])) for i in under if p[i] > 0), key=lambda c: -c[1]))
    return Rollup(taxon_label(name, book), rank, name, mass, OK, candidates, True)


# ---- the geofence: which classes live in a country ----------------------------------------------


@dataclass(frozen=True)
class GeofenceResult:
    """Class probabilities after the place rules; `probabilities` follow the bundle's class order."""

    probabilities: tuple[float, ...]  # removed classes 0.0, the others renormalised to sum to 1
    removed: tuple[str, ...]  # classes whose range leaves out the country, in class order
    geofenced: str | None  # the best class before the geofence, when the geofence removed it
    country: str | None
    kept: float  # share of the model's probability on classes that live there, before renormalising

    @property
    def unknown(self) -> bool:
        """True when the place leaves no class with any probability: the answer is `unknown`."""
        return self.kept <= 0.0

    def best(self, classes: Sequence[str]) -> tuple[str, float]:
        """The best class left and its renormalised probability, or ("unknown", 0.0)."""
        if self.unknown:
            return UNKNOWN, 0.0
        i = int(np.argmax(self.probabilities))
        return classes[i], self.probabilities[i]


def geofence(
    probabilities: Sequence[float], classes: Sequence[str], book: SpeciesBook | None, country: str | None
) -> GeofenceResult:
    """Remove the classes that do not live in `country` (alpha-3, any case) and renormalise the rest."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape != (len(classes),):
        raise ValueError(f"{p.size} probabilities for {len(classes)} classes")
    code = parse_country(country) if country is not None else None
    removed = out_of_range(classes, book, code) if code else []
    keep = np.array([c not in removed for c in classes], dtype=bool)
    kept = float(p[keep].sum())
    after = np.where(keep, p, 0.0) / kept if kept > 0 else np.zeros_like(p)
    best = classes[int(np.argmax(p))] if len(classes) else None
    return GeofenceResult(
        probabilities=tuple(float(v) for v in after),
        removed=tuple(removed),
        geofenced=best if best in removed else None,
        country=code,
        kept=kept,
    )


def out_of_range(classes: Sequence[str], book: SpeciesBook | None, country: str) -> list[str]:
    """The classes whose range in the notes leaves out `country` (alpha-3), in class order."""
    if book is None:
        return []
    entries = [book.get(c) for c in classes]
    return [c for c, e in zip(classes, entries, strict=True) if e and e.range and not e.range.allows(country)]
