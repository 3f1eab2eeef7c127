"""How long loading a species notes file takes, and what its validation adds to reading the YAML.

    python benchmarks/species_load.py [--bundle serengeti] [--repeats 20] [--against GIT_REVISION]

Prints the median of `--repeats` loads (`load_species_book`) against the median of parsing the same text
alone (PyYAML's pure-Python loader with the module's duplicate-key check), the baseline every version pays,
and what validation adds: the median, over the turns, of a load's time minus that turn's parse.
`--against` also loads the file with `classifier/knowledge/species.py` as it was at a git revision
(e.g. `--against main`), interleaved with this one in the same process, and prints the ratio. The first
load, which builds the validators, is timed on its own.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifier.knowledge import species  # noqa: E402


def module_at(revision: str, folder: Path) -> ModuleType:
    """`classifier/knowledge/species.py` as it was at `revision`, imported under another name."""
    source = subprocess.run(
        ["git", "show", f"{revision}:classifier/knowledge/species.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = folder / "species_then.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("species_then", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["species_then"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def timed_ms(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Each run `repeats` times, taking turns so a busy machine slows them alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="serengeti", help="species_info/BUNDLE.yaml (default: serengeti)")
    parser.add_argument("--repeats", type=int, default=20, help="loads per version (default: 20)")
    parser.add_argument("--against", help="also time species.py as it was at this git revision")
    args = parser.parse_args()
    path = species.SPECIES_DIR / f"{args.bundle}.yaml"
    text = path.read_text(encoding="utf-8")

    start = time.perf_counter()
    species.load_species_book(path)
    print(f"first load (parse, and the validators built): {(time.perf_counter() - start) * 1000:.1f} ms")
    runs = {
        "YAML parse alone": lambda: yaml.load(text, Loader=species._StrictLoader),
        "load_species_book": lambda: species.load_species_book(path),
    }
    with tempfile.TemporaryDirectory() as folder:
        if args.against:
            then = module_at(args.against, Path(folder))
            then.load_species_book(path)
            runs[f"at {args.against}"] = lambda: then.load_species_book(path)
        times = timed_ms(runs, args.repeats)
    parse = times["YAML parse alone"]
    print(
        f"{path.name}, median of {args.repeats} (validation: median of each turn's time minus the parse's):"
    )
    for name, ms in times.items():
        extra = statistics.median(a - b for a, b in zip(ms, parse, strict=True))
        print(f"  {name:<20} {statistics.median(ms):7.1f} ms   validation {extra:5.1f} ms")
    if args.against:
        ratio = statistics.median(times["load_species_book"]) / statistics.median(times[f"at {args.against}"])
        print(f"  now / at {args.against}: {ratio:.3f}")


if __name__ == "__main__":
    main()
