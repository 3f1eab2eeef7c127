"""Where and what: the geofence and taxonomic rollup on camera-trap frames from other places.

    python benchmarks/geography.py [--model serengeti] [--data ../shared/data/camera_traps] [--target 0.9]
                                   [--cache probabilities.json]

The frames are those of `benchmarks/serengeti_transfer.py` (the field-guide frames the bundle was trained
on are left out), each with the country its project worked in: Snapshot Wisconsin and Chicago Wildlife
Watch `USA`, camtrapR's Borneo sample `MYS`, the Snapshot Serengeti frames outside the field guide `TZA`.
SpeciesNet's and PyTorch-Wildlife's frames come from places this folder does not record: they take part
without a country (rollup only). Blank frames and vehicles are no animal and are left out.

It measures, with the bundle's own pipeline (the detector first, when its report names one; a frame
called blank then names no class):
- **unknown species** (animals the bundle has no class for): the share that comes out `uncertain`,
  `unknown` or rolled up above species, rather than named as a confident wrong class. Reported literally
  (any answer above species counts) and strictly (an answer above species counts only when it is right);
- **in-range known frames** (the animal has a class and that class lives in the frame's country): the
  share answered right and `ok`, without and with the rules (a loss of at most 2 points is the target);
- **right at some rank** on every animal frame: the answer is the true class or a taxon above the true
  animal; plain top-1 beside it.
Four pipelines are compared: plain (today's top class), the geofence alone (renormalised), geofence then
rollup of the renormalised probabilities, and what ships (`classifier.knowledge.taxonomy.decide`): geofence, then
rollup of the model's own probabilities with the removed classes counted only from family up.

The rollup thresholds are chosen here, one rank at a time from genus up (the class cut-off stays the
bundle's): the lowest cut-off from 0.5 whose answers at that rank are right at least `--target` of the time
on these frames, where at least 3 frames reach it. Because they are chosen on the frames they are judged
on, the figures are also given leave-one-project-out (thresholds chosen without the project judged), which
is what a new place should expect. Paste the printed `rollup_thresholds` into `species_info/<model>.yaml`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.record import REPO, write_results
from benchmarks.serengeti_transfer import KNOWN, frames
from classifier.knowledge.geography import geofence
from classifier.knowledge.species import ROLLUP_RANKS, SpeciesBook, find_species_book
from classifier.knowledge.taxonomy import OK, Rollup, decide, rollup

COUNTRY = {
    "snapshot_wisconsin_fieldguide": "USA",
    "chicago_wildlife_watch_fieldguide": "USA",
    "camtrapR_borneo": "MYS",
    "snapshot_serengeti_misc": "TZA",
    "snapshot_serengeti_tutorial_sequence": "TZA",
}
CLASSES: list[str] = []  # the bundle's classes, set once the model is read
NOT_ANIMALS = {"blank", "empty", "vehicle", "mower", "riding_mower"}
_M, _B = ("Mammalia",), ("Aves",)
_CARNIVORE, _HOOFED, _RODENT = (*_M, "Carnivora"), (*_M, "Artiodactyla"), (*_M, "Rodentia")
_SQUIRREL = (*_RODENT, "Sciuridae")
# The taxa above each label's animal, as far as the label tells (a "mouse" is only a rodent).
LINEAGE: dict[str, tuple[str, ...]] = {
    "human": (*_M, "Primates", "Hominidae", "Homo", "Homo sapiens"),
    "domestic_cattle": (*_HOOFED, "Bovidae", "Bos", "Bos taurus"),
    "livestock": _M,
    "cheetah": (*_CARNIVORE, "Felidae", "Acinonyx", "Acinonyx jubatus"),
    "african_elephant": (*_M, "Proboscidea", "Elephantidae", "Loxodonta"),
    "wildebeest;zebra": (
        *_M,
        *("Artiodactyla", "Bovidae", "Connochaetes", "Connochaetes taurinus"),
        *("Perissodactyla", "Equidae", "Equus", "Equus quagga"),
    ),
    "birds": _B,
    "bird": _B,
    "canada_goose": (*_B, "Anseriformes", "Anatidae", "Branta", "Branta canadensis"),
    "crane_sandhill": (*_B, "Gruiformes", "Gruidae", "Antigone", "Antigone canadensis"),
    "turkey_wild": (*_B, "Galliformes", "Phasianidae", "Meleagris", "Meleagris gallopavo"),
    "grouse": (*_B, "Galliformes", "Phasianidae"),
    "cottontail_eastern": (*_M, "Lagomorpha", "Leporidae", "Sylvilagus", "Sylvilagus floridanus"),
    "rabbit": (*_M, "Lagomorpha", "Leporidae", "Sylvilagus"),
    "hare_snowshoe": (*_M, "Lagomorpha", "Leporidae", "Lepus", "Lepus americanus"),
    "chipmunks_and_squirrels": _SQUIRREL,
    "chipmunk": (*_SQUIRREL, "Tamias", "Tamias striatus"),
    "squirrel": _SQUIRREL,
    "gray_squirrel": (*_SQUIRREL, "Sciurus", "Sciurus carolinensis"),
    "melanistic_gray_squirrel": (*_SQUIRREL, "Sciurus", "Sciurus carolinensis"),
    "fox_squirrel": (*_SQUIRREL, "Sciurus", "Sciurus niger"),
    "flying_squirrel": (*_SQUIRREL, "Glaucomys"),
    "woodchuck": (*_SQUIRREL, "Marmota", "Marmota monax"),
    "mouse": _RODENT,
    "rat": (*_RODENT, "Muridae", "Rattus"),
    "muskrat": (*_RODENT, "Cricetidae", "Ondatra", "Ondatra zibethicus"),
    "beaver": (*_RODENT, "Castoridae", "Castor", "Castor canadensis"),
    "porcupine_north_american": (*_RODENT, "Erethizontidae", "Erethizon", "Erethizon dorsatum"),
    "capybara": (*_RODENT, "Caviidae", "Hydrochoerus", "Hydrochoerus hydrochaeris"),
    "badger_american": (*_CARNIVORE, "Mustelidae", "Taxidea", "Taxidea taxus"),
    "bear_black": (*_CARNIVORE, "Ursidae", "Ursus", "Ursus americanus"),
    "american_black_bear": (*_CARNIVORE, "Ursidae", "Ursus", "Ursus americanus"),
    "bobcat": (*_CARNIVORE, "Felidae", "Lynx", "Lynx rufus"),
    "cat_domestic": (*_CARNIVORE, "Felidae", "Felis", "Felis catus"),
    "dom_cat": (*_CARNIVORE, "Felidae", "Felis", "Felis catus"),
    "cougar": (*_CARNIVORE, "Felidae", "Puma", "Puma concolor"),
    "ocelot": (*_CARNIVORE, "Felidae", "Leopardus", "Leopardus pardalis"),
    "leopard_cat": (*_CARNIVORE, "Felidae", "Prionailurus", "Prionailurus bengalensis"),
    "coyote": (*_CARNIVORE, "Canidae", "Canis", "Canis latrans"),
    "wolf_gray": (*_CARNIVORE, "Canidae", "Canis", "Canis lupus"),
    "dog_domestic": (*_CARNIVORE, "Canidae", "Canis", "Canis familiaris"),
    "dom_dog": (*_CARNIVORE, "Canidae", "Canis", "Canis familiaris"),
    "domestic_dog": (*_CARNIVORE, "Canidae", "Canis", "Canis familiaris"),
    "fox_gray": (*_CARNIVORE, "Canidae", "Urocyon", "Urocyon cinereoargenteus"),
    "gray_fox": (*_CARNIVORE, "Canidae", "Urocyon", "Urocyon cinereoargenteus"),
    "fox_red": (*_CARNIVORE, "Canidae", "Vulpes", "Vulpes vulpes"),
    "red_fox": (*_CARNIVORE, "Canidae", "Vulpes", "Vulpes vulpes"),
    "fisher": (*_CARNIVORE, "Mustelidae", "Pekania", "Pekania pennanti"),
    "marten_american": (*_CARNIVORE, "Mustelidae", "Martes", "Martes americana"),
    "mink_american": (*_CARNIVORE, "Mustelidae", "Neogale", "Neogale vison"),
    "mink": (*_CARNIVORE, "Mustelidae", "Neogale", "Neogale vison"),
    "otter": (*_CARNIVORE, "Mustelidae", "Lontra", "Lontra canadensis"),
    "weasel": (*_CARNIVORE, "Mustelidae", "Mustela"),
    "raccoon_northern": (*_CARNIVORE, "Procyonidae", "Procyon", "Procyon lotor"),
    "raccoon": (*_CARNIVORE, "Procyonidae", "Procyon", "Procyon lotor"),
    "skunk_striped": (*_CARNIVORE, "Mephitidae", "Mephitis", "Mephitis mephitis"),
    "skunk": (*_CARNIVORE, "Mephitidae", "Mephitis", "Mephitis mephitis"),
    "malay_civet": (*_CARNIVORE, "Viverridae", "Viverra", "Viverra tangalunga"),
    "deer_white_tailed": (*_HOOFED, "Cervidae", "Odocoileus", "Odocoileus virginianus"),
    "deer": (*_HOOFED, "Cervidae", "Odocoileus", "Odocoileus virginianus"),
    "elk": (*_HOOFED, "Cervidae", "Cervus", "Cervus canadensis"),
    "pig_feral": (*_HOOFED, "Suidae", "Sus", "Sus scrofa"),
    "mouse_deer": (*_HOOFED, "Tragulidae", "Tragulus"),
    "horse": (*_M, "Perissodactyla", "Equidae", "Equus", "Equus caballus"),
    "opossum_virginia": (*_M, "Didelphimorphia", "Didelphidae", "Didelphis", "Didelphis virginiana"),
    "opossum": (*_M, "Didelphimorphia", "Didelphidae", "Didelphis", "Didelphis virginiana"),
    "moonrat": (*_M, "Eulipotyphla", "Erinaceidae", "Echinosorex", "Echinosorex gymnura"),
    "pigtailed_macaque": (*_M, "Primates", "Cercopithecidae", "Macaca", "Macaca nemestrina"),
    "tamandua": (*_M, "Pilosa", "Myrmecophagidae", "Tamandua"),
}


@dataclass
class Frame:
    path: str
    label: str
    project: str
    country: str | None
    accepted: set[str]  # the bundle's classes that are a right answer (empty: no class for it)
    lineage: set[str]  # the scientific names above the true animal
    probabilities: tuple[float, ...] = ()
    in_range: bool = True  # for known frames: a right class lives in the frame's country
    removed: tuple[str, ...] = field(default=())


# ---- the pipelines compared --------------------------------------------------------------------------


def plain(frame: Frame, classes: list[str], book: SpeciesBook, cuts: dict[str, float]) -> Rollup:
    """Today's answer: the top class, `ok` at the class cut-off."""
    return rollup(frame.probabilities, classes, book, {"species": cuts["species"]})


def geofence_only(frame: Frame, classes: list[str], book: SpeciesBook, cuts: dict[str, float]) -> Rollup:
    fenced = geofence(frame.probabilities, classes, book, frame.country)
    return rollup(fenced.probabilities, classes, book, {"species": cuts["species"]})


def renormalised(frame: Frame, classes: list[str], book: SpeciesBook, cuts: dict[str, float]) -> Rollup:
    """Geofence, renormalise, then roll up: the removed classes' probability goes to those left."""
    fenced = geofence(frame.probabilities, classes, book, frame.country)
    return rollup(fenced.probabilities, classes, book, cuts)


def passed_up(frame: Frame, classes: list[str], book: SpeciesBook, cuts: dict[str, float]) -> Rollup:
    """What ships (`classifier.knowledge.taxonomy.decide`): removed classes never answered, counted from family up."""
    return decide(frame.probabilities, classes, book, frame.country, cuts)


PIPELINES: dict[str, Callable] = {
    "plain": plain,
    "geofence": geofence_only,
    "geofence+rollup, renormalised": renormalised,
    "geofence+rollup, removed pass up": passed_up,
}
CHOSEN = "geofence+rollup, removed pass up"


# ---- judging one answer ------------------------------------------------------------------------------


def is_right_class(answer: Rollup, frame: Frame) -> bool:
    return answer.status == OK and not answer.rolled_up and answer.label in frame.accepted


def is_right_at_some_rank(answer: Rollup, frame: Frame) -> bool:
    """`ok`, and the true class or a taxon above the true animal (a class's own taxon counts)."""
    return answer.status == OK and (answer.label in frame.accepted or answer.taxon in frame.lineage)


def is_not_confidently_wrong(answer: Rollup, frame: Frame, strict: bool) -> bool:
    """For an animal with no class: uncertain, unknown, or above species (and right, when `strict`)."""
    if answer.status != OK:
        return True
    above = answer.rank not in ("species", "")
    return is_right_at_some_rank(answer, frame) if strict else above


# ---- figures -----------------------------------------------------------------------------------------


def figures(answers: list[tuple[Frame, Rollup]]) -> dict:
    unknown = [(f, a) for f, a in answers if not f.accepted]
    known = [(f, a) for f, a in answers if f.accepted]
    in_range = [(f, a) for f, a in known if f.country and f.in_range]
    geo_unknown = [(f, a) for f, a in unknown if f.country]
    ranks = {}
    for _, a in answers:
        key = a.rank if a.status == OK else "uncertain"
        ranks[key] = ranks.get(key, 0) + 1
    return {
        "frames": len(answers),
        "known_frames": len(known),
        "known_top1": _share([_top(f) in f.accepted for f, _ in known]),
        "known_right_ok": _share([is_right_class(a, f) for f, a in known]),
        "right_class": _share([is_right_class(a, f) for f, a in answers]),
        "right_at_some_rank": _share([is_right_at_some_rank(a, f) for f, a in answers]),
        "answered_ok": _share([a.status == OK for _, a in answers]),
        "unknown_species_frames_with_country": len(geo_unknown),
        "unknown_not_confidently_wrong": _share(
            [is_not_confidently_wrong(a, f, False) for f, a in geo_unknown]
        ),
        "unknown_not_confidently_wrong_strict": _share(
            [is_not_confidently_wrong(a, f, True) for f, a in geo_unknown]
        ),
        "in_range_known_frames": len(in_range),
        "in_range_right_ok": _share([is_right_class(a, f) for f, a in in_range]),
        "answers_by_rank": ranks,
    }


def _top(frame: Frame) -> str:
    return CLASSES[max(range(len(frame.probabilities)), key=frame.probabilities.__getitem__)]


def _share(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 3) if flags else 0.0


# ---- choosing the thresholds -------------------------------------------------------------------------

# A rollup answer must be more likely than not (a taxon at 0.4 leaves 0.6 for the others), so cut-offs
# start at 0.5. The class cut-off ("species") stays the bundle's: moving it would change every plain answer.
CANDIDATES = [round(0.05 * i, 2) for i in range(10, 21)]
MIN_SUPPORT = 3


def choose_thresholds(
    frames_: list[Frame], classes: list[str], book: SpeciesBook, class_cut: float, target: float
) -> tuple[dict[str, float], list[dict]]:
    """Per rank from genus up: the lowest cut-off whose answers at that rank are right >= `target`.

    Each rank is chosen with the ranks below it fixed, on the answers that reach it; a rank that no cut-off
    makes right often enough (on at least MIN_SUPPORT frames) gets none, and is never answered.
    """
    cuts: dict[str, float] = {"species": class_cut}
    sweep = []
    for rank in ROLLUP_RANKS[1:]:
        for cut in CANDIDATES:
            trial = {**cuts, rank: cut}
            answers = [(f, passed_up(f, classes, book, trial)) for f in frames_]
            at_rank = [(f, a) for f, a in answers if a.rolled_up and a.rank == rank]
            right = _share([is_right_at_some_rank(a, f) for f, a in at_rank])
            sweep.append({"rank": rank, "threshold": cut, "answers": len(at_rank), "right": right})
            if len(at_rank) >= MIN_SUPPORT and right >= target and rank not in cuts:
                cuts[rank] = cut
    return cuts, sweep


# ---- running -----------------------------------------------------------------------------------------


def load_frames(data: Path, book: SpeciesBook) -> list[Frame]:
    result = []
    for row in frames(data):
        if row["label"] in NOT_ANIMALS:
            continue
        label, country = row["label"], COUNTRY.get(row["subset"])
        accepted = KNOWN.get(label, set())
        lineage = set(LINEAGE[label])
        entries = [book.get(c) for c in accepted]
        in_range = not country or any(e and (not e.range or e.range.allows(country)) for e in entries)
        result.append(
            Frame(row["path"], label, row["subset"], country, set(accepted), lineage, in_range=in_range)
        )
    return result


def predict(model_name: str, data: Path, frames_: list[Frame], cache: Path | None) -> tuple[list[str], float]:
    """Fill in each frame's class probabilities; `cache` (JSON) keeps them for the next run."""
    if cache and cache.exists():
        saved = json.loads(cache.read_text())
    else:
        from classifier.models.bundles import load_model, resolve_bundle
        from classifier.models.detect import detector_for
        from classifier.models.predict import Predictor

        bundle = resolve_bundle(model_name, REPO / "models")
        predictor = Predictor(load_model(bundle), detector=detector_for(bundle), top_k=3)
        rows = predictor.predict_many([data / f.path for f in frames_])
        # A frame called blank (the detector's pipeline) names no class: all zeros, which the rules answer
        # `unknown`, as they would a frame whose place leaves no class.
        zeros = [0.0] * len(predictor.classes)
        probs = {str(Path(row.path).relative_to(data)): list(row.probabilities) or zeros for row in rows}
        saved = {"classes": list(predictor.classes), "threshold": predictor.threshold, "probs": probs}
        if cache:
            cache.write_text(json.dumps(saved))
    for f in frames_:
        f.probabilities = tuple(saved["probs"][f.path])
    CLASSES[:] = saved["classes"]
    return saved["classes"], saved["threshold"]


def evaluate(frames_: list[Frame], classes: list[str], book: SpeciesBook, cuts: dict[str, float]) -> dict:
    return {
        name: figures([(f, run(f, classes, book, cuts)) for f in frames_]) for name, run in PIPELINES.items()
    }


def leave_one_project_out(
    frames_: list[Frame], classes: list[str], book: SpeciesBook, class_cut: float, target: float
) -> dict:
    answers, chosen = [], {}
    for project in sorted({f.project for f in frames_}):
        rest = [f for f in frames_ if f.project != project]
        cuts, _ = choose_thresholds(rest, classes, book, class_cut, target)
        chosen[project] = cuts
        answers += [(f, passed_up(f, classes, book, cuts)) for f in frames_ if f.project == project]
    return {"thresholds_by_held_out_project": chosen, **figures(answers)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="serengeti")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "camera_traps")
    parser.add_argument(
        "--target", type=float, default=0.9, help="share right an answer at a rank must reach"
    )
    parser.add_argument(
        "--cache", type=Path, help="JSON of the model's probabilities: read if there, else written"
    )
    args = parser.parse_args()
    book = find_species_book(args.model)
    frames_ = load_frames(args.data, book)
    classes, class_cut = predict(args.model, args.data, frames_, args.cache)
    cuts, sweep = choose_thresholds(frames_, classes, book, class_cut, args.target)
    results = {
        "model": args.model,
        "target": args.target,
        "thresholds": cuts,
        "pipelines": evaluate(frames_, classes, book, cuts),
        "leave_one_project_out": leave_one_project_out(frames_, classes, book, class_cut, args.target),
        "sweep": sweep,
        "frames": [
            {
                "file": f.path,
                "truth": f.label,
                "country": f.country,
                **_answer(passed_up(f, classes, book, cuts)),
            }
            for f in frames_
        ],
    }
    report(results)
    write_results(f"geography-{args.model}", results)


def _answer(a: Rollup) -> dict:
    return {"label": a.label, "rank": a.rank, "confidence": round(a.confidence, 4), "status": a.status}


def report(results: dict) -> None:
    plain_ = results["pipelines"]["plain"]
    print(
        f"{results['model']}: {plain_['frames']} animal frames, {plain_['known_frames']} of a species it has a "
        f"class for (plain top-1 {plain_['known_top1']:.1%}, right and ok {plain_['known_right_ok']:.1%})"
    )
    print(f"thresholds chosen for {results['target']:.0%} right:")
    print(
        "rollup_thresholds:\n" + "".join(f"  {rank}: {cut}\n" for rank, cut in results["thresholds"].items())
    )
    for name, fig in [
        *results["pipelines"].items(),
        ("leave one project out", results["leave_one_project_out"]),
    ]:
        print(
            f"  {name}: unknown species not confidently wrong {fig['unknown_not_confidently_wrong']:.1%} "
            f"(strict {fig['unknown_not_confidently_wrong_strict']:.1%}, "
            f"{fig['unknown_species_frames_with_country']} frames); in-range right and ok "
            f"{fig['in_range_right_ok']:.1%} ({fig['in_range_known_frames']} frames); right class "
            f"{fig['right_class']:.1%}, right at some rank {fig['right_at_some_rank']:.1%} "
            f"({fig['frames']} frames); by rank {fig['answers_by_rank']}"
        )


if __name__ == "__main__":
    main()
