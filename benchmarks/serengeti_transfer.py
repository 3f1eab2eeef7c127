"""How the serengeti bundle does on camera-trap frames it was not trained on, from other places.

    python benchmarks/serengeti_transfer.py [--model serengeti] [--data ../shared/data/camera_traps]
        [--margins 0,0.15,0.3]

The field-guide photos it was trained on are left out. Every other frame in `labels.csv` is either
- *known*: its animal is one of the bundle's classes, perhaps as a group (a Wisconsin chipmunk is
  `rodents`, a Chicago goose `other-bird`, a SpeciesNet elephant `elephant`); `KNOWN` lists the mapping.
  Figures: top-1 and top-3, and how many right answers stay `ok` (not `uncertain`);
- *unknown*: a species the bundle has no class for: bear, capybara, ocelot, Bornean and North American
  species. Figure: the share that comes out `uncertain`, as it should;
- *blank*: no animal (SpeciesNet blanks, Chicago `empty`). Figure: the share called `blank`.
Deliberately broken copies and photos flagged `photo_or_uncertain` are left out. A sweep over cut-offs
shows the trade-off the bundle's threshold makes. Each run measures the whole-frame pipeline and the
detector pipeline (each animal classified on its crop; with `--margins`, several crop margins) side by
side, on the same frames.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.record import REPO, write_results
from classifier.models.bundles import detector_settings, resolve_bundle
from classifier.models.detect import Detector
from classifier.models.predict import Predictor
from classifier.models.runtimes import load_model

# The bundle's class -> labels in labels.csv whose animal it is (perhaps as part of a group).
RIGHT_ANSWERS: dict[str, tuple[str, ...]] = {
    "cheetah": ("cheetah",),
    "elephant": ("african_elephant",),
    "cattle": ("domestic_cattle", "livestock"),
    "human": ("human",),
    "reptiles": ("amphibians_and_reptiles",),
    "porcupine": ("porcupine_north_american",),
    "other-bird": (
        "birds",
        "bird",
        "canada_goose",
        "crane_sandhill",
        "crane_whooping",
        "turkey_wild",
        "grouse",
        "pheasant_ring_necked",
    ),
    "hare": ("cottontail_eastern", "hare_snowshoe", "jackrabbit_white_tailed", "rabbit"),
    "rodents": (
        "chipmunks_and_squirrels",
        "chipmunk",
        "squirrel",
        "gray_squirrel",
        "fox_squirrel",
        "mouse",
        "rat",
        "flying_squirrel",
        "melanistic_gray_squirrel",
        "woodchuck",
        "muskrat",
        "beaver",
        "beaver_american",
    ),
}
# Label in labels.csv -> the bundle's classes that are a right answer for it.
KNOWN: dict[str, set[str]] = {
    "wildebeest;zebra": {"wildebeest", "zebra"},
    **{label: {name} for name, labels in RIGHT_ANSWERS.items() for label in labels},
}
# Not animals the bundle could name, but not a wrong species either: left out of both sets.
NEITHER = {"unknown", "unidentified", "other_domestic"}
SKIPPED_SUBSETS = {"snapshot_serengeti_fieldguide"}
SWEEP = (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
BLANK_LABELS = {"blank", "empty"}  # frames with no animal: with a detector, `blank` is their right answer


def frames(data: Path) -> list[dict[str, str]]:
    rows = csv.DictReader((data / "labels.csv").open(encoding="utf-8"))
    return [
        row
        for row in rows
        if row["subset"] not in SKIPPED_SUBSETS
        and row["image_type"] == "camera_trap"
        and row["label"] not in NEITHER
    ]


def measure(model_name: str, data: Path, detector: Detector | None, margin: float | None = None) -> dict:
    """The bundle's answers on the frames; with `detector`, each frame's is its surest animal's crop's."""
    model = load_model(resolve_bundle(model_name, REPO / "models"))
    predictor = Predictor(model, detector=detector, top_k=3, crop_margin=margin)
    rows = frames(data)
    predictions = {row.path: row for row in predictor.predict_many([data / r["path"] for r in rows])}
    known, unknown, blanks = [], [], []
    for row in rows:
        result = predictions[str(data / row["path"])]
        if not result.label:
            continue  # a file that does not decode is not a judgement of the model
        answers = KNOWN.get(row["label"])
        guesses = [label for label, _ in result.top_k]
        entry = {
            "file": row["path"],
            "truth": row["label"],
            "top_k": guesses,
            "confidence": result.confidence,
            "observation_type": result.observation_type,
        }
        if row["label"] in BLANK_LABELS:
            blanks.append(entry)
        elif answers is None:
            unknown.append(entry)
        else:
            called = result.label if result.label == "blank" else guesses[0]
            known.append({**entry, "right": called in answers, "top3": bool(answers & set(guesses))})
    figures = summarise(known, unknown, predictor.threshold, model.bundle.name)
    boxed = [k["observation_type"] != "blank" for k in known + unknown]
    return figures | {
        "pipeline": "detector + crops" if detector else "whole frame",
        "crop_margin": predictor.crop_margin if detector else None,
        "blank_frames": len(blanks),
        "blank_called_blank": _share([b["observation_type"] == "blank" for b in blanks]),
        "animal_frames_boxed": _share(boxed) if detector else None,
    }


def summarise(known: list[dict], unknown: list[dict], threshold: float, name: str) -> dict:
    def at(cut: float) -> dict:
        right = [k for k in known if k["right"]]
        return {
            "threshold": cut,
            "right_answers_ok": _share([k["confidence"] >= cut for k in right]),
            "wrong_answers_uncertain": _share([k["confidence"] < cut for k in known if not k["right"]]),
            "unknown_uncertain": _share([u["confidence"] < cut for u in unknown]),
        }

    return {
        "model": name,
        "known_frames": len(known),
        "unknown_frames": len(unknown),
        "top1": _share([k["right"] for k in known]),
        "top3": _share([k["top3"] for k in known]),
        "at_bundle_threshold": at(threshold),
        "sweep": [at(cut) for cut in SWEEP],
        "known": known,
        "unknown": unknown,
    }


def _share(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 3) if flags else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="serengeti")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "camera_traps")
    parser.add_argument(
        "--margins",
        type=lambda text: [float(v) for v in text.split(",")],
        default=None,
        help="crop margins to compare, e.g. 0,0.15,0.3 (default: the bundle's own)",
    )
    args = parser.parse_args()
    detector = Detector(**(detector_settings(resolve_bundle(args.model, REPO / "models")) or {}))
    runs = [measure(args.model, args.data, None)]  # the whole-frame baseline, in the same run
    runs += [measure(args.model, args.data, detector, margin) for margin in args.margins or [None]]
    for figures in runs:
        report(figures)
    write_results(f"serengeti_transfer-{runs[0]['model']}", {"runs": runs})


def report(figures: dict) -> None:
    t = figures["at_bundle_threshold"]
    margin = f", crop margin {figures['crop_margin']:.2f}" if figures["crop_margin"] is not None else ""
    print(
        f"{figures['model']} ({figures['pipeline']}{margin}): {figures['known_frames']} known frames: "
        f"top-1 {figures['top1']:.1%}, top-3 {figures['top3']:.1%}; at its threshold {t['threshold']:.2f}: "
        f"right answers ok {t['right_answers_ok']:.1%}, wrong answers uncertain "
        f"{t['wrong_answers_uncertain']:.1%}; {figures['unknown_frames']} unknown-species frames uncertain "
        f"{t['unknown_uncertain']:.1%}; {figures['blank_frames']} blank frames called blank "
        f"{figures['blank_called_blank']:.1%}"
        + (
            f"; animal frames boxed {figures['animal_frames_boxed']:.1%}"
            if figures["animal_frames_boxed"]
            else ""
        )
    )
    for point in figures["sweep"]:
        print(
            f"  cut-off {point['threshold']:.2f}: right ok {point['right_answers_ok']:.1%}, "
            f"wrong uncertain {point['wrong_answers_uncertain']:.1%}, "
            f"unknown uncertain {point['unknown_uncertain']:.1%}"
        )


if __name__ == "__main__":
    main()
