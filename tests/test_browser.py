"""The real app in a real browser: `streamlit run` on a free localhost port, driven in Debian's Chromium.

Screenshots are saved in each test's temporary folder (printed with -s) so a person can look at them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import make_tiny_image, write_tiny_species_notes

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make test installs it)"
    ),
]


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


@pytest.fixture(scope="module")
def app_url(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    models = tmp_path_factory.mktemp("browser_models")
    shutil.copytree(tiny_bundle, models / "tiny")
    species = write_tiny_species_notes(tmp_path_factory.mktemp("browser_species"))
    port = free_port()
    env = {**os.environ, "WILDLIFE_MODELS_DIR": str(models), "WILDLIFE_SPECIES_DIR": str(species)}
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port)]
    command += [
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def test_upload_a_jpeg_and_read_the_label_and_confidence(app_url: str, page, tmp_path: Path) -> None:
    photo = tmp_path / "red.jpg"
    make_tiny_image("red", seed=21).save(photo, quality=92)
    page.goto(app_url, timeout=60_000)
    page.get_by_text("What animal is this?").wait_for(timeout=60_000)
    page.locator("input[type=file]").first.set_input_files(str(photo))
    bar = page.get_by_text("Red field · ").first
    bar.wait_for(timeout=60_000)
    page.screenshot(path=tmp_path / "classify.png", full_page=True)
    assert "%" in bar.inner_text()
    verdict = (
        page.locator("h3").filter(has_text="Red field").or_(page.locator("h3").filter(has_text="Not sure"))
    )
    assert verdict.first.is_visible()


def test_species_deep_link(app_url: str, page, tmp_path: Path) -> None:
    page.goto(f"{app_url}/species?species=red", timeout=60_000)
    page.locator("h1").filter(has_text="Red field").wait_for(timeout=60_000)
    assert page.get_by_text("A field that is mostly red.").is_visible()
    page.screenshot(path=tmp_path / "species.png", full_page=True)


def test_performance_page(app_url: str, page, tmp_path: Path) -> None:
    page.goto(f"{app_url}/performance", timeout=60_000)
    page.get_by_text("Confusion matrix").wait_for(timeout=60_000)
    page.locator("canvas, svg.marks").first.wait_for(timeout=30_000)
    page.screenshot(path=tmp_path / "performance.png", full_page=True)
    assert page.get_by_text("Accuracy").first.is_visible()
