"""Time `python -m classifier season` on a generated season, and its overlap bootstrap against the direct way.

    nice .venv/bin/python benchmarks/season.py                       # 100,000 observations, 20 cameras, 12 species
    nice .venv/bin/python benchmarks/season.py --observations 20000 --bootstrap 200

Generates a Camtrap DP package (media-level observations, von Mises activity per species), then times:
reading and checking it against the standard's schemas, the analysis (events, RAI, activity, every
overlap with its bootstrap interval) and writing the files. The baseline, in the same run: one pair's
bootstrap computed the direct way, one kernel matrix per bootstrap sample (what overlap's densRad does),
against this project's Fourier series for all samples at once; both must give the same estimates.
Prints the figures and writes them to benchmarks/results/season-<time>.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from classifier.intake.camtrap_dp_package import read_camtrap_dp  # noqa: E402
from classifier.intake.camtrap_dp_schema import TABLES, field_names  # noqa: E402
from classifier.results import activity  # noqa: E402
from classifier.results.season import analyse  # noqa: E402
from classifier.results.season_files import write_season  # noqa: E402
from classifier.results.season_input import from_package  # noqa: E402
from record import write_results  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    figures: dict = {
        "observations": args.observations,
        "deployments": args.deployments,
        "species": args.species,
    }
    with tempfile.TemporaryDirectory(prefix="season-bench-") as folder:
        package = generate(Path(folder) / "package", args)
        started = time.perf_counter()
        read = read_camtrap_dp(package)
        figures["read_and_check_s"] = time.perf_counter() - started
        assert not read.problems, read.problems[:3]
        started = time.perf_counter()
        season = analyse(from_package(read), bootstrap=args.bootstrap)
        figures["analyse_s"] = time.perf_counter() - started
        figures["events"], figures["overlap_pairs"] = len(season.events), len(season.overlap)
        started = time.perf_counter()
        written = write_season(season, Path(folder) / "out")
        figures["write_s"], figures["files"] = time.perf_counter() - started, len(written)
    figures |= bootstrap_baseline(args.bootstrap)
    for key, value in figures.items():
        print(f"{key:>28}: {value:.3f}" if isinstance(value, float) else f"{key:>28}: {value}")
    write_results("season", figures)
    return 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--observations", type=int, default=100_000, help="media-level observations (default 100000)"
    )
    parser.add_argument("--deployments", type=int, default=20, help="cameras (default 20)")
    parser.add_argument("--species", type=int, default=12, help="species (default 12)")
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap samples per overlap (default 1000)"
    )
    return parser


def generate(folder: Path, args: argparse.Namespace) -> Path:
    """A 60-day season: each species with its own peak hour; bursts of 1-3 photos."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    zone = timezone(timedelta(hours=3))
    start = datetime(2024, 3, 1, tzinfo=zone)
    deployments = [
        {"deploymentID": f"D{d:02d}", "latitude": f"{-2.4 - d * 0.01:.4f}", "longitude": f"{34.8 + d * 0.01:.4f}",
         "deploymentStart": start.isoformat(), "deploymentEnd": (start + timedelta(days=60)).isoformat()}
        for d in range(args.deployments)
    ]  # fmt: skip
    peaks = rng.uniform(0, 2 * np.pi, args.species)
    media, observations = [], []
    for n in range(args.observations):
        species = int(rng.integers(args.species))
        hour = (rng.vonmises(peaks[species] - np.pi, 2.0) + np.pi) / (2 * np.pi) * 24
        taken = (start + timedelta(days=int(rng.integers(60)), hours=float(hour))).replace(microsecond=0)
        deployment = f"D{int(rng.integers(args.deployments)):02d}"
        media.append(
            {
                "mediaID": f"m{n}",
                "deploymentID": deployment,
                "timestamp": taken.isoformat(),
                "filePath": f"{deployment}/{n}.jpg",
                "filePublic": "false",
                "fileMediatype": "image/jpeg",
            }
        )
        observations.append({"observationID": f"o{n}", "deploymentID": deployment, "mediaID": f"m{n}",
                             "eventStart": taken.isoformat(), "eventEnd": taken.isoformat(),
                             "observationLevel": "media", "observationType": "animal",
                             "scientificName": f"Species number{species:02d}"})  # fmt: skip
    for name, rows in zip(TABLES, (deployments, media, observations), strict=True):
        with open(folder / f"{name}.csv", "w", encoding="utf-8", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=field_names(name), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    descriptor = {
        "profile": "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/camtrap-dp-profile.json",
        "resources": [{"name": n, "path": f"{n}.csv", "profile": "tabular-data-resource"} for n in TABLES],
    }
    (folder / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
    return folder


def bootstrap_baseline(samples: int) -> dict[str, float]:
    """One Dhat4 pair (300 and 200 events): the Fourier bootstrap against one kernel matrix per sample."""
    rng = np.random.default_rng(5)
    a = rng.vonmises(1.0, 2.0, 300) % (2 * np.pi)
    b = rng.vonmises(2.0, 1.5, 200) % (2 * np.pi)
    started = time.perf_counter()
    fast = activity.bootstrap(a, b, "Dhat4", samples, np.random.default_rng(9))
    fourier = time.perf_counter() - started
    started = time.perf_counter()
    direct = _direct_bootstrap(a, b, samples, np.random.default_rng(9))
    baseline = time.perf_counter() - started
    return {"bootstrap_fourier_s": fourier, "bootstrap_direct_s": baseline, "bootstrap_speedup": baseline / fourier,
            "bootstrap_max_difference": float(np.max(np.abs(fast - direct)))}  # fmt: skip


def _direct_bootstrap(a: np.ndarray, b: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """The same draws as activity.bootstrap, each sample expanded and estimated by overlap_estimate."""
    grid = np.linspace(0.0, 2 * np.pi, activity.BOOTSTRAP_GRID)[1:]
    draws = []
    for times in (a, b):
        p = activity.density(times, grid, activity.bandwidth(times))
        draws.append(rng.multinomial(len(times), p / p.sum(), size=samples))
    return np.array([
        activity.overlap_estimate(np.repeat(grid, ca), np.repeat(grid, cb), "Dhat4")
        for ca, cb in zip(*draws, strict=True)
    ])  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
