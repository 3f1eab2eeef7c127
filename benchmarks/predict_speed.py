"""Prediction speed and memory, each measured side by side in one run on full-size camera-trap JPEGs.

    .venv/bin/python benchmarks/predict_speed.py                      # the full run, ~15 min on 2 cores
    .venv/bin/python benchmarks/predict_speed.py --quick              # proves the script works, ~2 min
    .venv/bin/python benchmarks/predict_speed.py --model DIR|NAME     # another bundle (default: serengeti)

Figures (targets from issue 4, for a 2-core CPU with the cores to itself):
0. the network alone by batch size (why the CPU default batch is small).
1. throughput of `Predictor.predict_many` over a folder of the 1.5-8 MP frames in
   ../shared/data/camera_traps (symlinked into a temporary folder, repeated to a few hundred) against the
   same network's forward pass alone on pre-decoded tensors at the same batch size: >= 0.7 of that ceiling.
   The ceiling is run two ways, one stream on torch's threads and one stream per core on one thread
   each, before and after each pipeline; the better way's mean is the ceiling. Decoding on threads (the
   default) and in DataLoader worker processes are both measured.
   Decoding's own cost on one core is measured too, and the bound it sets on the ratio printed.
2. against fastai's `learn.predict` called image by image: as the source apps did (`PILImage.create`
   decodes the full photo) and given the path (the bundle's reader decodes at reduced size), each with
   torch's default threads and with one thread, the faster as the baseline: >= 10x against the source
   apps' way. The ceiling over the baseline, the most any pipeline could reach, is printed beside it.
3. single-photo latency, decode + predict, of a 12 MP JPEG (a real frame upscaled to 4000x3000 in a
   temporary folder), with torch's default threads and with one: median <= 80 ms.
4. peak resident memory of `python -m classifier predict` writing a CSV for 10,000 images (the frames
   repeated by symlinks; --quick: 500): <= 1.5 GB.
5. runtimes (`--only runtimes` runs this part alone), each ratio within this one run:
   a. the network alone, batch 4, one thread, and one stream per core: torch eager (the learner's own
      module), torch (TorchScript), openvino and onnx at fp32, int8 and bf16: the runtime's ceiling
      >= 2x torch eager's;
   b. `python -m classifier predict` end to end on the full-size frames (whole frames, classifier
      alone), each runtime: >= 2x today's (--runtime torch) photos/s;
   c. the same with the detector first (a copy of the bundle whose report gets a `detector` section):
      >= 2x the torch-only pipeline;
   d. detector + classifier on 12 MP frames (the frames upscaled to 4000x3000): frames/s through the CLI
      (target >= 4 on 2 cores) against the forward-only ceiling of the same networks in this run (the
      detector on each frame plus the classifier on the crops it kept, one stream per core): >= 0.7.
On a loaded machine torch's default (OpenMP) threads can run 30-100x slower than one thread; the
figures for both are printed side by side, so check the load averages the JSON records.
Prints the figures and writes them with the machine to benchmarks/results/predict_speed[-quick]-<time>.json
(gitignored). No image is ever copied into the project.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from record import write_results

REPO = Path(__file__).resolve().parents[1]
CAMERA_TRAPS = REPO.parent / "shared" / "data" / "camera_traps"
MIN_PIXELS = 1_500_000
TARGETS = {"ceiling_ratio": 0.7, "speedup_vs_learn_predict": 10.0, "latency_ms": 80.0, "peak_rss_gb": 1.5}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sys.path.insert(0, str(REPO))
    import torch

    from classifier.models.bundles import BundleError, resolve_bundle
    from classifier.models.runtimes import load_model

    try:
        bundle = resolve_bundle(args.model)
    except BundleError as exc:
        print(
            f"error: {exc} (before models/serengeti exists, pass --model with any bundle folder)",
            file=sys.stderr,
        )
        return 2
    frames = _full_size_frames(CAMERA_TRAPS)
    if not frames:
        print(
            f"error: no full-size frames under {CAMERA_TRAPS} (see ../shared/data/README.md)", file=sys.stderr
        )
        return 2
    n_images = args.images or (96 if args.quick else 480)
    n_baseline = 8 if args.quick else 40
    n_memory = args.memory_images or (500 if args.quick else 10_000)
    if args.only == "runtimes":
        results = {
            "benchmark": "predict_speed_runtimes",
            "quick": args.quick,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "torch": torch.__version__,
                "load_average_at_start": os.getloadavg(),
            },
            "model": {
                "name": bundle.name,
                "arch": bundle.report.get("arch"),
                "image_size": bundle.image_size,
            },
        }
        with tempfile.TemporaryDirectory(prefix="predict_speed_") as scratch:
            results["runtimes"] = _runtimes(bundle, frames, Path(scratch), args)
        results["machine"]["load_average_at_end"] = os.getloadavg()
        write_results(f"predict_speed_runtimes{'-quick' if args.quick else ''}", results)
        return 0
    from classifier.models.predict import CPU_BATCH_SIZE, GPU_BATCH_SIZE

    model = load_model(bundle)
    args.batch_size = args.batch_size or (CPU_BATCH_SIZE if model.device.type == "cpu" else GPU_BATCH_SIZE)
    print(
        f"model {bundle.name} ({bundle.directory}), {bundle.image_size} px, {len(bundle.classes)} classes; "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads; "
        f"{len(frames)} distinct frames",
        flush=True,
    )
    results: dict = {
        "benchmark": "predict_speed",
        "quick": args.quick,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "load_average_at_start": os.getloadavg(),
        },
        "model": {
            "name": bundle.name,
            "arch": bundle.report.get("arch"),
            "image_size": bundle.image_size,
            "classes": len(bundle.classes),
        },
        "batch_size": args.batch_size,
        "targets": TARGETS,
    }
    with tempfile.TemporaryDirectory(prefix="predict_speed_") as scratch:
        scratch = Path(scratch)
        folder = _repeat(frames, n_images, scratch / "frames")
        results["batch_sizes"] = _batch_sizes(model, (1, 4, 8, 16, 32), 64 if args.quick else 256)
        results["throughput"] = _throughput(model, folder, args.batch_size, args.workers)
        results["learn_predict"] = _learn_predict(model, folder, n_baseline, results["throughput"])
        results["latency"] = _latency(model, frames, scratch, runs=10 if args.quick else 30)
        memory_folder = _repeat(frames, n_memory, scratch / "memory")
        results["memory"] = _peak_memory(bundle.directory, memory_folder, n_memory, scratch, args.batch_size)
        results["runtimes"] = _runtimes(bundle, frames, scratch, args)
    results["met"] = {
        "ceiling_ratio": results["throughput"]["ratio_threads"] >= TARGETS["ceiling_ratio"],
        "speedup_vs_learn_predict": results["learn_predict"]["speedup"]
        >= TARGETS["speedup_vs_learn_predict"],
        "latency_ms": results["latency"]["median_ms"] <= TARGETS["latency_ms"],
        "peak_rss_gb": results["memory"]["peak_rss_gb"] <= TARGETS["peak_rss_gb"],
    }
    results["machine"]["load_average_at_end"] = os.getloadavg()
    print(f"\ntargets met: {results['met']}")
    write_results(f"predict_speed{'-quick' if args.quick else ''}", results)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default="serengeti",
        help="bundle name under models/ or a bundle folder (default: serengeti)",
    )
    parser.add_argument("--quick", action="store_true", help="small counts: proves the script works")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="photos per forward pass (default: the predictor's default for the device)",
    )
    parser.add_argument("--workers", type=int, default=None, help="decoding workers (default: one per core)")
    parser.add_argument(
        "--images", type=int, default=None, help="throughput folder size (default: 480, quick 96)"
    )
    parser.add_argument(
        "--memory-images",
        type=int,
        default=None,
        help="images for the memory run (default: 10,000, quick 500)",
    )
    parser.add_argument(
        "--only", choices=("runtimes",), default=None, help="run one part alone (runtimes: figure 5)"
    )
    parser.add_argument(
        "--detector-frames",
        type=int,
        default=None,
        help="frames for the detector runs of figure 5 (default: 96, quick 24)",
    )
    return parser


# ------------------------------------------------------------------------------------------------ data


def _full_size_frames(root: Path) -> list[Path]:
    """Every decodable JPEG of at least MIN_PIXELS under `root` (the deliberately truncated copy is left out)."""
    from PIL import Image

    frames = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in (".jpg", ".jpeg") or "truncated" in path.name:
            continue
        with Image.open(path) as im:
            if im.width * im.height >= MIN_PIXELS:
                frames.append(path)
    return frames


def _repeat(frames: list[Path], n: int, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        frame = frames[i % len(frames)]
        (folder / f"{i:05d}_{frame.name}").symlink_to(frame)
    return folder


# ------------------------------------------------------------------------------------------ measurements


def _throughput(model, folder: Path, batch_size: int, workers: int | None) -> dict:
    import torch

    from classifier.intake.decoding import decode_item
    from classifier.intake.inputs import expand_inputs
    from classifier.models.predict import PROCESSES, THREADS, Predictor
    from classifier.models.runtimes import default_workers

    items = expand_inputs([folder]).items
    size = model.bundle.image_size
    streams = workers or default_workers()

    # The folder repeats the frames by symlinks: each distinct frame is decoded (and timed) once.
    def frame(item) -> Path:
        return Path(item.location).resolve()

    # The ceiling: the network alone on tensors decoded beforehand, in batches of the same size, run the
    # better of two ways: one stream using torch's threads, or one stream per core with one thread each.
    distinct = {frame(item): item for item in items}
    decoded = {
        path: torch.from_numpy(decode_item(item, size).pixels).permute(2, 0, 1)
        for path, item in distinct.items()
    }
    decode_ms = _decode_ms(list(distinct.values()), size)
    batches = [
        torch.stack([decoded[frame(item)] for item in items[i : i + batch_size]])
        .float()
        .div_(255)
        .contiguous(memory_format=torch.channels_last)
        for i in range(0, len(items), batch_size)
    ]

    def forward(selected: list) -> None:
        with torch.inference_mode():
            for batch in selected:
                torch.softmax(model.network(batch), dim=1)

    def ceiling() -> tuple[float, float]:
        start = time.perf_counter()
        forward(batches)
        one_stream = len(items) / (time.perf_counter() - start)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            start = time.perf_counter()
            with ThreadPoolExecutor(streams) as pool:
                list(pool.map(forward, [batches[k::streams] for k in range(streams)]))
            per_core = len(items) / (time.perf_counter() - start)
        finally:
            torch.set_num_threads(threads)
        return one_stream, per_core

    def pipeline(parallel: str) -> float:
        predictor = Predictor(model, batch_size=batch_size, workers=workers, parallel=parallel)
        start = time.perf_counter()
        rows = sum(1 for row in predictor.predict_many(items) if row.status != "error")
        assert rows == len(items), "every benchmark frame should decode"
        return len(items) / (time.perf_counter() - start)

    forward(batches[:2])  # warm-up: first-call allocations and oneDNN kernel selection
    figures: dict = {
        "images": len(items),
        "distinct_frames": len(distinct),
        "batch_size": batch_size,
        "workers": streams,
    }
    for parallel in (THREADS, PROCESSES):
        before, speed, after = ceiling(), pipeline(parallel), ceiling()
        best = (max(before) + max(after)) / 2
        figures[parallel] = {
            "predict_images_per_s": round(speed, 2),
            "ceiling_one_stream_images_per_s": [round(before[0], 2), round(after[0], 2)],
            "ceiling_stream_per_core_images_per_s": [round(before[1], 2), round(after[1], 2)],
            "ceiling_images_per_s": round(best, 2),
            "ratio": round(speed / best, 3),
        }
        print(
            f"throughput, decoding on {parallel:9s}: predict_many {speed:6.1f} img/s; forward alone "
            f"{before[0]:.1f}/{after[0]:.1f} (one stream), {before[1]:.1f}/{after[1]:.1f} (stream per core) "
            f"img/s -> {speed / best:.2f} of the best (target >= {TARGETS['ceiling_ratio']})",
            flush=True,
        )
    figures["ratio_threads"] = figures[THREADS]["ratio"]
    figures["predict_images_per_s"] = figures[THREADS]["predict_images_per_s"]
    # Decoding and the network share the same cores: at best the pipeline spends, per photo, the
    # ceiling's core-time plus decoding's, so the ratio cannot exceed f / (f + d).
    ceiling = figures["ceiling_images_per_s"] = figures[THREADS]["ceiling_images_per_s"]
    forward_ms = 1000 * streams / ceiling
    figures["decode_ms_one_core"] = round(decode_ms, 2)
    figures["forward_ms_per_core_at_ceiling"] = round(forward_ms, 2)
    figures["ratio_bound"] = round(forward_ms / (forward_ms + decode_ms), 3)
    print(
        f"decoding costs {decode_ms:.1f} ms a photo on one core, the network at its ceiling "
        f"{forward_ms:.1f} ms of core time: no pipeline on these {streams} cores can exceed "
        f"{figures['ratio_bound']:.2f} of the ceiling; predict_many reaches "
        f"{figures['ratio_threads'] / figures['ratio_bound']:.0%} of that bound",
        flush=True,
    )
    return figures


def _decode_ms(items: list, size: int, passes: int = 5) -> float:
    """Median over passes of the mean time to read and decode one photo, one thread, as predict_many does."""
    from classifier.intake.decoding import decode_item

    times = []
    for _ in range(passes):
        start = time.perf_counter()
        for item in items:
            decode_item(item, size)
        times.append((time.perf_counter() - start) * 1000 / len(items))
    return statistics.median(times)


def _batch_sizes(model, sizes: tuple[int, ...], n: int) -> dict:
    """Forward-alone speed by batch size, one stream per core: why the default batch is small on a CPU."""
    import torch

    from classifier.models.runtimes import default_workers

    s = model.bundle.image_size
    streams = default_workers()
    figures = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for size in sizes:
            batch = torch.rand(size, 3, s, s).contiguous(memory_format=torch.channels_last)
            repeats = max(1, n // size // streams)

            def run(_: int, batch=batch, repeats=repeats) -> None:
                with torch.inference_mode():
                    for _ in range(repeats):
                        model.network(batch)

            run(0)
            start = time.perf_counter()
            with ThreadPoolExecutor(streams) as pool:
                list(pool.map(run, range(streams)))
            figures[size] = round(size * repeats * streams / (time.perf_counter() - start), 1)
    finally:
        torch.set_num_threads(threads)
    print(
        "forward alone by batch size (img/s): " + ", ".join(f"{k}: {v}" for k, v in figures.items()),
        flush=True,
    )
    return figures


def _learn_predict(model, folder: Path, n: int, throughput: dict) -> dict:
    """fastai's learn.predict one image at a time, two ways: as the source apps did (`PILImage.create`
    decodes the full-size photo, fastai resizes it) and given the path (the bundle's own reader decodes
    at reduced size). Each with torch's default threads and with one thread, the faster counting (on a
    loaded machine the default can be 30x slower). The ceiling over a way's rate bounds any speedup."""
    import warnings

    import torch
    from fastai.vision.core import PILImage

    from classifier.intake.inputs import expand_inputs

    paths = [str(item.location) for item in expand_inputs([folder]).items[:n]]
    ways = {"source_apps": lambda path: PILImage.create(path), "path": lambda path: path}
    from classifier.models.bundles import load_learner

    learner = load_learner(model.bundle)
    default_threads = torch.get_num_threads()
    speed = throughput["predict_images_per_s"]
    ceiling = throughput["ceiling_images_per_s"]
    figures: dict = {"images": n}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for way, item in ways.items():
            rates = {}
            for threads in sorted({default_threads, 1}, reverse=True):
                torch.set_num_threads(threads)
                learner.predict(item(paths[0]))  # warm-up
                start = time.perf_counter()
                for path in paths:
                    learner.predict(item(path))
                rates[threads] = n / (time.perf_counter() - start)
            torch.set_num_threads(default_threads)
            baseline = max(rates.values())
            figures[way] = {
                "learn_predict_images_per_s": {str(k): round(v, 3) for k, v in rates.items()},
                "speedup": round(speed / baseline, 2),
                "speedup_bound": round(ceiling / baseline, 2),
            }
            shown = ", ".join(f"{rate:.2f} img/s with {threads} thread(s)" for threads, rate in rates.items())
            print(
                f"learn.predict one by one ({way.replace('_', ' ')}) on {n} frames: {shown}; predict_many is "
                f"{speed / baseline:.1f}x the faster (target >= {TARGETS['speedup_vs_learn_predict']:g}x; "
                f"the network alone at its ceiling is {ceiling / baseline:.1f}x)",
                flush=True,
            )
    figures["speedup"] = figures["source_apps"]["speedup"]
    return figures


def _latency(model, frames: list[Path], scratch: Path, runs: int) -> dict:
    import torch
    from PIL import Image

    from classifier.intake.images import load_photo
    from classifier.models.predict import Predictor

    source = max(frames, key=lambda p: p.stat().st_size)
    big = scratch / "twelve_megapixels.jpg"
    with Image.open(source) as im:
        im.convert("RGB").resize((4000, 3000), Image.BICUBIC).save(big, quality=92)
    predictor = Predictor(model)
    figures: dict = {"megapixels": 12.0, "runs": runs, "source": source.name}
    default_threads = torch.get_num_threads()
    for threads in sorted({default_threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        for _ in range(3):
            predictor.predict_photo(big, name=big.name)
        times, decode_times = [], []
        for _ in range(runs):
            start = time.perf_counter()
            predictor.predict_photo(big, name=big.name)
            times.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            load_photo(big, target_size=model.bundle.image_size)
            decode_times.append((time.perf_counter() - start) * 1000)
        figures[f"torch_threads_{threads}"] = {
            "median_ms": round(statistics.median(times), 1),
            "p90_ms": round(sorted(times)[int(0.9 * (len(times) - 1))], 1),
            "decode_median_ms": round(statistics.median(decode_times), 1),
        }
        print(
            f"single 12 MP photo ({big.stat().st_size / 1e6:.1f} MB, from {source.name}), torch threads "
            f"{threads}: decode + predict median {statistics.median(times):.1f} ms, p90 "
            f"{figures[f'torch_threads_{threads}']['p90_ms']:.1f} ms (decode alone "
            f"{statistics.median(decode_times):.1f} ms; target <= {TARGETS['latency_ms']:g} ms)",
            flush=True,
        )
    torch.set_num_threads(default_threads)
    figures["median_ms"] = min(v["median_ms"] for k, v in figures.items() if k.startswith("torch_threads"))
    return figures


# Runs the real command, then writes its own peak resident set (VmHWM) to a file. Read from inside: on
# Linux a child's ru_maxrss also counts the copy of this (big) process it was forked from before exec.
_MEASURED_RUN = """
import runpy, sys
peak_file, sys.argv = sys.argv[1], ["classifier", *sys.argv[2:]]
try:
    runpy.run_module("classifier", run_name="__main__")
finally:
    status = open("/proc/self/status").read()
    peak_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    open(peak_file, "w").write(str(peak_kib))
"""


def _peak_memory(bundle_dir: Path, folder: Path, n: int, scratch: Path, batch_size: int) -> dict:
    """Run `python -m classifier predict` in a fresh process over `n` images; its peak RSS from the kernel."""
    out, peak_file = scratch / "memory.csv", scratch / "peak_kib.txt"
    command = [
        sys.executable,
        "-c",
        _MEASURED_RUN,
        str(peak_file),
        "predict",
        "--model",
        str(bundle_dir),
        "--out",
        str(out),
        "--batch-size",
        str(batch_size),
        str(folder),
    ]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if not peak_file.exists() or not out.exists():
        raise SystemExit(f"memory run failed ({done.returncode}): {done.stderr[-2000:]}")
    with open(out) as handle:
        rows = sum(1 for _ in handle) - 1
    peak_gb = int(peak_file.read_text()) * 1024 / 1e9
    print(
        f"peak memory: python -m classifier predict on {n:,} images -> {rows:,} CSV rows in {seconds:.0f} s, "
        f"peak RSS {peak_gb:.2f} GB (target <= {TARGETS['peak_rss_gb']:g} GB)",
        flush=True,
    )
    return {"images": n, "rows": rows, "seconds": round(seconds, 1), "peak_rss_gb": round(peak_gb, 3)}


# -------------------------------------------------------------------------------------------- runtimes

RUNTIME_TARGETS = {"ceiling_vs_eager": 2.0, "cli_vs_torch": 2.0, "frames_per_s_12mp": 4.0, "ratio_12mp": 0.7}
# (runtime, precision) pairs measured; eager is the learner's own module, the others classifier.models.runtimes.
VARIANTS = (
    ("eager", "fp32"),
    ("torch", "fp32"),
    ("openvino", "fp32"),
    ("onnx", "fp32"),
    ("openvino", "int8"),
    ("onnx", "int8"),
    ("openvino", "bf16"),
)
DETECTOR_SECTION = {"confidence": 0.05, "input_size": 640, "crop_margin": 0.15}


def _runtimes(bundle, frames: list[Path], scratch: Path, args) -> dict:
    figures: dict = {"targets": RUNTIME_TARGETS, "load_average_at_start": os.getloadavg()}
    figures["network"] = _runtime_ceilings(bundle, rounds=3 if args.quick else 7)
    n = args.images or (96 if args.quick else 480)
    n_detector = args.detector_frames or (24 if args.quick else 96)
    folder = _repeat(frames, n, scratch / "runtime_frames")
    detector_folder = _repeat(frames, n_detector, scratch / "detector_frames")
    detecting = _bundle_with_detector(bundle, scratch / "with_detector")
    runs = ("torch", "openvino", "onnx", "openvino:int8")
    # Compile everything first (the runs then time prediction, not compiling).
    for run in runs:
        runtime, _, precision = run.partition(":")
        _cli(["compile", "--model", str(detecting), "--runtime", runtime, "--precision", precision or "fp32"])
    figures["cli_classifier"] = _cli_runs(bundle.directory, folder, n, runs, ["--no-detector"], "photos")
    figures["cli_detector"] = _cli_runs(detecting, detector_folder, n_detector, runs, [], "frames")
    figures["twelve_mp"] = _twelve_megapixels(bundle, detecting, frames, scratch, args)
    base = figures["network"]["eager:fp32"]["per_core"]
    cli, det = figures["cli_classifier"], figures["cli_detector"]
    figures["met"] = {
        run: {
            "ceiling_vs_eager": figures["network"]
            .get(f"{run}" if ":" in run else f"{run}:fp32", {})
            .get("per_core", 0)
            / base
            >= RUNTIME_TARGETS["ceiling_vs_eager"],
            "cli_vs_torch": cli[run]["vs_torch"] >= RUNTIME_TARGETS["cli_vs_torch"],
            "detector_cli_vs_torch": det[run]["vs_torch"] >= RUNTIME_TARGETS["cli_vs_torch"],
        }
        for run in runs
    }
    figures["load_average_at_end"] = os.getloadavg()
    print(f"runtimes: targets met {figures['met']}; load average {os.getloadavg()}", flush=True)
    return figures


def _runtime_ceilings(bundle, rounds: int) -> dict:
    """Forward alone, batch 4, on real-photo-sized random input: one stream on one thread, and one
    stream per core (one thread each); rounds interleave the variants, medians reported."""
    import warnings

    import torch

    from classifier.models.bundles import BundleError, load_learner
    from classifier.models.runtimes import default_workers, load_model

    streams = default_workers()
    size = bundle.image_size
    batch = torch.rand(4, 3, size, size).contiguous(memory_format=torch.channels_last)
    networks = {}
    for runtime, precision in VARIANTS:
        key = f"{runtime}:{precision}"
        try:
            if runtime == "eager":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    network = load_learner(bundle).model.eval().to(memory_format=torch.channels_last)
                networks[key] = (network, "fp32")
            else:
                model = load_model(bundle, runtime=runtime, precision=precision)
                networks[key] = (model.network, getattr(model.network, "precision_in_use", precision))
        except BundleError as exc:
            print(f"{key}: not measured ({exc})", flush=True)
    reference = torch.softmax(networks["eager:fp32"][0](batch), 1)
    times: dict[str, dict[str, list[float]]] = {k: {"one": [], "per_core": []} for k in networks}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    repeats = 4
    try:
        with torch.inference_mode():
            for network, _ in networks.values():
                network(batch)  # warm-up
            for _ in range(rounds):
                for key, (network, _) in networks.items():

                    def run(_: int, network=network) -> None:
                        for _ in range(repeats):
                            network(batch)

                    start = time.perf_counter()
                    run(0)
                    times[key]["one"].append(4 * repeats / (time.perf_counter() - start))
                    start = time.perf_counter()
                    with ThreadPoolExecutor(streams) as pool:
                        list(pool.map(run, range(streams)))
                    times[key]["per_core"].append(4 * repeats * streams / (time.perf_counter() - start))
            differences = {
                key: float((torch.softmax(network(batch).float(), 1) - reference).abs().max())
                for key, (network, _) in networks.items()
            }
    finally:
        torch.set_num_threads(threads)
    base = statistics.median(times["eager:fp32"]["one"])
    base_cores = statistics.median(times["eager:fp32"]["per_core"])
    figures = {}
    print(f"network alone, batch 4, photos/s (median of {rounds} rounds): one thread | one stream per core")
    for key, (_, ran) in networks.items():
        one, cores = statistics.median(times[key]["one"]), statistics.median(times[key]["per_core"])
        figures[key] = {
            "one_thread": round(one, 1),
            "per_core": round(cores, 1),
            "one_thread_vs_eager": round(one / base, 2),
            "per_core_vs_eager": round(cores / base_cores, 2),
            "precision_in_use": ran,
            "max_probability_difference_vs_eager": round(differences[key], 6),
        }
        print(
            f"  {key:14s} {one:6.1f} ({one / base:.2f}x) | {cores:6.1f} ({cores / base_cores:.2f}x)  ran {ran}, "
            f"max |p - eager's| {differences[key]:.2e}",
            flush=True,
        )
    return figures


def _bundle_with_detector(bundle, target: Path) -> Path:
    """A copy of the bundle whose report names a detector (its model file linked, not copied)."""
    import json

    target.mkdir(parents=True)
    report = json.loads((bundle.directory / "report.json").read_text(encoding="utf-8"))
    report["detector"] = DETECTOR_SECTION
    (target / "report.json").write_text(json.dumps(report), encoding="utf-8")
    (target / "model.pkl").symlink_to(bundle.model_path.resolve())
    return target


def _cli(arguments: list[str]) -> tuple[float, str]:
    """Run `python -m classifier ARGUMENTS`; its wall time and standard error."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "classifier", *arguments], cwd=REPO, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"python -m classifier {' '.join(arguments)} failed: {done.stderr[-2000:]}")
    return seconds, done.stderr


def _cli_runs(
    model_dir: Path, folder: Path, n: int, runs: tuple[str, ...], extra: list[str], unit: str
) -> dict:
    """`python -m classifier predict` over `folder` for each runtime, twice each, interleaved; the
    rate the command prints (model load included) and the wall time (Python's start included)."""
    import re

    figures: dict = {run: {"rates": [], "wall_s": []} for run in runs}
    for _ in range(2):
        for run in runs:
            runtime, _, precision = run.partition(":")
            out = folder.parent / f"{folder.name}-{runtime}-{precision or 'fp32'}.csv"
            seconds, stderr = _cli(
                [
                    "predict",
                    "--model",
                    str(model_dir),
                    "--runtime",
                    runtime,
                    "--precision",
                    precision or "fp32",
                    *extra,
                    "--sequence-gap",
                    "0",
                    "--out",
                    str(out),
                    str(folder),
                ]
            )
            rate = re.search(r"\(([\d.]+) photos/s\)", stderr)
            figures[run]["rates"].append(float(rate.group(1)) if rate else n / seconds)
            figures[run]["wall_s"].append(round(seconds, 1))
    base = max(figures["torch"]["rates"])
    labels = _labels(folder.parent, folder.name, runs)
    print(f"python -m classifier predict {' '.join(extra)} on {n} full-size frames, {unit}/s (best of 2):")
    for run in runs:
        best = max(figures[run]["rates"])
        figures[run].update(best=best, vs_torch=round(best / base, 2), same_labels_as_torch=labels[run])
        print(
            f"  {run:14s} {best:6.1f} {unit}/s ({best / base:.2f}x torch's), wall {figures[run]['wall_s']} s, "
            f"same label as torch on {labels[run]:.3f} of rows",
            flush=True,
        )
    return figures


def _labels(directory: Path, prefix: str, runs: tuple[str, ...]) -> dict[str, float]:
    import csv

    def rows(run: str) -> dict[str, str]:
        runtime, _, precision = run.partition(":")
        with open(directory / f"{prefix}-{runtime}-{precision or 'fp32'}.csv", encoding="utf-8") as handle:
            return {row["path"]: row["label"] for row in csv.DictReader(handle)}

    reference = rows("torch")
    return {
        run: round(sum(rows(run).get(path) == label for path, label in reference.items()) / len(reference), 4)
        for run in runs
    }


def _twelve_megapixels(bundle, detecting: Path, frames: list[Path], scratch: Path, args) -> dict:
    """Detector + classifier on 12 MP frames: the CLI's frames/s against the forward-only ceiling."""
    import json

    import torch
    from PIL import Image

    from classifier.models.bundles import read_bundle
    from classifier.models.detect import detector_for
    from classifier.models.predict import MAX_DETECTIONS
    from classifier.models.runtimes import default_workers, load_model

    distinct = 6 if args.quick else 12
    big = scratch / "twelve_mp"
    big.mkdir()
    for i, frame in enumerate(frames[:distinct]):
        with Image.open(frame) as im:
            im.convert("RGB").resize((4000, 3000), Image.BICUBIC).save(big / f"{i:02d}.jpg", quality=92)
    n = 24 if args.quick else 48
    folder = _repeat(sorted(big.glob("*.jpg")), n, scratch / "twelve_mp_frames")
    figures: dict = {"frames": n, "distinct": distinct, "size": "4000x3000"}
    runs = ("torch", "openvino", "onnx", "openvino:int8")
    cli = _cli_runs(detecting, folder, n, runs, [], "frames")
    streams = default_workers()
    for run in runs:
        runtime, _, precision = run.partition(":")
        precision = precision or "fp32"
        with open(folder.parent / f"{folder.name}-{runtime}-{precision}.csv", encoding="utf-8") as handle:
            import csv

            rows = list(csv.DictReader(handle))
        crops = sum(min(len(json.loads(r["detections"] or "[]")), MAX_DETECTIONS) for r in rows) / len(rows)
        model = load_model(read_bundle(detecting), runtime=runtime, precision=precision)
        detector = detector_for(read_bundle(detecting), runtime, precision)
        frame_batch = torch.rand(4, 3, 640, 640) * 255
        crop_count = max(1, round(4 * crops))
        crop_batch = torch.rand(crop_count, 3, bundle.image_size, bundle.image_size).contiguous(
            memory_format=torch.channels_last
        )

        def work(
            _: int, detector=detector, model=model, crop_batch=crop_batch, frame_batch=frame_batch
        ) -> None:
            with torch.inference_mode():
                for _ in range(2):
                    detector.network(frame_batch)
                    model.network(crop_batch)

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            work(0)
            rates = []
            for _ in range(3):
                start = time.perf_counter()
                with ThreadPoolExecutor(streams) as pool:
                    list(pool.map(work, range(streams)))
                rates.append(8 * streams / (time.perf_counter() - start))
        finally:
            torch.set_num_threads(threads)
        ceiling = statistics.median(rates)
        best = cli[run]["best"]
        figures[run] = {
            "cli_frames_per_s": best,
            "crops_per_frame": round(crops, 2),
            "forward_ceiling_frames_per_s": round(ceiling, 2),
            "ratio_to_ceiling": round(best / ceiling, 3),
            "vs_torch": cli[run]["vs_torch"],
        }
        print(
            f"  12 MP, {run:14s}: CLI {best:.2f} frames/s, forward-only ceiling {ceiling:.2f} frames/s "
            f"({crops:.2f} crops a frame) -> {best / ceiling:.2f} of it (targets >= "
            f"{RUNTIME_TARGETS['frames_per_s_12mp']:g} frames/s, >= {RUNTIME_TARGETS['ratio_12mp']:g})",
            flush=True,
        )
    return figures


if __name__ == "__main__":
    sys.exit(main())
