"""MegadetectorLite on the real camera-trap frames: empty frames left empty, animals boxed, and its speed.

    .venv/bin/python benchmarks/detector.py              # everything below, ~45 min on 2 free cores
    .venv/bin/python benchmarks/detector.py --quick      # 416 and 640 px, every 4th frame, 5 speed runs
    .venv/bin/python benchmarks/detector.py --sizes 640 --variants RGB --no-speed   # one setting's quality

Over ../shared/data/camera_traps/labels.csv (the `camera_trap_modified` copies, re-encodings of a frame
already counted, are left out), each frame decoded as the app decodes it (`load_photo` at a reduced scale
for the input size), at input sizes 416, 512, 640 and 800, fed as RGB (as zamba feeds it) and as BGR
(as YOLOX's own code reads images), at confidence thresholds 0.02-0.5:
1. empty frames (SpeciesNet `blank`, Chicago `empty`) with no box: target >= 0.90;
2. animal frames with at least one box, in all, without the 100x75 camtrapR thumbnails, and per subset:
   target >= 0.97; frames of people, vehicles (and mowers) and `unknown`/`unidentified` ones are counted
   apart, as information;
3. RGB against BGR: on how many colour animal frames each order gives the higher best score (this is how
   `classifier.models.yolox.CHANNEL_ORDER` was chosen);
4. speed of one 12-megapixel JPEG (a real frame upscaled to 4000x3000 in memory): end to end (decode at
   a reduced scale, fit to the input size, network, NMS) and the network alone, medians, with torch on
   1 thread and on 2.
Prints the figures and writes them with the machine to benchmarks/results/detector[-quick]-<time>.json
(gitignored). No image is ever copied into the project.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from record import write_results

REPO = Path(__file__).resolve().parents[1]
CAMERA_TRAPS = REPO.parent / "shared" / "data" / "camera_traps"
SIZES = (416, 512, 640, 800)
THRESHOLDS = (0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
TARGETS = {"empty_without_box": 0.90, "animal_with_box": 0.97}
EMPTY = {"blank", "empty"}
PEOPLE = {"human"}
VEHICLES = {"vehicle", "mower", "riding_mower"}
UNKNOWN = {"unknown", "unidentified"}
# What the network is fed: channel order, and whether frames smaller than the input are enlarged.
VARIANTS = {
    "RGB": ("RGB", False),
    "BGR": ("BGR", False),
    "RGB-enlarged": ("RGB", True),
    "BGR-enlarged": ("BGR", True),
}
KINDS = ("animal", "empty", "human", "vehicle", "unknown")
THUMBNAIL_SIDE = 150
BIG_SOURCE = "speciesnet_test_data/african_elephants.jpg"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sys.path.insert(0, str(REPO))
    import torch

    from classifier.models.detect import Detector

    if not (CAMERA_TRAPS / "labels.csv").is_file():
        print(f"needs the real frames in {CAMERA_TRAPS}", file=sys.stderr)
        return 2
    torch.set_num_threads(2)
    frames = _frames(step=4 if args.quick else 1)
    sizes = tuple(args.sizes or ((416, 640) if args.quick else SIZES))
    from classifier.models.detect import load_network

    detector = Detector(confidence=min(THRESHOLDS), runtime="torch")
    detector.network = load_network()  # the eager network: this benchmark feeds it every input size
    results: dict = {
        "benchmark": "detector",
        "quick": args.quick,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_average_at_start": os.getloadavg(),
        },
        "frames": {kind: sum(f["kind"] == kind for f in frames) for kind in KINDS},
        "thumbnails": f"animal frames under {THUMBNAIL_SIDE} px on their short side (camtrapR's 100x75)",
        "targets": TARGETS,
        "defaults": {"channel_order": detector.channel_order, "enlarge_small": detector.enlarge_small},
        "quality": {},
    }
    for size in sizes:
        scores = _top_scores(detector, frames, size, args.variants)
        results["quality"][str(size)] = {
            variant: _quality(frames, scores[variant], size, variant) for variant in args.variants
        }
        if {"RGB", "BGR"} <= set(args.variants):
            results["quality"][str(size)]["channels"] = _channels(frames, scores, size)
    results["frame_paths"] = [f["path"] for f in frames]
    results["meeting_targets"] = _meeting_targets(results["quality"])
    print("\n(size, channels, threshold, empty, animal, animal w/o thumbnails) meeting both targets:")
    print(results["meeting_targets"] or "none")
    results["meeting_targets_but_thumbnails"] = _meeting_targets(results["quality"], "animal_but_thumbnails")
    print("the same, thumbnails aside:", results["meeting_targets_but_thumbnails"] or "none")
    if not args.no_speed:
        results["speed"] = _speed(detector, sizes, runs=5 if args.quick else 15)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    write_results("detector-quick" if args.quick else "detector", results)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes, frames and runs")
    parser.add_argument("--sizes", type=int, nargs="+", help=f"input sizes (default {SIZES})")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=tuple(VARIANTS),
        default=["RGB", "BGR", "RGB-enlarged"],
        help="channel order fed, and -enlarged: frames smaller than the input enlarged to fill it (zamba's way)",
    )
    parser.add_argument("--no-speed", action="store_true", help="quality figures only")
    return parser


def _kind(label: str) -> str:
    if label in EMPTY:
        return "empty"
    if label in PEOPLE:
        return "human"
    if label in VEHICLES:
        return "vehicle"
    return "unknown" if label in UNKNOWN else "animal"


def _frames(step: int) -> list[dict]:
    with open(CAMERA_TRAPS / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["image_type"] != "camera_trap_modified"]
    chosen = [row for i, row in enumerate(rows) if i % step == 0 or _kind(row["label"]) == "empty"]
    return [
        {
            "path": row["path"],
            "subset": row["subset"],
            "kind": _kind(row["label"]),
            "thumbnail": min(int(row["width"]), int(row["height"])) < THUMBNAIL_SIDE,
        }
        for row in chosen
    ]


def _top_scores(detector, frames: list[dict], size: int, variants: list[str]) -> dict[str, list]:
    """Per variant, the best box's score for each frame (0: none over 0.05; None: unreadable).

    A variant's input that is the same as an earlier one's (a greyscale frame in BGR, a large frame with
    or without enlarging) is not run again.
    """
    import numpy as np
    import torch

    from classifier.intake.images import ImageError, load_photo
    from classifier.models.yolox import postprocess

    started = time.perf_counter()
    settings = (detector.input_size, detector.channel_order, detector.enlarge_small)
    detector.input_size = size
    scores: dict[str, list] = {variant: [None] * len(frames) for variant in variants}
    runs = 0
    for slot, frame in enumerate(frames):
        try:
            image = load_photo(CAMERA_TRAPS / frame["path"], target_size=size).image
        except ImageError as exc:
            print(f"  skipped: {exc}", file=sys.stderr)
            continue
        done: list[tuple[np.ndarray, float]] = []
        for variant in variants:
            detector.channel_order, detector.enlarge_small = VARIANTS[variant]
            prepared = detector.prepare(image)
            score = next((top for other, top in done if np.array_equal(other, prepared)), None)
            if score is None:
                with torch.inference_mode():
                    found = postprocess(detector.network(torch.from_numpy(prepared[None])), min(THRESHOLDS))[
                        0
                    ]
                score = float(found[:, 4].max()) if len(found) else 0.0
                done.append((prepared, score))
                runs += 1
            scores[variant][slot] = score
    detector.input_size, detector.channel_order, detector.enlarge_small = settings
    print(
        f"\ninput {size} px: {len(frames)} frames x {len(variants)} variants "
        f"({runs} network runs) in {time.perf_counter() - started:.0f} s"
    )
    return scores


def _shares(frames: list[dict], scores: list) -> dict:
    """For each threshold: empty frames without a box, and each other kind (and subset) with one."""
    table = {}
    for threshold in THRESHOLDS:
        boxed: dict[str, list[bool]] = defaultdict(list)
        for frame, score in zip(frames, scores, strict=True):
            if score is None:
                continue
            hit = score >= threshold
            boxed[frame["kind"]].append(hit)
            if frame["kind"] == "animal":
                boxed[f"animal/{frame['subset']}"].append(hit)
                if not frame["thumbnail"]:
                    boxed["animal_but_thumbnails"].append(hit)
        row = {"empty_without_box": _mean([not hit for hit in boxed.pop("empty", [])])}
        row.update({f"{key}_with_box": _mean(hits) for key, hits in sorted(boxed.items())})
        table[f"{threshold:g}"] = row
    return table


def _quality(frames: list[dict], scores: list, size: int, variant: str) -> dict:
    table = _shares(frames, scores)
    subsets = sorted({key for row in table.values() for key in row if key.startswith("animal/")})
    short = [s.removeprefix("animal/").removesuffix("_with_box")[:11] for s in subsets]
    print(f"{size} px, {variant}: share of empty frames without a box, of other frames with one")
    print("threshold  empty  animal  w/o-thumbs  human  vehicle  unknown | " + " ".join(short))
    for threshold, row in table.items():
        cells = [
            row.get(f"{k}_with_box")
            for k in ("animal", "animal_but_thumbnails", "human", "vehicle", "unknown")
        ]
        print(
            f"{threshold:>9}  {_fmt(row['empty_without_box'])}   {_fmt(cells[0])}       {_fmt(cells[1])}  "
            f"{_fmt(cells[2])}    {_fmt(cells[3])}    {_fmt(cells[4])} | "
            + " ".join(f"{_fmt(row.get(s)):>{len(n)}}" for s, n in zip(subsets, short, strict=True))
        )
    pairs = list(zip(frames, scores, strict=True))
    empties = [(f["path"], round(s, 3)) for f, s in pairs if f["kind"] == "empty" and s is not None]
    weakest = sorted(
        (
            (f["path"], round(s, 3))
            for f, s in pairs
            if f["kind"] == "animal" and s is not None and not f["thumbnail"]
        ),
        key=lambda pair: pair[1],
    )[:12]
    print("  empty frames' best score:", [s for _, s in empties])
    print("  lowest best scores of animal frames (thumbnails aside):", weakest[:6])
    return {
        "table": table,
        "empty_top_scores": empties,
        "weakest_animal_frames": weakest,
        "top_scores": [None if s is None else round(s, 4) for s in scores],
    }


def _channels(frames: list[dict], scores: dict[str, list], size: int) -> dict:
    """How RGB and BGR input compare on the colour animal frames (greyscale ones score the same)."""
    pairs = [
        (rgb, bgr)
        for frame, rgb, bgr in zip(frames, scores["RGB"], scores["BGR"], strict=True)
        if frame["kind"] == "animal" and rgb is not None and rgb != bgr
    ]
    outcome = {
        "colour_animal_frames": len(pairs),
        "bgr_scores_higher": sum(bgr > rgb for rgb, bgr in pairs),
        "rgb_scores_higher": sum(rgb > bgr for rgb, bgr in pairs),
        "median_bgr_minus_rgb": round(statistics.median(bgr - rgb for rgb, bgr in pairs), 4)
        if pairs
        else None,
    }
    print(f"  {size} px, RGB against BGR on colour animal frames: {outcome}")
    return outcome


def _meeting_targets(quality: dict, animals: str = "animal") -> list[list]:
    met = []
    for size, by_order in quality.items():
        for order, result in by_order.items():
            if order == "channels":
                continue
            for threshold, row in result["table"].items():
                empty, animal = row["empty_without_box"], row[f"{animals}_with_box"]
                but_thumbnails = row.get("animal_but_thumbnails_with_box")
                if (
                    empty is not None
                    and empty >= TARGETS["empty_without_box"]
                    and animal >= TARGETS["animal_with_box"]
                ):
                    met.append(
                        [int(size), order, float(threshold), empty, row["animal_with_box"], but_thumbnails]
                    )
    return met


def _speed(detector, sizes: tuple[int, ...], runs: int) -> dict:
    """Medians, in ms, for one 12 MP JPEG: end to end and the network alone, on 1 and 2 threads."""
    import torch
    from PIL import Image

    from classifier.intake.images import load_photo

    with Image.open(CAMERA_TRAPS / BIG_SOURCE) as im:
        buffer = io.BytesIO()
        im.convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=92)
    data = buffer.getvalue()
    figures: dict = {
        "frame": f"{BIG_SOURCE} upscaled to 4000x3000, JPEG quality 92, {len(data) / 1e6:.1f} MB"
    }
    print(f"\nspeed, one 12 MP frame ({figures['frame']}), median ms of {runs} runs")
    print("size  threads  decode  end-to-end  network-alone")
    for size in sizes:
        detector.input_size = size
        for threads in (1, 2):
            torch.set_num_threads(threads)
            image = load_photo(data, target_size=size).image
            batch = torch.from_numpy(detector.prepare(image)[None])
            decode, whole, network = [], [], []
            for run in range(runs + 2):  # the first two warm up
                started = time.perf_counter()
                image = load_photo(data, target_size=size).image
                decoded = time.perf_counter()
                detector.detect([image])
                finished = time.perf_counter()
                with torch.inference_mode():
                    detector.network(batch)
                alone = time.perf_counter() - finished
                if run >= 2:
                    decode.append(decoded - started)
                    whole.append(finished - started)
                    network.append(alone)
            row = {
                "decode_ms": _ms(decode),
                "end_to_end_ms": _ms(whole),
                "network_ms": _ms(network),
                "decoded_size": list(image.size),
            }
            figures[f"{size}px_{threads}thread"] = row
            print(
                f"{size:>4}  {threads:>7}  {row['decode_ms']:>6}  {row['end_to_end_ms']:>10}  {row['network_ms']:>13}"
            )
    torch.set_num_threads(2)
    return figures


def _mean(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _ms(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1000, 1)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
