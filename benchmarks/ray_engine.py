"""The Ray engine against the local one: the same 1,000 photos, the real command, side by side.

    .venv/bin/python benchmarks/ray_engine.py                     # 1,000 frames, ~10 min on 2 quiet CPUs
    .venv/bin/python benchmarks/ray_engine.py --photos 100        # proves the script works
    .venv/bin/python benchmarks/ray_engine.py --model DIR|NAME    # another bundle (default: serengeti)

Each run is `python -m classifier predict --engine local|ray --out labels.csv FOLDER` in a fresh process
over the full-size camera-trap JPEGs of ../shared/data/camera_traps, repeated by symlinks to `--photos`
(no image is copied into the project), so Ray's start-up, its actors' model loads and its copies between
processes are all in the figure. Figures (target from issue 19, on this 2-core machine):
- throughput of each engine, photos over the command's wall time, and their ratio: Ray >= 0.8 of local;
- peak memory of each run: the sum over the command's process tree (Ray's GCS, raylet and workers are
  its children) of proportional set sizes (shared pages split between the processes that map them),
  sampled every 0.25 s;
- the CPU time each run used (summed over its process tree), and photos per CPU-second;
- the per-CPU rate (the better engine's photos per CPU-second: on a shared machine the wall clock
  counts other users' work too) and what 1 million frames cost at
  it, in CPU-hours and at an on-demand and a spot price per vCPU-hour (assumed, printed; this machine's
  CPUs are a virtual machine's vCPUs, as a cloud's are).
With `--repeats N` the engines alternate N times and each figure is the median. The rows of the two
engines are compared too (all but `classified_at` must be equal). Writes benchmarks/results/ray_engine-<time>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from predict_speed import CAMERA_TRAPS, _full_size_frames, _repeat

from record import write_results

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.8
FRAMES = 1_000_000
# On-demand and spot prices of a compute-optimised vCPU-hour (AWS c7i, us-east-1, late 2026): assumptions.
PRICES_PER_VCPU_HOUR = {"on_demand": 0.045, "spot": 0.018}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    frames = _full_size_frames(CAMERA_TRAPS)
    if not frames:
        raise SystemExit(f"no full-size frames under {CAMERA_TRAPS}")
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as scratch:
        folder = _repeat(frames, args.photos, Path(scratch) / "photos")
        runs: dict[str, list[dict]] = {"local": [], "ray": []}
        for _ in range(args.repeats):
            for engine in runs:
                runs[engine].append(_run(engine, args.model, folder, Path(scratch) / f"{engine}.csv"))
        same = _rows(Path(scratch) / "local.csv") == _rows(Path(scratch) / "ray.csv")
    figures = {engine: _median(results) for engine, results in runs.items()}
    ratio = figures["ray"]["photos_per_s"] / figures["local"]["photos_per_s"]
    # Per core from CPU time, not wall time: on a shared machine the wall clock counts other users' work.
    per_core = max(f["photos_per_cpu_s"] for f in figures.values())
    figures.update(
        photos=args.photos,
        distinct_frames=len(frames),
        model=args.model,
        cores=cores,
        load_average=os.getloadavg(),
        ray_over_local=round(ratio, 3),
        ray_over_local_cpu=round(
            figures["ray"]["photos_per_cpu_s"] / figures["local"]["photos_per_cpu_s"], 3
        ),
        rows_equal=same,
        per_core_photos_per_s=round(per_core, 2),
        million_frames=_cost(per_core),
        runs=runs,
    )
    _print(figures)
    write_results("ray_engine", figures)
    return 0 if ratio >= TARGET_RATIO and same else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=1000, help="photos per run (default: 1000)")
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of each engine, alternating (default: 1)"
    )
    parser.add_argument("--model", default="serengeti", help="bundle name or folder (default: serengeti)")
    return parser


def _run(engine: str, model: str, folder: Path, out: Path) -> dict:
    """One `python -m classifier predict` run: its wall time and its process tree's peak memory."""
    command = [sys.executable, "-m", "classifier", "predict", "--engine", engine, "--model", model]
    start = time.perf_counter()
    process = subprocess.Popen(
        [*command, "--out", str(out), str(folder)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    usage = _Usage(process.pid)
    _, stderr = process.communicate()
    seconds = time.perf_counter() - start
    usage.stop()
    if process.returncode != 0:
        raise SystemExit(f"{engine} run failed ({process.returncode}): {stderr.decode()[-2000:]}")
    photos = len(_rows(out))
    result = {
        "seconds": round(seconds, 1),
        "photos_per_s": round(photos / seconds, 2),
        "peak_gb": usage.gb,
        "cpu_seconds": usage.cpu_seconds,
        "photos_per_cpu_s": round(photos / usage.cpu_seconds, 2),
    }
    print(
        f"{engine}: {photos} photos in {seconds:.1f} s ({usage.cpu_seconds:.0f} CPU-s), "
        f"peak memory {usage.gb:.2f} GB",
        flush=True,
    )
    return result


class _Usage:
    """A process and its descendants, sampled on a thread: the largest sum of their PSS, and the CPU
    time each used (its last reading: a process's last quarter second is missed)."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root, self.peak, self.done = psutil.Process(pid), 0, threading.Event()
        self.cpu: dict[int, float] = {}
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        import psutil

        while not self.done.wait(0.25):
            total = 0
            try:
                tree = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                continue
            for process in tree:
                with contextlib.suppress(psutil.Error):  # ended between the listing and the reading
                    total += process.memory_full_info().pss
                    times = process.cpu_times()
                    self.cpu[process.pid] = times.user + times.system
            self.peak = max(self.peak, total)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()

    @property
    def gb(self) -> float:
        return round(self.peak / 1e9, 3)

    @property
    def cpu_seconds(self) -> float:
        return round(sum(self.cpu.values()), 1)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [{k: v for k, v in row.items() if k != "classified_at"} for row in csv.DictReader(handle)]


def _median(results: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def _cost(per_core: float) -> dict:
    cpu_hours = FRAMES / per_core / 3600
    dollars = {name: round(cpu_hours * price, 2) for name, price in PRICES_PER_VCPU_HOUR.items()}
    return {"cpu_hours": round(cpu_hours, 1), "usd": dollars}


def _print(figures: dict) -> None:
    local, ray = figures["local"], figures["ray"]
    cost = figures["million_frames"]
    print(
        f"\nlocal {local['photos_per_s']:.2f} photos/s ({local['peak_gb']:.2f} GB), "
        f"ray {ray['photos_per_s']:.2f} photos/s ({ray['peak_gb']:.2f} GB): "
        f"ray/local {figures['ray_over_local']:.2f} (target >= {TARGET_RATIO}), per CPU-second "
        f"{figures['ray_over_local_cpu']:.2f}; rows equal: {figures['rows_equal']}\n"
        f"per core {figures['per_core_photos_per_s']:.2f} photos/s; 1 million frames: "
        f"{cost['cpu_hours']:.0f} CPU-hours, "
        f"${cost['usd']['on_demand']:.0f} on demand, ${cost['usd']['spot']:.0f} spot "
        f"(load average {figures['load_average'][0]:.1f})"
    )


if __name__ == "__main__":
    sys.exit(main())
