"""Scientific names and taxonomy of the labels, from the species notes (`load_taxa`), for the exports."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from classifier.intake.images import one_line
from classifier.knowledge.taxonomy import label_parts
from classifier.schema.predictions_file import ExportError
from classifier.schema.rows import RANKS

# -------------------------------------------------------------------------------------- species taxonomy


@dataclass(frozen=True)
class Taxon:
    common_name: str = ""
    scientific_name: str = ""  # the notes' `scientific_name` (species: a binomial; groups: a higher taxon)
    taxonomy: dict[str, str] = field(default_factory=dict)  # class, order, family, genus, species

    def name_and_rank(self, rank: str = "") -> tuple[str, str]:
        """The scientific name to publish and its rank ('' when unknown).

        With `taxonomy`: the most specific rank it gives (or `rank`, when a row was rolled up to it);
        `species` may be the epithet ("quagga") or the binomial ("Equus quagga"). Without: the notes'
        `scientific_name`, rank unknown.
        """
        t = self.taxonomy
        if t:
            wanted = RANKS[RANKS.index(rank) :] if rank in RANKS else RANKS
            for level in wanted:
                name = t.get(level, "")
                if not name:
                    continue
                if level == "species" and " " not in name:
                    if not t.get("genus"):
                        continue
                    name = f"{t['genus']} {name}"
                return name, level
        return self.scientific_name, ""


def label_taxon(label: str, rank: str, taxa: Mapping[str, Taxon]) -> tuple[str, str, str]:
    """(scientific name, rank, English name) a row's label stands for; empty strings where unknown.

    A label of the notes is named by its taxonomy at the row's `rank` (`Taxon.name_and_rank`); a rolled-up
    answer is a taxon above the classes ("cat (Felidae)", rank family), named by its label.
    """
    taxon = taxa.get(label)
    if taxon is not None:
        name, found = taxon.name_and_rank(rank)
        return name, found, taxon.common_name if (name, found) == taxon.name_and_rank() else ""
    parts = label_parts(label)
    if rank in RANKS[1:] and parts:
        return parts[0], rank, parts[1]
    return "", "", ""


def taxonomic_entry(name: str, rank: str, common: str, taxa: Mapping[str, Taxon]) -> dict[str, object]:
    """A Camtrap DP `taxonomic` entry: name, rank, the ranks above it from the notes, the English name."""
    entry: dict[str, object] = {"scientificName": name}
    if rank:
        entry["taxonRank"] = rank
    above = RANKS[RANKS.index(rank) + 1 :] if rank in RANKS else ()
    lineage = next((t.taxonomy for t in taxa.values() if rank and _names(t, rank) == name), {})
    entry |= {
        level: lineage[level]
        for level in ("class", "order", "family", "genus")
        if level in above and level in lineage
    }
    if common:
        entry["vernacularNames"] = {"eng": common}
    return entry


def _names(taxon: Taxon, rank: str) -> str:
    return taxon.name_and_rank(rank)[0] if taxon.name_and_rank(rank)[1] == rank else ""


def load_taxa(
    labels: Iterable[str], species: str | Path | None = None, *, root: str | Path | None = None
) -> tuple[dict[str, Taxon], str]:
    """Scientific names and taxonomy for `labels` from species notes, and the notes file used ('' if none).

    `species` is a notes file or a bundle name; by default every `root/*.yaml` is tried (root: the
    species_info folder, or WILDLIFE_SPECIES_DIR) and the one that knows the most labels is used. Only
    `common_name`, `scientific_name`, `taxonomy` and `represents` are read, so notes of a newer layout
    still work.
    """
    root = Path(root or os.environ.get("WILDLIFE_SPECIES_DIR") or _species_dir())
    wanted = set(labels)
    if species is not None:
        text = str(species)
        path = Path(text) if text.endswith((".yaml", ".yml")) or os.sep in text else root / f"{text}.yaml"
        if not path.is_file():
            raise ExportError(f"species notes {text}: no such file ({path}).")
        return _read_taxa(path, strict=True), str(path)
    best: tuple[int, str, dict[str, Taxon]] = (0, "", {})
    for path in sorted(root.glob("*.yaml")) if root.is_dir() else ():
        taxa = _read_taxa(path, strict=False)
        known = len(wanted & taxa.keys())
        if known > best[0]:
            best = (known, str(path), taxa)
    return best[2], best[1]


def _species_dir() -> Path:
    from classifier.knowledge.species import SPECIES_DIR

    return SPECIES_DIR


def _read_taxa(path: Path, *, strict: bool) -> dict[str, Taxon]:
    try:
        # libyaml's loader when present: the serengeti notes load in 0.03 s instead of 0.3 s.
        data = yaml.load(
            path.read_text(encoding="utf-8-sig"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        if strict:
            raise ExportError(f"species notes {path}: cannot be read ({one_line(str(exc))}).") from None
        return {}
    species = data.get("species") if isinstance(data, dict) else None
    if not isinstance(species, dict):
        if strict:
            raise ExportError(f"species notes {path}: no 'species' mapping of class name to entry.")
        return {}
    taxa = {}
    for key, entry in species.items():
        if not isinstance(key, str) or not isinstance(entry, dict):
            continue
        taxonomy = entry.get("taxonomy")
        taxonomy = (
            {
                k: str(v).strip()
                for k, v in taxonomy.items()
                if k in RANKS and isinstance(v, str) and v.strip()
            }
            if isinstance(taxonomy, dict)
            else {}
        )
        represents = _text_field(entry, "represents")
        if (
            represents in taxonomy.values()
        ):  # the class stands for that taxon: name it, not its photos' species
            taxonomy = dict(list(taxonomy.items())[: list(taxonomy.values()).index(represents) + 1])
        taxa[key] = Taxon(
            common_name=_text_field(entry, "common_name"),
            scientific_name=_text_field(entry, "scientific_name"),
            taxonomy=taxonomy,
        )
    return taxa


def _text_field(entry: dict, key: str) -> str:
    value = entry.get(key)
    return value.strip() if isinstance(value, str) else ""
