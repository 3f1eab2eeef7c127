"""Answers a person can trust: the frame's verdict and its cut-offs, measured on camera-trap frames from
projects the bundle never saw.

    python benchmarks/verdict.py [--model serengeti] [--data ../shared/data/camera_traps] [--target 0.9]
                                 [--bundle-figures]

The frames: every labelled camera-trap frame in `labels.csv` and `extra_labels.csv` except the field guide
the bundle was trained on (Snapshot Wisconsin and Chicago Wildlife Watch, USA; SpeciesNet's and
PyTorch-Wildlife's test frames, place not recorded; Snapshot Serengeti frames outside the field guide,
Tanzania; Chimp&See stills from West and Central African forest, place not recorded; camtrapR's Borneo
thumbnails, Malaysia). A frame's animal is *known* when the bundle has a class for it (`KNOWN`, and
`extra_labels.csv`'s `serengeti_label`), and every animal has the lineage its label tells (`LINEAGE`).

The detector and the classifier run once per frame (`Predictor.frame_evidence`, cached under
benchmarks/results by the model's hash); everything after them is `classifier.models.verdict`, run here
with each setting measured. Figures:
- **named right**: share of known-animal frames whose label is a right class (an answer "not sure" still
  names its best class), against the **model's own first guess** (the best class of the frame's evidence,
  no place and no taxonomy rule; `--no-rules`);
- **sure right**: share of `ok` answers on animal frames right at the rank they give, and the coverage
  (share of animal frames answered `ok`); answers at class rank or above must never be `ok`;
- the same with and without each project's country (the country must not lower "named right");
- blank frames left blank, animal frames kept; **counts**: the number of animals against a count made by
  eye on the 97 frames with several boxes whose animals could be counted (`COUNTED`; every other frame has
  one animal), for each box cut-off and merge overlap.

The cut-offs are chosen rank by rank on the frames of the other projects and judged on the project left
out (leave one project out), then chosen on all frames for the bundle: the class cut-off is the lowest
from which every higher one keeps class answers right `--target` of the time; `rollup_under` the largest
best-class score under which rolling up loses at most `NAMED_LOSS` of the right class names; each rank's
cut-off the lowest from which answers at that rank stay right `--target` of the time. Borneo's 100x75 px
thumbnails are judged but take no part in choosing (the issue's sets are full camera-trap frames).
Paste the printed `rollup_thresholds` and `rollup_under` into `species_info/<model>.yaml` and the class
cut-off into the bundle's `report.json` (`threshold.value`). `--bundle-figures` also writes the
leave-one-project-out figures into the bundle, `models/<model>/transfer.json`, where the model-performance
page shows them beside the field guide's (classifier/results/performance.py reads it).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image

from benchmarks.record import REPO, RESULTS, write_results
from benchmarks.serengeti_transfer import KNOWN, NEITHER
from classifier.intake.inputs import item_for_path
from classifier.knowledge.species import ANSWER_RANKS, find_species_book
from classifier.knowledge.taxonomy import label_parts
from classifier.models.bundles import detector_settings, resolve_bundle
from classifier.models.detect import Detector
from classifier.models.predict import Predictor
from classifier.models.runtimes import load_model
from classifier.models.verdict import Found, Rules, detected_row, rules_for
from classifier.results.performance import TRANSFER_FILE
from classifier.schema.rows import BLANK, OK, ROLLED_UP, Row

COUNTRY = {
    "snapshot_wisconsin_fieldguide": "USA",
    "chicago_wildlife_watch_fieldguide": "USA",
    "camtrapR_borneo": "MYS",
    "snapshot_serengeti_misc": "TZA",
    "snapshot_serengeti_tutorial_sequence": "TZA",
    "snapshot_serengeti_crops": "TZA",
}
PROJECT = {subset: "snapshot_serengeti" for subset in COUNTRY if subset.startswith("snapshot_serengeti")}
JUDGED_ONLY = {"camtrapR_borneo"}  # 100x75 px thumbnails: measured, never used to choose a cut-off
BLANK_LABELS = {"blank", "empty"}
NOT_ANIMALS = NEITHER | {"vehicle", "mower", "riding_mower"}
NAMED_LOSS = 0.01
GRID = [round(0.2 + 0.025 * i, 3) for i in range(32)]
UNDER_GRID = (0.1, 0.15, 0.2, 0.25, 0.3)
MIN_ANSWERS = 5
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
    # Chimp&See (extra_labels.csv): its duikers are forest duikers, its hyenas not told apart
    "chimpanzee": (*_M, "Primates", "Hominidae", "Pan", "Pan troglodytes"),
    "gorilla": (*_M, "Primates", "Hominidae", "Gorilla"),
    "pangolin": (*_M, "Pholidota", "Manidae"),
    "red_river_hog": (*_HOOFED, "Suidae", "Potamochoerus", "Potamochoerus porcus"),
    "giant_forest_hog": (*_HOOFED, "Suidae", "Hylochoerus", "Hylochoerus meinertzhageni"),
    "wild_dog": (*_CARNIVORE, "Canidae", "Lycaon", "Lycaon pictus"),
    "duiker": (*_HOOFED, "Bovidae"),
    "hyena": (*_CARNIVORE, "Hyaenidae"),
}
# Animals counted by eye in the frames with more than one box over the detector's threshold (2026-12-07);
# frames whose animals could not be told apart (flocks far away, a herd in one box) are left out.
COUNTED = {
    "camtrapR_borneo/leopard_cat/StationA_StationA__2009-04-23__00-09-00(1).JPG": 1,
    "camtrapR_borneo/leopard_cat/StationB_StationB__2009-04-07__00-23-00(1).JPG": 1,
    "camtrapR_borneo/leopard_cat/StationB_StationB__2009-04-10__04-08-00(1).JPG": 1,
    "camtrapR_borneo/leopard_cat/StationB_StationB__2009-04-14__06-13-00(1).JPG": 1,
    "camtrapR_borneo/leopard_cat/StationB_StationB__2009-04-25__04-33-00(2).JPG": 1,
    "camtrapR_borneo/leopard_cat/StationC_StationC__2009-04-18__22-57-00(1).JPG": 1,
    "camtrapR_borneo/leopard_cat/StationC_StationC__2009-05-07__18-47-00(1).JPG": 1,
    "camtrapR_borneo/moonrat/StationC_StationC__2009-05-02__03-36-00(1).JPG": 1,
    "camtrapR_borneo/mouse_deer/StationC_StationC__2009-04-11__21-44-00(1).JPG": 1,
    "camtrapR_borneo/mouse_deer/StationC_StationC__2009-04-13__22-38-00(2).JPG": 1,
    "camtrapR_borneo/mouse_deer/StationC_StationC__2009-04-24__19-27-00(1).JPG": 1,
    "camtrapR_borneo/mouse_deer/StationC_StationC__2009-04-27__00-20-00(1).JPG": 1,
    "camtrapR_borneo/mouse_deer/StationC_StationC__2009-05-02__00-11-00(1).JPG": 1,
    "camtrapR_borneo/mouse_deer/StationC_StationC__2009-05-12__02-32-00(1).JPG": 1,
    "camtrapR_borneo/pigtailed_macaque/StationB_StationB__2009-04-28__17-48-00(1).JPG": 1,
    "camtrapR_borneo/pigtailed_macaque/StationB_StationB__2009-04-28__17-49-00(1).JPG": 1,
    "camtrapR_borneo/pigtailed_macaque/StationB_StationB__2009-04-28__17-49-00(3).JPG": 1,
    "chicago_wildlife_watch_fieldguide/beaver/beaver-1.jpg": 1,
    "chicago_wildlife_watch_fieldguide/beaver/beaver-2.jpg": 1,
    "chicago_wildlife_watch_fieldguide/canada_goose/canada-goose-2.jpg": 2,
    "chicago_wildlife_watch_fieldguide/coyote/coyote-2.jpg": 1,
    "chicago_wildlife_watch_fieldguide/deer/deer-3.jpg": 1,
    "chicago_wildlife_watch_fieldguide/dom_cat/dom-cat-1.jpg": 1,
    "chicago_wildlife_watch_fieldguide/dom_dog/dom-dog-1.jpg": 1,
    "chicago_wildlife_watch_fieldguide/flying_squirrel/flying-squirrel-1.jpg": 1,
    "chicago_wildlife_watch_fieldguide/fox_squirrel/fox-squirrel-1.jpg": 1,
    "chicago_wildlife_watch_fieldguide/gray_fox/gray-fox-1.jpg": 1,
    "chicago_wildlife_watch_fieldguide/human/human-2.jpg": 1,
    "chicago_wildlife_watch_fieldguide/human/human-3.jpg": 1,
    "chicago_wildlife_watch_fieldguide/mink/mink-3.jpg": 1,
    "chicago_wildlife_watch_fieldguide/opossum/opossum-1.jpg": 1,
    "chicago_wildlife_watch_fieldguide/opossum/opossum-3.jpg": 1,
    "chicago_wildlife_watch_fieldguide/rabbit/rabbit-1.jpg": 1,
    "chicago_wildlife_watch_fieldguide/raccoon/raccoon-2.jpg": 1,
    "chicago_wildlife_watch_fieldguide/rat/rat-1.jpg": 1,
    "chicago_wildlife_watch_fieldguide/red_fox/red-fox-1.jpg": 1,
    "chicago_wildlife_watch_fieldguide/red_fox/red-fox-3.jpg": 1,
    "chicago_wildlife_watch_fieldguide/skunk/skunk-2.jpg": 1,
    "chicago_wildlife_watch_fieldguide/squirrel/squirrel-1.jpg": 1,
    "chicago_wildlife_watch_fieldguide/squirrel/squirrel-2.jpg": 1,
    "chimpandsee_fieldguide/buffalo/forest-buffalo-1.jpg": 3,
    "chimpandsee_fieldguide/buffalo/forest-buffalo-3.jpg": 3,
    "chimpandsee_fieldguide/chimpanzee/chimp-2.jpg": 1,
    "chimpandsee_fieldguide/chimpanzee/chimp-3.jpg": 2,
    "chimpandsee_fieldguide/duiker/dark-duiker-3.jpg": 1,
    "chimpandsee_fieldguide/duiker/red-duiker-3.jpg": 1,
    "chimpandsee_fieldguide/duiker/sm-gray-duiker-2.jpg": 1,
    "chimpandsee_fieldguide/elephant/elephant-2.jpg": 1,
    "chimpandsee_fieldguide/elephant/elephant-3.jpg": 2,
    "chimpandsee_fieldguide/giant_forest_hog/giant-forest-hog-1.jpg": 1,
    "chimpandsee_fieldguide/human/humans-1.jpg": 6,
    "chimpandsee_fieldguide/human/humans-3.jpg": 4,
    "chimpandsee_fieldguide/hyena/hyenas-2.jpg": 1,
    "chimpandsee_fieldguide/hyena/hyenas-3.jpg": 1,
    "chimpandsee_fieldguide/leopard/leopard-3.jpg": 1,
    "chimpandsee_fieldguide/lion/lion-1.jpg": 1,
    "chimpandsee_fieldguide/other_bird/bird-1.jpg": 1,
    "chimpandsee_fieldguide/pangolin/pangolin-1.jpg": 1,
    "chimpandsee_fieldguide/pangolin/pangolin-2.jpg": 1,
    "chimpandsee_fieldguide/pangolin/pangolin-3.jpg": 1,
    "chimpandsee_fieldguide/red_river_hog/red-river-hog-1.jpg": 1,
    "chimpandsee_fieldguide/reptile/reptiles-3.jpg": 1,
    "chimpandsee_fieldguide/rodent/rodent-1.jpg": 1,
    "chimpandsee_fieldguide/rodent/rodent-2.jpg": 1,
    "chimpandsee_fieldguide/warthog/warthog-1.jpg": 2,
    "chimpandsee_fieldguide/wild_dog/wild-dog-2.jpg": 1,
    "pytorchwildlife_demo/capybara/capybara.jpg": 1,
    "pytorchwildlife_demo/tamandua/tamandua2.jpg": 1,
    "snapshot_serengeti_crops/leopard/leopard___S1___H06___H06_R4___S1_H06_R4_PICT1296_0.JPG": 1,
    "snapshot_serengeti_tutorial_sequence/PICT0502.JPG": 1,
    "snapshot_wisconsin_fieldguide/badger_american/badger-american-3.jpg": 1,
    "snapshot_wisconsin_fieldguide/birds/birds-2.jpg": 1,
    "snapshot_wisconsin_fieldguide/chipmunks_and_squirrels/chipmunks-and-squirrels-4.jpg": 1,
    "snapshot_wisconsin_fieldguide/cottontail_eastern/cottontail-eastern-1.jpg": 1,
    "snapshot_wisconsin_fieldguide/cottontail_eastern/cottontail-eastern-2.jpg": 1,
    "snapshot_wisconsin_fieldguide/cottontail_eastern/cottontail-eastern-3.jpg": 1,
    "snapshot_wisconsin_fieldguide/coyote/coyote-1.jpg": 1,
    "snapshot_wisconsin_fieldguide/crane_sandhill/crane-sandhill-1.jpg": 3,
    "snapshot_wisconsin_fieldguide/crane_sandhill/crane-sandhill-2.jpg": 1,
    "snapshot_wisconsin_fieldguide/deer_white_tailed/deer-white-tailed-1.jpg": 2,
    "snapshot_wisconsin_fieldguide/dog_domestic/dog-domestic-1.jpg": 1,
    "snapshot_wisconsin_fieldguide/elk/elk-1.jpg": 2,
    "snapshot_wisconsin_fieldguide/elk/elk-2.jpg": 2,
    "snapshot_wisconsin_fieldguide/fox_gray/fox-gray-1.jpg": 1,
    "snapshot_wisconsin_fieldguide/grouse/grouse-1.jpg": 1,
    "snapshot_wisconsin_fieldguide/hare_snowshoe/hare-snowshoe-1.jpg": 1,
    "snapshot_wisconsin_fieldguide/hare_snowshoe/hare-snowshoe-2.jpg": 1,
    "snapshot_wisconsin_fieldguide/marten_american/marten-american-2.jpg": 1,
    "snapshot_wisconsin_fieldguide/mink_american/mink-american-2.jpg": 1,
    "snapshot_wisconsin_fieldguide/pig_feral/pig-feral-2.jpg": 2,
    "snapshot_wisconsin_fieldguide/pig_feral/pig-feral-3.jpg": 2,
    "snapshot_wisconsin_fieldguide/raccoon_northern/raccoon-northern-1.jpg": 1,
    "snapshot_wisconsin_fieldguide/raccoon_northern/raccoon-northern-3.jpg": 1,
    "speciesnet_test_data/african_elephants.jpg": 4,
    "speciesnet_test_data/domestic_cattle.jpg": 3,
    "speciesnet_test_data/domestic_dog.jpg": 1,
    "speciesnet_test_data/human.jpg": 1,
}


@dataclass
class Frame:
    path: str
    project: str
    country: str | None
    kind: str  # animal | blank
    right: frozenset[str]  # the bundle's classes that name its animal (empty: no class does)
    lineage: frozenset[str]  # the taxa above its animal
    found: list[Found]
    whole: np.ndarray
    best: float


def labelled_frames(data: Path) -> list[dict[str, str]]:
    """The rows of labels.csv and extra_labels.csv to judge, each with its right classes in `right`."""
    chosen = []
    for name in ("labels.csv", "extra_labels.csv"):
        for row in csv.DictReader((data / name).open(encoding="utf-8")):
            if row["subset"] == "snapshot_serengeti_fieldguide" or row["label"] in NOT_ANIMALS:
                continue
            if row["image_type"] not in ("camera_trap", "camera_trap_crop"):
                continue
            if "serengeti_label" in row:
                right = {c for c in row["serengeti_label"].split("|") if c}
            else:
                right = set(KNOWN.get(row["label"], ()))
            chosen.append(row | {"right": "|".join(sorted(right))})
    return chosen


def evidence(model_name: str, data: Path) -> tuple[Rules, list[Frame]]:
    """The bundle's rules as it ships them, and every frame's evidence (read from the cache when the model
    file and the frames are the same)."""
    bundle = resolve_bundle(model_name, REPO / "models")
    book = find_species_book(bundle.name)
    rows = labelled_frames(data)
    key = hashlib.sha256((str(bundle.model_sha256) + "".join(r["sha256"] for r in rows)).encode()).hexdigest()
    cache = RESULTS / f"verdict-evidence-{bundle.name}-{key[:16]}.json"
    if not cache.exists():
        predictor = Predictor(load_model(bundle), detector=Detector(**detector_settings(bundle)), workers=0)
        seen = {}
        for row in rows:
            decoded = predictor.decode(item_for_path(data / row["path"]))
            if decoded.pixels is not None:
                [frame] = predictor.frame_evidence([Image.fromarray(decoded.pixels)])
                boxes = [[list(b.bbox), b.confidence, b.probabilities.tolist()] for b in frame.found]
                seen[row["path"]] = {"boxes": boxes, "whole": frame.whole.tolist(), "best": frame.best}
        RESULTS.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(seen), encoding="utf-8")
    seen = json.loads(cache.read_text(encoding="utf-8"))
    book_lineage = {c: frozenset(n for _, n in e.lineage) for c, e in (book.entries if book else {}).items()}
    frames = []
    for row in rows:
        if row["path"] not in seen:
            continue
        right = frozenset(c for c in row["right"].split("|") if c)
        lineage = LINEAGE.get(row["label"]) or (book_lineage.get(min(right), ()) if right else ())
        s = seen[row["path"]]
        frames.append(
            Frame(
                path=row["path"],
                project=PROJECT.get(row["subset"], row["subset"]),
                country=COUNTRY.get(row["subset"]),
                kind="blank" if row["label"] in BLANK_LABELS else "animal",
                right=right,
                lineage=frozenset(lineage),
                found=[Found(tuple(b), c, np.array(p)) for b, c, p in s["boxes"]],
                whole=np.array(s["whole"]),
                best=s["best"],
            )
        )
    return rules_for(bundle, book), frames


def verdict(frame: Frame, rules: Rules, country: bool = True) -> Row:
    place = replace(rules, country=frame.country if country else None) if rules.book else rules
    return detected_row(Row(path=frame.path, status=OK), frame.found, frame.whole, frame.best, place)


def first_guess(frame: Frame, rules: Rules) -> str:
    """The model's own best class for the frame's evidence: no place, no taxonomy rule."""
    row = verdict(frame, replace(rules, book=None))
    return row.top_k[0][0] if row.top_k and row.observation_type != BLANK else row.label


def is_right(frame: Frame, row: Row) -> bool:
    """Right at the rank the row gives: a right class, or a taxon above the frame's animal."""
    if row.label in frame.right:
        return True
    taxon = (label_parts(row.label) or (row.label, ""))[0]
    return rolled_up(row) and taxon in frame.lineage


def rolled_up(row: Row) -> bool:
    return row.decision is not None and row.decision.rule == ROLLED_UP


def judge(frames: Iterable[Frame], rules: Rules) -> dict:
    """The figures of one setting on some frames (see the module docstring)."""
    return judge_each((frame, rules) for frame in frames)


def judge_each(judged: Iterable[tuple[Frame, Rules]]) -> dict:
    """The figures of frames each judged with its own rules (leave one project out pools them)."""
    named, first, named_no_place, sure, blanks, kept, class_rank_sure = [], [], [], [], [], [], 0
    for frame, rules in judged:
        row = verdict(frame, rules)
        if frame.kind == "blank":
            blanks.append(row.observation_type == BLANK)
            continue
        kept.append(row.observation_type != BLANK)
        if frame.right:
            named.append(row.label in frame.right)
            first.append(first_guess(frame, rules) in frame.right)
            named_no_place.append(verdict(frame, rules, country=False).label in frame.right)
        if row.status == OK and row.observation_type != BLANK:
            sure.append(is_right(frame, row))
            class_rank_sure += rolled_up(row) and row.rank in ("class", "phylum")
    return {
        "known_frames": len(named),
        "named_right": _share(named),
        "first_guess": _share(first),
        "named_right_without_country": _share(named_no_place),
        "sure": len(sure),
        "sure_right": _share(sure),
        "coverage": round(len(sure) / len(kept), 3) if kept else 0.0,
        "class_rank_sure": class_rank_sure,
        "blank_left_blank": _share(blanks),
        "animal_frames_kept": _share(kept),
    }


def counts(frames: list[Frame], shipped: Rules) -> list[dict]:
    """Count accuracy for each box cut-off and merge overlap, on frames whose animals are known in number."""
    judged = [f for f in frames if f.kind == "animal" and (f.path in COUNTED or len(f.found) == 1)]
    results = []
    for sure_box in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6):
        for same_animal in (1.01, 0.8, 0.6, 0.5):
            rules = replace(shipped, sure_box=sure_box, same_animal=same_animal)
            got = [(verdict(f, rules).detections, COUNTED.get(f.path, 1)) for f in judged]
            number = [len(d or ()) for d, _ in got]
            truth = [t for _, t in got]
            several = [n == t for n, t, f in zip(number, truth, judged, strict=True) if f.path in COUNTED]
            results.append(
                {
                    "sure_box": sure_box,
                    "same_animal": same_animal,
                    "frames": len(judged),
                    "exact": _share([n == t for n, t in zip(number, truth, strict=True)]),
                    "over": _share([n > t for n, t in zip(number, truth, strict=True)]),
                    "under": _share([n < t for n, t in zip(number, truth, strict=True)]),
                    "exact_with_several_boxes": _share(several),
                }
            )
    return results


def choose(frames: list[Frame], rules: Rules, target: float) -> Rules:
    """The cut-offs (see the module docstring), chosen on `frames`."""
    animals = [f for f in frames if f.kind == "animal" and f.project not in JUDGED_ONLY]
    species = _lowest_steady(
        lambda cut: (_sure_answers(animals, _cuts(rules, cut, {}, None), "species"), True), target
    )
    species = 1.0 if species is None else species
    named = judge(animals, _cuts(rules, species, {}, None))["named_right"]
    candidates = [_cuts(rules, species, {}, None)]
    for under in UNDER_GRID:
        ranks: dict[str, float] = {}
        for rank in ANSWER_RANKS[1:]:

            def at(
                cut: float, rank: str = rank, ranks: dict = ranks, under: float = under
            ) -> tuple[list, bool]:
                tried = _cuts(rules, species, {**ranks, rank: cut}, under)
                keeps_names = judge(animals, tried)["named_right"] >= named - NAMED_LOSS
                return _sure_answers(animals, tried, rank), keeps_names

            cut = _lowest_steady(at, target)
            if cut is not None:
                ranks[rank] = cut
        candidates.append(_cuts(rules, species, ranks, under))
    return max(candidates, key=lambda c: judge(animals, c)["sure"])


def _sure_answers(frames: list[Frame], rules: Rules, rank: str) -> list[bool]:
    """Whether each sure answer at `rank` is right (a class answer is at rank "species")."""
    rows = [(f, verdict(f, rules)) for f in frames]
    answered = [(f, r) for f, r in rows if r.status == OK and r.observation_type != BLANK]
    return [is_right(f, r) for f, r in answered if (r.rank if rolled_up(r) else "species") == rank]


def _cuts(rules: Rules, species: float, ranks: dict[str, float], under: float | None) -> Rules:
    book = replace(rules.book, rollup_thresholds=dict(ranks), rollup_under=under) if rules.book else None
    return replace(rules, threshold=species, book=book)


def _lowest_steady(trial: Callable[[float], tuple[list[bool], bool]], target: float = 0.9) -> float | None:
    """The lowest cut-off from which every higher one keeps its answers right `target` of the time and
    keeps the names (`trial(cut)`: whether each answer is right, whether the right names stay); a cut-off
    with fewer than MIN_ANSWERS answers does not count against it. None if none has enough answers."""
    chosen = None
    for cut in reversed(GRID):
        answers, keeps_names = trial(cut)
        if len(answers) >= MIN_ANSWERS and (np.mean(answers) < target or not keeps_names):
            break
        if len(answers) >= MIN_ANSWERS:
            chosen = cut
    return chosen


def leave_one_project_out(frames: list[Frame], rules: Rules, target: float) -> dict:
    """Each project judged with the cut-offs chosen on the others; pooled figures as if one batch."""
    projects, pooled = {}, []
    for project in sorted({f.project for f in frames}):
        chosen = choose([f for f in frames if f.project != project], rules, target)
        held = [f for f in frames if f.project == project]
        projects[project] = {"cuts": _described(chosen), **judge(held, chosen)}
        pooled += [(f, chosen) for f in held if f.project not in JUDGED_ONLY]
    return {"projects": projects, "pooled": judge_each(pooled)}


def _described(rules: Rules) -> dict:
    book = rules.book
    return {
        "class": rules.threshold,
        "rollup_under": book.rollup_under if book else None,
        "rollup_thresholds": dict(book.rollup_thresholds) if book else {},
    }


def _share(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 3) if flags else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="serengeti")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "camera_traps")
    parser.add_argument("--target", type=float, default=0.9, help="share of sure answers right (default 0.9)")
    parser.add_argument(
        "--bundle-figures",
        action="store_true",
        help="also write models/<model>/transfer.json (off by default)",
    )
    args = parser.parse_args()
    shipped, frames = evidence(args.model, args.data)
    judged = [f for f in frames if f.project not in JUDGED_ONLY]
    results = {
        "frames": len(frames),
        "as_shipped": judge(judged, shipped),
        "boxes_as_before": judge(judged, replace(shipped, sure_box=0.0, same_animal=1.01)),
        "counts": counts(frames, shipped),
        "leave_one_project_out": leave_one_project_out(frames, shipped, args.target),
        "chosen_on_all": _described(choose(frames, shipped, args.target)),
    }
    report(results)
    write_results(f"verdict-{args.model}", results)
    if args.bundle_figures:
        bundle = resolve_bundle(args.model, REPO / "models")
        path = bundle.directory / TRANSFER_FILE
        path.write_text(json.dumps(bundle_figures(results), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path.relative_to(REPO)}")


# Where each project's frames come from, for a reader of the bundle's figures.
PLACES = {
    "chicago_wildlife_watch_fieldguide": "Chicago Wildlife Watch, USA",
    "snapshot_wisconsin_fieldguide": "Snapshot Wisconsin, USA",
    "chimpandsee_fieldguide": "Chimp&See, West and Central African forest",
    "snapshot_serengeti": "Snapshot Serengeti frames outside the field guide, Tanzania",
    "speciesnet_test_data": "SpeciesNet's test frames (LILA), place not recorded",
    "pytorchwildlife_demo": "PyTorch-Wildlife's demo frames, place not recorded",
    "camtrapR_borneo": "camtrapR's Borneo thumbnails (100x75 px), Malaysia",
}


def bundle_figures(results: dict) -> dict:
    """What the bundle keeps of a run: the pooled leave-one-project-out figures and each project's."""
    lopo = results["leave_one_project_out"]
    kept = ("known_frames", "named_right", "first_guess", "sure", "sure_right", "coverage")
    return {
        "about": "Camera-trap frames of projects this bundle never saw, each project judged with cut-offs chosen "
        "on the others (leave one project out): `named_right` is the share of frames of an animal the bundle "
        "has a class for whose shown label names it; `sure_right` the share of sure (`ok`) answers right at "
        "the rank they give; `coverage` the share of animal frames answered sure.",
        "command": "python benchmarks/verdict.py --bundle-figures",
        "measured": datetime.now(UTC).date().isoformat(),
        "frames": results["frames"],
        "pooled": {key: lopo["pooled"][key] for key in kept},
        "pooled_leaves_out": sorted(JUDGED_ONLY),
        "projects": {
            name: {"place": PLACES.get(name, name), **{key: figures[key] for key in kept}}
            for name, figures in lopo["projects"].items()
        },
    }


def report(results: dict) -> None:
    def line(name: str, f: dict) -> None:
        print(
            f"{name}: named right {f['named_right']:.3f} (first guess {f['first_guess']:.3f}, without country "
            f"{f['named_right_without_country']:.3f}) on {f['known_frames']} known frames; sure right "
            f"{f['sure_right']:.3f} on {f['sure']} ({f['coverage']:.1%} of animal frames); "
            f"class-rank sure {f['class_rank_sure']}"
            + (
                f"; blanks blank {f['blank_left_blank']:.3f}, animals kept {f['animal_frames_kept']:.3f}"
                if "blank_left_blank" in f
                else ""
            )
        )

    print(f"{results['frames']} frames")
    line("as shipped (the bundle's and the notes' cut-offs)", results["as_shipped"])
    line("as shipped, boxes as before (every box leads and counts, none merged)", results["boxes_as_before"])
    print("counts (box cut-off, merge overlap: exact / over / under; exact where several boxes):")
    for c in results["counts"]:
        print(
            f"  {c['sure_box']:.2f} {c['same_animal']:.2f}: {c['exact']:.3f} / {c['over']:.3f} / {c['under']:.3f};"
            f" {c['exact_with_several_boxes']:.3f}"
        )
    lopo = results["leave_one_project_out"]
    for project, f in lopo["projects"].items():
        line(f"  {project} {f['cuts']}", f)
    line("leave one project out, pooled (Borneo's thumbnails apart)", lopo["pooled"])
    print("chosen on all frames:", results["chosen_on_all"])


if __name__ == "__main__":
    main()
