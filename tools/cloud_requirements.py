"""Write requirements.txt, the file hosts install (Streamlit Community Cloud, Binder, Docker), from the lock.

    .venv/bin/python tools/cloud_requirements.py            # run by `make lock`; --check compares instead

The lock (requirements.lock, from PyPI) pins PyTorch's CUDA build, the only Linux build PyPI has: on a
host with no GPU it installs several GB of CUDA libraries and maps hundreds of MB of them into the app.
This file pins the same versions of everything, but PyTorch and torchvision as their CPU-only builds
(`+cpu`, from PyTorch's own download pages), and leaves out what only the CUDA build needs: the packages
that the lock installs for torch alone on Linux (CUDA, cuDNN, NCCL, Triton, ...).

The CPU builds come from `--find-links` pages that list only torch's and torchvision's files, not from an
extra index: an installer that takes each package from the first index that has it (uv, which Community
Cloud uses) would otherwise look for numpy and pillow on PyTorch's index too and find other versions.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
OUT = REPO / "requirements.txt"
CPU_PAGES = "https://download.pytorch.org/whl/cpu"
CPU_BUILDS = ("torch", "torchvision")
PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$"
)

HEADER = f"""\
# GENERATED from requirements.lock by `make lock` (tools/cloud_requirements.py): do not edit by hand.
# What hosts install (Streamlit Community Cloud reads this file; binder/ and the Dockerfile use it): the
# lock's exact versions, with CPU-only PyTorch from PyTorch's download pages and none of the CUDA
# libraries the lock's PyPI build of torch needs. `make` installs requirements.lock instead.
--find-links {CPU_PAGES}/torch/
--find-links {CPU_PAGES}/torchvision/
# The animal detector's weights, taken from the pinned zamba wheel when this local package is built.
./vendor/megadetector-lite
"""


@dataclass
class Pin:
    name: str
    version: str
    marker: str | None
    via: set[str] = field(default_factory=set)

    def line(self) -> str:
        version = f"{self.version}+cpu" if self.name in CPU_BUILDS else self.version
        return f"{self.name}=={version}" + (f" ; {self.marker}" if self.marker else "")


def read_lock(text: str) -> list[Pin]:
    """The lock's pins (a package may have one per Python version), each with what requires it (`# via`)."""
    pins: list[Pin] = []
    current: Pin | None = None
    for raw in text.splitlines():
        match = PIN.match(raw)
        if match:
            current = Pin(_normal(match["name"]), match["version"], match["marker"])
            pins.append(current)
            continue
        comment = raw.strip().removeprefix("#").strip()
        if current is not None and raw.lstrip().startswith("#") and comment:
            names = comment.removeprefix("via").strip()
            if names and not names.startswith("-r"):
                current.via.add(_normal(names.split(" (")[0]))
    return pins


def cuda_only(pins: list[Pin]) -> set[str]:
    """Packages installed for torch alone, and on Linux alone: the CUDA build's own libraries."""
    dropped: set[str] = set()
    grown = True
    while grown:
        grown = False
        for pin in pins:
            linux = pin.marker is not None and "sys_platform == 'linux'" in pin.marker
            if pin.name not in dropped and linux and pin.via and pin.via <= dropped | {"torch"}:
                dropped.add(pin.name)
                grown = True
    return dropped


def cloud_requirements(lock_text: str) -> str:
    pins = read_lock(lock_text)
    missing = [name for name in CPU_BUILDS if name not in {pin.name for pin in pins}]
    if missing:
        raise SystemExit(f"requirements.lock has no {', '.join(missing)}: run `make lock`.")
    dropped = cuda_only(pins)
    kept = sorted((pin for pin in pins if pin.name not in dropped), key=lambda pin: (pin.name, pin.line()))
    return HEADER + "".join(pin.line() + "\n" for pin in kept)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if requirements.txt is out of date")
    args = parser.parse_args(argv)
    wanted = cloud_requirements(LOCK.read_text(encoding="utf-8"))
    if args.check:
        if OUT.read_text(encoding="utf-8") != wanted:
            print("requirements.txt is not what requirements.lock gives: run `make lock`.", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(wanted, encoding="utf-8")
    print(f"wrote {OUT.relative_to(REPO)}: {wanted.count(chr(10)) - HEADER.count(chr(10))} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
