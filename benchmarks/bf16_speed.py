"""bf16 against fp32, end to end: frames/s and the answers, through `python -m classifier predict`.

    nice -n 10 .venv/bin/python benchmarks/bf16_speed.py             # every part, ~15 min on 2 cores
    nice -n 10 .venv/bin/python benchmarks/bf16_speed.py --quick     # fewer frames and runs, ~4 min
    nice -n 10 .venv/bin/python benchmarks/bf16_speed.py --parts stages,threads --rounds 3
    nice -n 10 .venv/bin/python benchmarks/bf16_speed.py --model DIR|NAME --rounds 6 --frames 96

The default bundle (serengeti) with its detector first, OpenVINO, as `python -m classifier predict` runs
by default, once at `--precision fp32` and once at `--precision bf16` (both networks), each compiled
first (and run once on a few frames, so OpenVINO's own cache holds each compiled form before timing):

1. speed: the full-size frames (1.5 MP and over) of ../shared/data/camera_traps (speciesnet_test_data,
   snapshot_serengeti_misc, pytorchwildlife_demo), repeated by symbolic links to `--frames`; the two
   precisions alternate, `--rounds` times each. Prints each run's frames/s (the rate the command prints:
   model load included, Python's start not) and CPU-seconds a frame (the command's user + system time,
   which other jobs on shared cores move less than the wall clock), then the medians and the median of
   each round's bf16/fp32 ratio. Target (issue 30): bf16 at least 1.5x fp32's frames/s.
2. answers: every frame labels.csv lists (the full-size ones and the rest), each precision once;
   the share of frames whose top-1 class, label (after the rules: rollup) and animal count are fp32's,
   over all of them, the bundle's own held-out photos and the other projects' frames; each frame whose
   label differs with both top 3. Target: the same label on at least 99%. Then what bounds it: the share
   of frames whose bf16 answer lies within 0.01-0.05 of a decision (a box's or the frame's two best
   classes, or its best class or rolled-up group against the cut-off), which is the share a fp32 re-check
   of "close calls" would have to run again, and how many of the differing frames it would catch.

3. mixes (in this process): the same frames with bf16 in the classifier alone, in the detector alone and
   in both, against fp32 in both: the share of frames with fp32's label and animal count.
4. stages (in this process, one thread): CPU milliseconds a frame in each step of prediction, fp32 and
   bf16: decoding, fitting the frame to the detector's input, the detector, cutting and squishing the
   crops, the classifier (NMS and the rules cost under 1 ms). What bf16 leaves unchanged bounds its gain.
5. threads (in this process, bf16): `Predictor.predict_many` with workers x batch size variants
   (default 2 x 4), alternated `--rounds` times: frames/s, CPU-s a frame and the cores it kept busy.
   How decoding, detection and classification overlap on the cores: when every variant spends the same
   CPU a frame and keeps the cores it gets busy, no other overlap can add frames/s.

It says so plainly when this CPU has no native bfloat16 (there bf16 runs as fp32, and the ratio is 1).
Prints the figures and writes them with the machine to benchmarks/results/bf16_speed[-quick]-<time>.json.
No image is copied into the project.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from record import write_results

REPO = Path(__file__).resolve().parents[1]
CAMERA_TRAPS = REPO.parent / "shared" / "data" / "camera_traps"
FULL_SIZE_SUBSETS = ("speciesnet_test_data", "snapshot_serengeti_misc", "pytorchwildlife_demo")
MIN_PIXELS = 1_500_000
PRECISIONS = ("fp32", "bf16")
PARTS = ("speed", "answers", "mixes", "stages", "threads")
MIXES = (("bf16", "fp32"), ("fp32", "bf16"), ("bf16", "bf16"))  # (classifier, detector) against fp32 both
THREAD_VARIANTS = ((2, 4), (2, 2), (2, 8), (3, 4), (4, 2))  # workers x batch size; the default first
TARGETS = {"speedup": 1.5, "same_label": 0.99}
CLOSE_GAPS = (0.01, 0.03, 0.05)  # bf16 moves probabilities by about 0.01
HELD_OUT_SUBSET = "snapshot_serengeti_fieldguide"  # the serengeti bundle's own (cross-validated) photos
RUN_TIMEOUT_S = 900


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sys.path.insert(0, str(REPO))
    from classifier.models.bundles import resolve_bundle
    from classifier.models.precision import choices, cpu_has_bf16, cpu_name

    listed = _listed_frames()
    full_size = [
        path for path, pixels, subset in listed if subset in FULL_SIZE_SUBSETS and pixels >= MIN_PIXELS
    ]
    if not full_size:
        print(
            f"error: no full-size frames under {CAMERA_TRAPS} (see ../shared/data/README.md)", file=sys.stderr
        )
        return 2
    bundle = resolve_bundle(args.model)
    native = cpu_has_bf16()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; load average {os.getloadavg()}")
    if not native:
        print(
            "This CPU has NO native bfloat16 (no avx512_bf16 or amx_bf16 flag): OpenVINO runs bf16 as fp32 "
            "here, so both columns measure fp32 and the ratio is about 1. Run it on a CPU with bfloat16."
        )
    n_frames = args.frames or (16 if args.quick else 48)
    rounds = args.rounds or (2 if args.quick else 4)
    agreement_frames = [path for path, _, _ in listed][: 64 if args.quick else None]
    held_out = {str(path) for path, _, subset in listed if subset == HELD_OUT_SUBSET}
    figures: dict = {
        "benchmark": "bf16_speed",
        "quick": args.quick,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_name(),
            "native_bf16": native,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": os.getloadavg(),
        },
        "model": bundle.name,
        "targets": TARGETS,
        "auto_here": [choice.line for choice in choices(bundle, "openvino")],
    }
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory(prefix="bf16_speed_") as scratch:
        scratch = Path(scratch)
        for precision in PRECISIONS:  # compiled first, then OpenVINO's own compiled form cached
            _cli(
                [
                    "compile",
                    "--model",
                    str(bundle.directory),
                    "--runtime",
                    "openvino",
                    "--precision",
                    precision,
                ]
            )
            _predict(
                bundle.directory, precision, _repeated(full_size, 4, scratch / f"warm-{precision}"), scratch
            )
        if "speed" in parts:
            folder = _repeated(full_size, n_frames, scratch / "frames")
            figures["speed"] = _speed(bundle.directory, folder, n_frames, rounds, scratch)
        if "answers" in parts:
            listing = scratch / "all_frames.txt"
            listing.write_text("".join(f"{path}\n" for path in agreement_frames), encoding="utf-8")
            figures["answers"] = _answers(bundle.directory, listing, len(agreement_frames), held_out, scratch)
    if "mixes" in parts:
        figures["mixes"] = _mixes(bundle, agreement_frames)
    if "stages" in parts:
        figures["stages"] = _stages(bundle, full_size, repeats=1 if args.quick else 2)
    if "threads" in parts:
        figures["threads"] = _threads(bundle, full_size, n_frames, rounds)
    figures["machine"]["load_average_at_end"] = os.getloadavg()
    if "speed" in figures and "answers" in figures:
        speedup, same = figures["speed"]["median_ratio"], figures["answers"]["same_label"]
        figures["met"] = {
            "speedup": speedup >= TARGETS["speedup"],
            "same_label": same >= TARGETS["same_label"],
        }
        print(
            f"bf16 / fp32: {speedup:.2f}x frames/s (target >= {TARGETS['speedup']}x), the same label on "
            f"{same:.1%} of {figures['answers']['frames']} frames (target >= {TARGETS['same_label']:.0%})"
        )
    if not native:
        print("NO native bfloat16 on this CPU: bf16 ran as fp32, so these figures compare fp32 with itself.")
    print("--precision auto here:\n  " + "\n  ".join(figures["auto_here"]))
    write_results(f"bf16_speed{'-quick' if args.quick else ''}", figures)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="bundle name or folder (default: serengeti)")
    parser.add_argument(
        "--frames", type=int, default=None, help="frames a timed run (default 48; --quick 16)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="timed runs of each precision (default 4)")
    parser.add_argument("--quick", action="store_true", help="a short run that proves the script works")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"which parts, comma-separated (default: {','.join(PARTS)})"
    )
    return parser


def _listed_frames() -> list[tuple[Path, int, str]]:
    """Every frame labels.csv lists that is on disk: (path, pixels, subset)."""
    with open(CAMERA_TRAPS / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    found = []
    for row in rows:
        path = CAMERA_TRAPS / row["path"]
        if path.is_file():
            found.append((path, int(row["width"] or 0) * int(row["height"] or 0), row["subset"]))
    return found


def _repeated(frames: list[Path], count: int, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        source = frames[i % len(frames)]
        (folder / f"{i:04d}{source.suffix.lower()}").symlink_to(source)
    return folder


def _cli(arguments: list[str]) -> tuple[str, float, float]:
    """Run `python -m classifier ARGUMENTS`: its standard error, wall seconds and CPU-seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "classifier", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,  # a run that hangs is a finding, not a wait without end
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"python -m classifier {' '.join(arguments)} failed: {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done.stderr, wall, cpu


def _predict(model: Path, precision: str, inputs: Path, scratch: Path) -> tuple[Path, float, float, float]:
    """`predict` as a user runs it, at `precision`: its CSV, the rate it printed, wall and CPU seconds."""
    out = scratch / f"{inputs.stem}-{precision}.csv"
    arguments = ["predict", "--model", str(model), "--runtime", "openvino", "--precision", precision]
    stderr, wall, cpu = _cli([*arguments, "--out", str(out), str(inputs)])
    rate = re.search(r"\(([\d.]+) photos/s\)", stderr)
    return out, float(rate.group(1)) if rate else float("nan"), wall, cpu


def _speed(model: Path, folder: Path, n: int, rounds: int, scratch: Path) -> dict:
    runs: dict[str, list[dict]] = {precision: [] for precision in PRECISIONS}
    print(f"speed: {n} full-size frames a run, fp32 and bf16 alternated, {rounds} runs each")
    for round_ in range(rounds):
        order = PRECISIONS if round_ % 2 == 0 else PRECISIONS[::-1]  # neither always goes first
        for precision in order:
            _, rate, wall, cpu = _predict(model, precision, folder, scratch)
            runs[precision].append(
                {"frames_per_s": rate, "wall_s": round(wall, 1), "cpu_s_per_frame": cpu / n}
            )
            print(
                f"  round {round_ + 1} {precision}: {rate:5.2f} frames/s, wall {wall:5.1f} s, "
                f"{cpu / n:.3f} CPU-s a frame; load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    ratios = [b["frames_per_s"] / f["frames_per_s"] for f, b in zip(runs["fp32"], runs["bf16"], strict=True)]
    cpu_ratios = [
        f["cpu_s_per_frame"] / b["cpu_s_per_frame"] for f, b in zip(runs["fp32"], runs["bf16"], strict=True)
    ]
    figures: dict = {"frames": n, "rounds": rounds, "runs": runs}
    for precision in PRECISIONS:
        figures[precision] = {
            "median_frames_per_s": round(statistics.median(r["frames_per_s"] for r in runs[precision]), 2),
            "median_cpu_s_per_frame": round(
                statistics.median(r["cpu_s_per_frame"] for r in runs[precision]), 3
            ),
        }
    figures.update(
        median_ratio=round(statistics.median(ratios), 2),
        ratios=[round(r, 2) for r in ratios],
        median_cpu_ratio=round(statistics.median(cpu_ratios), 2),
    )
    print("precision | median frames/s | median CPU-s a frame")
    for precision in PRECISIONS:
        print(
            f"  {precision}    | {figures[precision]['median_frames_per_s']:6.2f}          | "
            f"{figures[precision]['median_cpu_s_per_frame']:.3f}"
        )
    print(
        f"bf16/fp32 per round: {figures['ratios']} -> median {figures['median_ratio']:.2f}x frames/s; "
        f"CPU time a frame {figures['median_cpu_ratio']:.2f}x less",
        flush=True,
    )
    return figures


def _answers(model: Path, listing: Path, n: int, held_out: set[str], scratch: Path) -> dict:
    rows = {}
    for precision in PRECISIONS:
        out, rate, _, _ = _predict(model, precision, listing, scratch)
        with open(out, newline="", encoding="utf-8") as handle:
            rows[precision] = {row["path"]: row for row in csv.DictReader(handle)}
        print(f"answers: {n} frames at {precision}, {rate:.2f} frames/s", flush=True)
    fp32, bf16 = rows["fp32"], rows["bf16"]
    every = sorted(set(fp32) & set(bf16))
    groups = {
        "all": every,
        "held_out": [p for p in every if p in held_out],
        "other_projects": [p for p in every if p not in held_out],
    }
    columns = {
        "top1": lambda row: row["top_k"].split(":", 1)[0],
        "label": lambda row: row["label"],
        # What a person is told: the label when it is sure, else "not sure" (whichever best guess).
        "answer": lambda row: row["label"] if row["status"] == "ok" else row["status"],
        "count": lambda row: row["count"],
    }
    figures: dict = {"frames": len(every)}
    for group, paths in groups.items():
        figures[group] = {"frames": len(paths)} | {
            f"same_{name}": round(
                sum(column(fp32[p]) == column(bf16[p]) for p in paths) / max(len(paths), 1), 4
            )
            for name, column in columns.items()
        }
    figures["same_label"] = figures["all"]["same_label"]
    figures["same_answer"] = figures["all"]["same_answer"]
    figures["label_differs"] = [
        {
            "path": p,
            "fp32": fp32[p]["label"],
            "bf16": bf16[p]["label"],
            "fp32_top_k": fp32[p]["top_k"],
            "bf16_top_k": bf16[p]["top_k"],
            "fp32_status": fp32[p]["status"],
            "bf16_status": bf16[p]["status"],
        }
        for p in every
        if fp32[p]["label"] != bf16[p]["label"]
    ]
    print("bf16 against fp32, share of frames with the same top-1 / label / answer shown / animal count:")
    for group in groups:
        g = figures[group]
        print(
            f"  {group:15s} {g['frames']:4d} frames: {g['same_top1']:.1%} / {g['same_label']:.1%} / "
            f"{g['same_answer']:.1%} / {g['same_count']:.1%}"
        )
    print("frames whose label differs (fp32's top 3 -> bf16's):")
    for entry in figures["label_differs"]:
        print(
            f"  {Path(entry['path']).name}: {entry['fp32']} ({entry['fp32_status']}) -> {entry['bf16']} "
            f"({entry['bf16_status']}); "
            f"{entry['fp32_top_k']} -> {entry['bf16_top_k']}"
        )
    differing = {entry["path"] for entry in figures["label_differs"]}
    figures["close_calls"] = _close_calls(bf16, every, differing)
    return figures


def _close_calls(rows: dict[str, dict], paths: list[str], differing: set[str]) -> list[dict]:
    """For each gap: the share of frames with a decision that close, and the differing frames among them."""
    margins = {p: _margin(rows[p]) for p in paths}
    figures = []
    print("close calls in bf16's answers (what a fp32 re-check of them would cost and catch):")
    for gap in CLOSE_GAPS:
        close = {p for p in paths if margins[p] < gap}
        figures.append(
            {"gap": gap, "share": round(len(close) / len(paths), 4), "caught": len(close & differing)}
        )
        print(
            f"  within {gap:.2f}: {len(close) / len(paths):.1%} of frames, "
            f"{len(close & differing)} of the {len(differing)} differing"
        )
    return figures


def _margin(row: dict) -> float:
    """How close a predictions row's answer came to going another way: the smallest gap between a box's
    or the frame's two best classes, or between its best class or rolled-up group and the cut-off."""
    decision = json.loads(row["decision"] or "{}")
    cutoff = decision.get("threshold")
    scores = [
        [t["confidence"] for t in box.get("top_k", [])] for box in json.loads(row["detections"] or "[]")
    ]
    scores.append([float(entry.rsplit(":", 1)[1]) for entry in row["top_k"].split(";") if ":" in entry])
    gaps = [1.0]
    if cutoff is not None:
        answered = [decision["group"]["score"]] if decision.get("group") else []
        answered += [float(row["confidence"])] if row["confidence"] else []
        gaps += [abs(score - cutoff) for score in answered]
    for top in filter(None, scores):
        gaps += [abs(top[0] - cutoff)] if cutoff is not None else []
        gaps += [top[0] - top[1]] if len(top) > 1 else []
    return min(gaps)


def _mixes(bundle, frames: list[Path]) -> dict:
    """Labels and counts with bf16 in one network, the other or both, against fp32 in both."""
    from classifier.knowledge.species import find_species_book
    from classifier.models.detect import detector_for
    from classifier.models.predictors import PredictorOptions
    from classifier.models.runtimes import load_model

    options = PredictorOptions(book=find_species_book(bundle.name))
    models = {p: load_model(bundle, runtime="openvino", precision=p) for p in PRECISIONS}
    detectors = {p: detector_for(bundle, "openvino", p) for p in PRECISIONS}

    def rows(classifying: str, detecting: str) -> dict:
        predictor = options.build(bundle, model=models[classifying], detector=detectors[detecting])
        return {row.path: (row.label, row.count) for row in predictor.predict_many(frames)}

    reference = rows("fp32", "fp32")
    figures: dict = {}
    print(f"mixes: bf16 in one network or both, against fp32 in both, {len(reference)} frames:")
    for classifying, detecting in MIXES:
        found = rows(classifying, detecting)
        label = sum(found[p][0] == reference[p][0] for p in reference) / len(reference)
        count = sum(found[p][1] == reference[p][1] for p in reference) / len(reference)
        name = f"classifier {classifying}, detector {detecting}"
        figures[name] = {"same_label": round(label, 4), "same_count": round(count, 4)}
        print(f"  {name}: the same label on {label:.1%}, the same animal count on {count:.1%}", flush=True)
    return figures


def _stages(bundle, frames: list[Path], repeats: int) -> dict:
    """CPU ms a frame in each step of prediction, one thread, each precision; as predict_many does them."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        figures = {precision: _stage_times(bundle, precision, frames, repeats) for precision in PRECISIONS}
    finally:
        torch.set_num_threads(threads)
    fp32, bf16 = figures["fp32"], figures["bf16"]
    rest = bf16["steps_ms"]["decode"] + bf16["steps_ms"]["crops"] + bf16["fitting_frames_ms"]
    figures["cpu_ratio"] = round(fp32["cpu_ms_a_frame"] / bf16["cpu_ms_a_frame"], 2)
    figures["bound_if_networks_took_no_time"] = round(fp32["cpu_ms_a_frame"] / rest, 2)
    print(
        f"stages, one thread, CPU ms a frame ({fp32['classifier_inputs_a_frame']} classifier inputs a frame):"
    )
    for step in fp32["steps_ms"]:
        print(f"  {step:40s} fp32 {fp32['steps_ms'][step]:6.1f}  bf16 {bf16['steps_ms'][step]:6.1f}")
    print(
        f"  {'(of the detector: fitting the frame)':40s} fp32 {fp32['fitting_frames_ms']:6.1f}  "
        f"bf16 {bf16['fitting_frames_ms']:6.1f}"
    )
    print(
        f"  {'all':40s} fp32 {fp32['cpu_ms_a_frame']:6.1f}  bf16 {bf16['cpu_ms_a_frame']:6.1f}  -> "
        f"{figures['cpu_ratio']:.2f}x less CPU a frame with bf16; what bf16 leaves as it is (decoding, "
        f"fitting, crops) takes {rest:.0f} ms, so no precision gets past "
        f"{figures['bound_if_networks_took_no_time']:.1f}x",
        flush=True,
    )
    return figures


def _stage_times(bundle, precision: str, frames: list[Path], repeats: int) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from classifier.intake.decoding import decode_item, decode_size_for
    from classifier.intake.inputs import item_for_path
    from classifier.models.bundles import CROP_MARGIN
    from classifier.models.detect import crop_box, detector_for
    from classifier.models.predict import CPU_BATCH_SIZE, MAX_DETECTIONS
    from classifier.models.runtimes import load_model

    network = load_model(bundle, runtime="openvino", precision=precision).network
    detector = detector_for(bundle, "openvino", precision)
    size, side = (
        decode_size_for(bundle.image_size, detector.input_size),
        (bundle.image_size, bundle.image_size),
    )
    spent = dict.fromkeys(("decode", "detector (fit, network, boxes)", "crops", "classifier"), 0.0)
    fitting, done, inputs = 0.0, 0, 0
    for _ in range(repeats):
        for i in range(0, len(frames), CPU_BATCH_SIZE):
            start = time.process_time()
            decoded = [
                decode_item(item_for_path(f), size, squish=False) for f in frames[i : i + CPU_BATCH_SIZE]
            ]
            pictures = [Image.fromarray(d.pixels) for d in decoded if d.pixels is not None]
            lap = time.process_time()
            spent["decode"] += lap - start
            found = detector.detect(pictures)
            start, lap = lap, time.process_time()
            spent["detector (fit, network, boxes)"] += lap - start
            crops = [
                np.asarray(crop_box(picture, box.bbox, CROP_MARGIN).resize(side, Image.BILINEAR))
                for picture, boxes in zip(pictures, found, strict=True)
                for box in boxes[:MAX_DETECTIONS]
            ] + [np.asarray(picture.resize(side, Image.BILINEAR)) for picture in pictures]
            batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)
            start, lap = lap, time.process_time()
            spent["crops"] += lap - start
            network(batch.contiguous(memory_format=torch.channels_last))
            spent["classifier"] += time.process_time() - lap
            lap = time.process_time()
            [detector.prepare(picture) for picture in pictures]  # measured apart, not in the sum
            fitting += time.process_time() - lap
            done, inputs = done + len(pictures), inputs + len(crops)
    return {
        "cpu_ms_a_frame": round(1000 * sum(spent.values()) / done, 1),
        "classifier_inputs_a_frame": round(inputs / done, 2),
        "steps_ms": {step: round(1000 * value / done, 1) for step, value in spent.items()},
        "fitting_frames_ms": round(1000 * fitting / done, 1),
    }


def _threads(bundle, frames: list[Path], n: int, rounds: int) -> dict:
    """`predict_many` at bf16 with each workers x batch size variant, alternated: frames/s, CPU-s a
    frame (this process's), the cores it kept busy."""
    from classifier.knowledge.species import find_species_book
    from classifier.models.detect import detector_for
    from classifier.models.predictors import PredictorOptions
    from classifier.models.runtimes import load_model

    model = load_model(bundle, runtime="openvino", precision="bf16")
    detector = detector_for(bundle, "openvino", "bf16")
    book = find_species_book(bundle.name)
    inputs = [frames[i % len(frames)] for i in range(n)]
    variants = {
        f"{w} x {b}": PredictorOptions(book=book, batch_size=b).build(
            bundle, workers=w, model=model, detector=detector
        )
        for w, b in THREAD_VARIANTS
    }
    list(next(iter(variants.values())).predict_many(inputs[:8]))  # every thread's first call made
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
    print(f"threads: predict_many at bf16 on {n} full-size frames, workers x batch size, {rounds} rounds")
    for round_ in range(rounds):
        order = list(variants.items()) if round_ % 2 == 0 else list(variants.items())[::-1]
        for name, predictor in order:
            cpu, start = time.process_time(), time.perf_counter()
            count = sum(1 for _ in predictor.predict_many(inputs))
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            runs[name].append((count / wall, cpu / count, cpu / wall))
    figures: dict = {}
    for name, values in runs.items():
        rate, cpu, busy = (statistics.median(v[i] for v in values) for i in range(3))
        figures[name] = {
            "frames_per_s": round(rate, 2),
            "cpu_s_a_frame": round(cpu, 3),
            "cores_busy": round(busy, 2),
        }
        print(f"  {name}: {rate:5.2f} frames/s, {cpu:.3f} CPU-s a frame, {busy:.2f} cores busy (medians)")
    print(f"  load average {os.getloadavg()}", flush=True)
    return figures


if __name__ == "__main__":
    raise SystemExit(main())
