"""The real app in a real browser: `streamlit run` on a free localhost port, driven in Debian's Chromium.

Screenshots are saved in each test's temporary folder (printed with -s) so a person can look at them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.load_test import CHROMIUM, CHROMIUM_FLAGS
from conftest import make_tiny_image
from live_app import BROWSER_MARKS, running_app, tiny_app_folders

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def app_url(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_app(*tiny_app_folders(tiny_bundle, tmp_path_factory)) as (url, _):
        yield url


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
