"""Which class-activation method `classifier.models.explain` uses: two sanity checks on every bundled model.

    .venv/bin/python benchmarks/explain_sanity.py                 # all methods, all bundles
    .venv/bin/python benchmarks/explain_sanity.py --quick         # fewer photos

(a) Model randomisation (Adebayo et al. 2018, "Sanity checks for saliency maps"): a heatmap that stays
the same when the model's weights are replaced by random ones shows the photo's edges and contrast, not
what the model learnt. Cascading, as the paper does: the head re-initialised, then also the top quarter
of the backbone's layers, then the whole network. Figure: the mean Spearman rank correlation between the
trained model's map and the randomised one's, cell by cell (lower is better; a map that does not change
at all scores 1). As the paper does, the absolute value decides: a map that turns into its negative
still shows the trained model's picture (the signed means are printed too, and would reward it). Also
the class check: the correlation between the maps for the model's first and
second class on the same photo (lower: the map depends on the class asked about).

(b) Where the animal is: on real camera-trap frames (../shared/data/camera_traps) with a box the animal
detector (MegadetectorLite) is sure of (at least 0.25), the share of the whole-frame heatmap's mass inside
the boxes, beside the boxes' share of the frame (what a uniform map would score), the "pointing game"
(the hottest point inside a box) and the share of frames with most of the mass inside. The serengeti
bundle on camera-trap frames (the field-guide frames it was trained on counted apart from the frames of
other projects it never saw); the otter bundle on its own web photos (most of them its training photos)
where the detector finds an otter.

The chosen method: of those whose maps change under every randomisation (mean absolute correlation
under `PASS_CORRELATION` at each stage, on every bundle), the one with the most mass inside the boxes on
the camera-trap frames the serengeti bundle never saw; within 0.01 of each other, the one whose maps
change most under randomisation (the lowest mean absolute correlation over bundles and stages). Also timed: each
method's milliseconds for one frame (serengeti bundle, median of 5). Prints the tables and writes
benchmarks/results/explain_sanity-<time>.json.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from classifier.intake.images import ImageError, load_photo  # noqa: E402
from classifier.models.bundles import load_learner, resolve_bundle  # noqa: E402
from classifier.models.detect import Detector  # noqa: E402
from classifier.models.explain import METHODS, heatmaps_by_method, prepared  # noqa: E402
from classifier.models.predict import Predictor  # noqa: E402
from classifier.models.runtimes import TORCH, CompiledNetwork, _Normalised, load_model  # noqa: E402

DATA = REPO.parent / "shared" / "data"
BOX_CONFIDENCE = 0.25
PASS_CORRELATION = 0.5
STAGES = ("head", "head + top quarter of the backbone", "whole network")
TRAINED_ON = "snapshot_serengeti_fieldguide"  # the serengeti bundle's training frames
UNSEEN, SEEN, OWN = "other projects (never seen)", "its training frames", "its own photos (mostly trained on)"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    if not DATA.is_dir():
        print(f"needs the real photos in {DATA}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    detector = Detector(confidence=BOX_CONFIDENCE)
    per_sample = 12 if args.quick else args.randomisation_photos
    randomisation, classes_check, boxes = [], [], []
    for name, photos in samples(args.quick).items():
        bundle = resolve_bundle(name)
        print(f"{name}: {len(photos)} photos", file=sys.stderr)
        predictor = Predictor(load_model(bundle, runtime=TORCH), top_k=2)
        randomisation += randomisation_check(bundle, predictor, photos[:per_sample])
        classes_check += class_check(predictor, photos[:per_sample])
        if name != "habitat":  # scenes: no animal to box
            boxes += box_check(name, predictor, detector, photos)
        if name == "serengeti":
            timings = time_methods(predictor, photos)
    tables = summarise(pd.DataFrame(randomisation), pd.DataFrame(classes_check), pd.DataFrame(boxes))
    tables["milliseconds for one frame (serengeti, median of 5)"] = pd.DataFrame({"ms": timings}).rename_axis(
        "method"
    )
    for title, table in tables.items():
        if isinstance(table, pd.DataFrame):
            print(f"\n{title}\n{table.to_string(float_format=lambda v: f'{v:.3f}')}")
    print(f"\nchosen: {tables['chosen']} ({tables['reason']}); {time.perf_counter() - started:.0f} s")
    from record import write_results

    write_results(
        "explain_sanity",
        {
            "benchmark": "explain_sanity",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "threads": args.threads,
            "chosen": tables["chosen"],
            "reason": tables["reason"],
            **{
                k: v.reset_index().to_dict("records")
                for k, v in tables.items()
                if isinstance(v, pd.DataFrame)
            },
        },
    )
    return 0


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    result.add_argument("--quick", action="store_true", help="a few photos per bundle")
    result.add_argument("--randomisation-photos", type=int, default=40, help="photos per bundle for (a)")
    result.add_argument("--threads", type=int, default=2)
    return result


def samples(quick: bool) -> dict[str, list[tuple[str, Path]]]:
    """(subset, path) per bundle: camera-trap frames (serengeti), web otters, Intel scenes (habitat),
    in a fixed shuffled order so the randomisation sample mixes subsets."""
    rng = np.random.default_rng(0)
    traps = pd.read_csv(DATA / "camera_traps" / "labels.csv")
    traps = traps[(traps["image_type"] == "camera_trap") & (traps["label"] != "empty")]
    otters = pd.read_csv(DATA / "otters" / "labels.csv")
    intel = pd.read_csv(DATA / "intel" / "labels.csv")
    intel = intel[intel["split"] == "valid"]
    found = {
        "serengeti": [
            (s, DATA / "camera_traps" / p) for s, p in zip(traps["subset"], traps["path"], strict=True)
        ],
        "otters": [("otters", DATA / "otters" / p) for p in otters["path"]],
        "habitat": [("intel", DATA / "intel" / p) for p in intel["path"]][:60],
    }
    for name, photos in found.items():
        order = rng.permutation(len(photos))
        found[name] = [photos[i] for i in order][: 40 if quick else None]
    return found


def pictures(photos, size: int):
    for subset, path in photos:
        try:
            yield subset, path, load_photo(path, target_size=size).image.convert("RGB")
        except ImageError:
            continue


# ---------------------------------------------------------------------------------------- (a) randomise


def randomised(network, stage: int):
    """A copy of the eager WildlifeNet with the head (stage 0), the head and the top quarter of the
    backbone's layers (1), or everything (2) re-initialised as training would start them."""
    copied = copy.deepcopy(network)
    layers = [m for m in copied.body.modules() if any(True for _ in m.parameters(recurse=False))]
    chosen = list(copied.head.modules())
    if stage == 1:
        chosen += layers[-max(1, len(layers) // 4) :]
    elif stage == 2:
        chosen += layers
    with torch.no_grad():
        for module in chosen:
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            if hasattr(module, "reset_running_stats"):
                module.reset_running_stats()
            for name, buffer in module.named_buffers(recurse=False):  # the ImageNet prior's classifier
                if buffer.is_floating_point() and name in ("weight", "bias"):
                    buffer.normal_(0, float(buffer.std()) or 0.01)
    return copied.eval()


def split(network) -> CompiledNetwork:
    return CompiledNetwork(_Normalised(network).eval(), network.head.eval()).eval()


def randomisation_check(bundle, predictor: Predictor, photos) -> list[dict]:
    learner = load_learner(bundle).model.eval()
    networks = [split(learner)] + [split(randomised(learner, stage)) for stage in range(len(STAGES))]
    rows = []
    for _, path, image in pictures(photos, bundle.image_size):
        batch = prepared(predictor, [image])
        maps = [heatmaps_by_method(n, batch, bundle.classes) for n in networks]
        trained_class = maps[0][METHODS[0]][0].label
        # The randomised networks are asked about the trained network's class, as the paper does.
        maps[1:] = [heatmaps_by_method(n, batch, bundle.classes, [trained_class]) for n in networks[1:]]
        for method in METHODS:
            original = maps[0][method][0].cells
            for stage, found in zip(STAGES, maps[1:], strict=True):
                rows.append(
                    {
                        "bundle": bundle.name,
                        "method": method,
                        "stage": stage,
                        "photo": path.name,
                        "spearman": spearman(original, found[method][0].cells),
                    }
                )
    return rows


def class_check(predictor: Predictor, photos) -> list[dict]:
    rows = []
    for _, path, image in pictures(photos, predictor.image_size):
        batch = prepared(predictor, [image])
        first = heatmaps_by_method(predictor.network, batch, predictor.classes)
        runner_up = predictor.classes[int(np.argsort(_probabilities(predictor, batch))[-2])]
        second = heatmaps_by_method(predictor.network, batch, predictor.classes, [runner_up])
        for method in METHODS:
            rows.append(
                {
                    "bundle": predictor.model.bundle.name,
                    "method": method,
                    "photo": path.name,
                    "spearman": spearman(first[method][0].cells, second[method][0].cells),
                }
            )
    return rows


def _probabilities(predictor: Predictor, batch) -> np.ndarray:
    with torch.inference_mode():
        return torch.softmax(predictor.network(batch), dim=1)[0].numpy()


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two maps' cells (ties ranked by their mean); a constant map against a varied
    one counts 0 (no relation), two constant maps 1 (nothing changed)."""
    x, y = _ranks(a.ravel()), _ranks(b.ravel())
    if x.std() == 0 or y.std() == 0:
        return 1.0 if x.std() == y.std() == 0 else 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    for value in np.unique(values):  # ties share their mean rank
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


# ------------------------------------------------------------------------------------- (b) inside boxes


def box_check(name: str, predictor: Predictor, detector: Detector, photos) -> list[dict]:
    rows = []
    size = max(detector.input_size, predictor.image_size)
    for subset, path, image in pictures(photos, size):
        found = [d for d in detector.detect_one(image) if d.detector_conf >= BOX_CONFIDENCE]
        if not found:
            continue
        mask = np.zeros((predictor.image_size, predictor.image_size), dtype=bool)
        side = predictor.image_size
        for d in found:
            x, y, w, h = d.bbox
            mask[round(y * side) : round((y + h) * side), round(x * side) : round((x + w) * side)] = True
        batch = prepared(predictor, [image])
        for method, [heatmap] in heatmaps_by_method(predictor.network, batch, predictor.classes).items():
            values = heatmap.values()
            total = float(values.sum())
            mass = float(values[mask].sum()) / total if total > 0 else 0.0
            peak = np.unravel_index(int(values.argmax()), values.shape)
            rows.append(
                {
                    "bundle": name,
                    "frames": OWN if name == "otters" else SEEN if subset == TRAINED_ON else UNSEEN,
                    "method": method,
                    "photo": path.name,
                    "mass": mass,
                    "area": float(mask.mean()),
                    "pointing": bool(mask[peak]) if total > 0 else False,
                    "most_inside": mass > 0.5,
                }
            )
    return rows


def time_methods(predictor: Predictor, photos) -> dict[str, float]:
    from classifier.models.explain import heatmaps

    _, _, image = next(pictures(photos, predictor.image_size))
    batch = prepared(predictor, [image])
    found = {}
    for method in METHODS:
        heatmaps(predictor.network, batch, predictor.classes, method=method)  # warm-up
        times = []
        for _ in range(5):
            started = time.perf_counter()
            heatmaps(predictor.network, batch, predictor.classes, method=method)
            times.append(1000 * (time.perf_counter() - started))
        found[method] = float(np.median(times))
    return found


# -------------------------------------------------------------------------------------------- summary


def summarise(randomisation: pd.DataFrame, classes: pd.DataFrame, boxes: pd.DataFrame) -> dict:
    randomisation = randomisation.assign(absolute=randomisation["spearman"].abs())
    by_stage, signed = (
        randomisation.pivot_table(index=["bundle", "method"], columns="stage", values=value, aggfunc="mean")[
            list(STAGES)
        ]
        for value in ("absolute", "spearman")
    )
    class_table = classes.pivot_table(index="method", columns="bundle", values="spearman", aggfunc="mean")
    box_table = boxes.groupby(["bundle", "frames", "method"])[
        ["mass", "area", "pointing", "most_inside"]
    ].mean()
    box_table["frames_counted"] = boxes.groupby(["bundle", "frames", "method"]).size()
    worst = by_stage.max(axis=1).groupby("method").max()
    strength = by_stage.mean(axis=1).groupby("method").mean()
    passing = [m for m in METHODS if worst[m] < PASS_CORRELATION]
    unseen = (
        boxes[(boxes["bundle"] == "serengeti") & (boxes["frames"] == UNSEEN)].groupby("method")["mass"].mean()
    )
    tables = {
        "randomisation (mean |Spearman|, trained vs randomised; decides)": by_stage,
        "randomisation (mean signed Spearman, for reference)": signed,
        "class check (mean Spearman, first vs second class)": class_table,
        "inside the detector's boxes": box_table,
    }
    if not passing:
        return {**tables, "chosen": None, "reason": "no method passed the randomisation check"}
    best = max(unseen[m] for m in passing)
    close = sorted((m for m in passing if unseen[m] >= best - 0.01), key=lambda m: strength[m])
    chosen = close[0]
    reason = (
        f"passes randomisation on every bundle and stage (worst mean |correlation| {worst[chosen]:.2f}, "
        f"mean {strength[chosen]:.2f}); mass inside the boxes on unseen camera-trap frames "
        f"{unseen[chosen]:.3f}, best of the passing methods {best:.3f}; passing: {', '.join(passing)}; "
        f"failing: {', '.join(m for m in METHODS if m not in passing) or 'none'}"
    )
    return {**tables, "chosen": chosen, "reason": reason}


if __name__ == "__main__":
    sys.exit(main())
