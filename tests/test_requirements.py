"""Installs: `make` installs exact, hashed versions from the locks; hosts install the same versions with
CPU-only PyTorch from requirements.txt, which is generated from the lock and never edited by hand."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from cloud_requirements import cloud_requirements, read_lock  # noqa: E402

CUDA_PACKAGES = re.compile(r"^(nvidia-|triton|cuda-)")


def lock_pins(name: str) -> dict[str, set[str]]:
    pins: dict[str, set[str]] = {}
    for pin in read_lock((ROOT / name).read_text(encoding="utf-8")):
        pins.setdefault(pin.name, set()).add(pin.version)
    return pins


def hosted_pins() -> dict[str, set[str]]:
    pins: dict[str, set[str]] = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", "-", "./")):
            requirement = Requirement(line)
            pins.setdefault(requirement.name, set()).add(str(requirement.specifier).removeprefix("=="))
    return pins


def test_requirements_txt_is_what_the_lock_gives_so_no_one_edits_it_by_hand() -> None:
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    assert (ROOT / "requirements.txt").read_text(encoding="utf-8") == cloud_requirements(lock), (
        "requirements.txt is out of date: run `make lock`"
    )


def test_hosts_install_the_locked_versions_with_cpu_only_torch_and_no_cuda_libraries() -> None:
    locked, hosted = lock_pins("requirements.lock"), hosted_pins()
    assert hosted["torch"] == {f"{v}+cpu" for v in locked["torch"]}
    assert hosted["torchvision"] == {f"{v}+cpu" for v in locked["torchvision"]}
    assert not [name for name in hosted if CUDA_PACKAGES.match(name)]
    assert [name for name in locked if CUDA_PACKAGES.match(name)], "the PyPI lock has torch's CUDA build"
    for name, versions in hosted.items():
        if name not in ("torch", "torchvision"):
            assert versions == locked[name], name
    assert set(locked) - set(hosted) == {name for name in locked if CUDA_PACKAGES.match(name)}
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert "--find-links https://download.pytorch.org/whl/cpu/torch/" in text.splitlines()
    assert "--extra-index-url" not in text  # uv would look for numpy on PyTorch's index too
    assert "./vendor/megadetector-lite" in text.splitlines()  # the detector's weights, built at install


def test_locks_pin_every_range_of_pyproject_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for lock, ranges in (
        ("requirements.lock", project["dependencies"]),
        ("requirements-test.lock", project["dependencies"] + project["optional-dependencies"]["test"]),
    ):
        pins = lock_pins(lock)
        for text in ranges:
            requirement = Requirement(text)
            assert pins.get(requirement.name), f"{lock} has no {requirement.name}"
            assert all(v in requirement.specifier for v in pins[requirement.name]), (lock, text)
        entries = re.split(r"\n(?=[A-Za-z])", (ROOT / lock).read_text(encoding="utf-8"))
        assert all("--hash=sha256:" in entry for entry in entries if not entry.startswith("#"))
    test_lock, app_lock = lock_pins("requirements-test.lock"), lock_pins("requirements.lock")
    assert all(test_lock[name] == versions for name, versions in app_lock.items())


def test_make_installs_from_the_locks_checking_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    installs = re.findall(r"pip install .* -r .*", makefile)
    assert installs and all("--require-hashes" in line and ".lock" in line for line in installs), installs
    assert re.search(r"^lock:", makefile, re.M), "one command (`make lock`) refreshes the locks"
