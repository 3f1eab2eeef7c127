"""The real app for browser tests: `streamlit run` on a free localhost port, to drive with Debian's Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks.load_test import CHROMIUM
from conftest import write_tiny_examples, write_tiny_species_notes

ROOT = Path(__file__).resolve().parents[1]
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make test installs it)"
)
BROWSER_MARKS = [pytest.mark.browser, pytest.mark.slow, needs_chromium]
# The classify page shows a class by its common name from the tiny notes; blue has no notes.
TINY_NAMES = {"red": "Red field", "green": "Green field", "blue": "blue"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


def tiny_app_folders(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A models folder holding only the tiny bundle, with example photos, and a species folder with its notes."""
    models = tmp_path_factory.mktemp("app_models")
    shutil.copytree(tiny_bundle, models / "tiny")
    write_tiny_examples(models / "tiny")
    return models, write_tiny_species_notes(tmp_path_factory.mktemp("app_species"))


@contextmanager
def running_app(
    models: Path, species: Path, log: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """(URL, process) of `streamlit run` serving `models` and `species`; its stderr goes to `log`."""
    port = free_port()
    env = {**os.environ, "WILDLIFE_MODELS_DIR": str(models), "WILDLIFE_SPECIES_DIR": str(species)}
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port)]
    command += ["--server.headless", "true", "--server.address", "127.0.0.1"]
    command += ["--browser.gatherUsageStats", "false"]
    with open(log or os.devnull, "wb") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_health(url, process)
            yield url, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
