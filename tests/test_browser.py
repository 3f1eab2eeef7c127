"""The real app in a real browser: `streamlit run` on a free localhost port, driven in Debian's Chromium.

Screenshots are saved in each test's temporary folder (printed with -s) so a person can look at them.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from benchmarks.load_test import CHROMIUM, CHROMIUM_FLAGS, SCRIPT_DONE
from conftest import make_tiny_image
from live_app import BROWSER_MARKS, running_app, tiny_app_folders
from review_rows import START, photo_bytes

pytestmark = BROWSER_MARKS
TINY_TITLE = "What kind of place is this?"  # the tiny bundle's notes describe places
ROOT = Path(__file__).resolve().parents[1]


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
    page.get_by_text(TINY_TITLE).wait_for(timeout=60_000)
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


def test_the_landing_pages_example_photo_classifies_in_one_click(app_url: str, page, tmp_path: Path) -> None:
    page.goto(app_url, timeout=60_000)
    page.locator("h1").filter(has_text=TINY_TITLE).wait_for(timeout=60_000)
    assert page.get_by_text("For curious people and students").is_visible()
    tries = page.get_by_role("button", name="Try this one")
    tries.first.wait_for(timeout=60_000)
    page.wait_for_function(SCRIPT_DONE, timeout=60_000)
    assert tries.count() == 3
    tries.first.click()
    page.locator("[data-testid=stProgress]").first.wait_for(timeout=60_000)
    page.wait_for_function(SCRIPT_DONE, timeout=60_000)
    page.screenshot(path=tmp_path / "landing-example.png", full_page=True)
    assert page.get_by_text("Photo: generated test photos").first.is_visible()


# The quiz's photo `n` is answered (its score line counts it), the run is over and nothing of the run
# before is left on the page (a "Next photo" button left from the photo before would be clicked otherwise).
ANSWERED = (
    """n => [...document.querySelectorAll('p')].some(p => p.innerText.includes(`${n} of 10 asked`))
    && document.querySelector('.st-key-quiz_next button')
    && !document.querySelector('[data-testid=stElementContainer][data-stale=true]') && """
    + SCRIPT_DONE
)


def test_the_quiz_runs_to_its_score(app_url: str, page, tmp_path: Path) -> None:
    page.set_default_timeout(60_000)
    page.goto(f"{app_url}/quiz")
    page.locator("h1").filter(has_text="Can you beat the model?").wait_for()
    for number in range(10):
        page.locator(f"[class*='st-key-quiz_choice_{number}_'] button").first.click()
        page.wait_for_function(ANSWERED, arg=number + 1)  # this photo's answer, not the last one's
        page.locator(".st-key-quiz_next button").click()
    verdict = page.locator("h3").filter(has_text=re.compile(r"^(You beat the model|The model wins|A draw)"))
    verdict.wait_for()
    page.screenshot(path=tmp_path / "quiz-score.png", full_page=True)
    assert re.search(r"\d+ of 10 for you, \d+ of 10 for the model", verdict.inner_text())
    page.get_by_role("button", name="Play again").wait_for()


@pytest.fixture(scope="module")
def bundled_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The project's own bundles and notes: the species pages load no model."""
    with running_app(ROOT / "models", ROOT / "species_info") as (url, _):
        yield url


def images_loaded(page) -> int:
    return page.evaluate(
        "[...document.querySelectorAll('[data-testid=stImage] img')].filter(i => i.complete && i.naturalWidth > 0).length"
    )


def test_species_pages_show_the_photo_and_a_map_of_where_it_lives(
    bundled_url: str, page, tmp_path: Path
) -> None:
    page.set_default_timeout(60_000)
    page.goto(f"{bundled_url}/species")
    page.locator("h1").filter(has_text="Species").wait_for()
    page.wait_for_function("n => document.querySelectorAll('[data-testid=stImage] img').length === n", arg=54)
    page.wait_for_function(SCRIPT_DONE)
    page.screenshot(path=tmp_path / "species-list.png", full_page=True)
    for key, name, country in (
        ("zebra", "Plains zebra", "MOZ"),
        ("human", "Human", "USA"),
        ("aardvark", "Aardvark", ""),
    ):
        page.goto(f"{bundled_url}/species?species={key}&country={country}")
        page.locator("h1").filter(has_text=name).wait_for()
        page.locator(
            "[data-testid=stVegaLiteChart] canvas, [data-testid=stVegaLiteChart] svg"
        ).first.wait_for()
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=stImage] img')].some(i => i.complete && i.naturalWidth > 0)"
        )
        assert images_loaded(page) == 1
        assert page.get_by_text("Photo: Snapshot Serengeti field guide").is_visible()
        assert page.get_by_role("heading", name="Where it lives").is_visible()
        page.screenshot(path=tmp_path / f"species-{key}.png", full_page=True)


NAVIGATION = [
    "Classify a photo",
    "Batch-label photos",
    "Review and correct",
    "Season",
    "Species",
    "Look-alikes",
    "Can you beat the model?",
    "Model performance",
    "About the models",
]


def page_drawn(page, title: str, timeout: float) -> None:
    """Wait until the page titled `title` is drawn and its run is over. After a click in the sidebar the page
    before stays on screen, its widgets live, until the new page's run replaces them: a test that acts at
    once can give the photos to the classify page's uploader."""
    page.locator("h1").filter(has_text=title).wait_for(timeout=timeout)
    page.wait_for_function(SCRIPT_DONE, timeout=timeout)


def test_a_page_link_as_a_fresh_servers_first_visit_has_the_apps_navigation(
    tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory, page, tmp_path: Path
) -> None:
    """Its own server: the first page a fresh process serves decides Streamlit's multipage mode."""
    with running_app(*tiny_app_folders(tiny_bundle, tmp_path_factory)) as (url, _):
        page.goto(f"{url}/batch", timeout=60_000)
        page_drawn(page, "Batch-label photos", timeout=60_000)
        page.locator("[data-testid=stFileUploaderDropzone]").wait_for(timeout=60_000)  # widgets drawn
        page.screenshot(path=tmp_path / "first-visit-batch.png", full_page=True)
        links = page.locator("[data-testid=stSidebarNav] a").all_inner_texts()
        titles = [link.strip().splitlines()[-1] for link in links]  # after the icon's name
        assert titles == NAVIGATION  # not every module of app_pages/, helpers and all
        assert page.get_by_role("slider", name="Confidence threshold").count() == 1


# ------------------------------------------------------------------------------------ review and correct

# The page's run is over and shows `text` in its progress bar, with nothing left of the run before (short
# runs end before the "Running" widget shows; elements of the last run stay, marked stale, until replaced).
SETTLED = """text => {
    const app = document.querySelector('[data-testid=stApp]');
    const bar = document.querySelector('[data-testid=stProgress]');
    return app && app.dataset.testScriptState === 'notRunning' && bar && bar.innerText.trim() === text
        && !document.querySelector('[data-testid=stElementContainer][data-stale=true]')
        && !document.querySelector('[data-testid=stStatusWidget] *');
}"""
PHOTOS = 24
FIRST_SITTING = 20
BURST = (12, 13, 14)  # the only photos taken within a minute of each other: one sequence
# Generous, for any one step: a step takes about a second on a quiet machine, but on two cores shared with
# other jobs (load 15) a 60 s wait has run out.
WAIT_MS = 120_000
GUESS = re.compile(r"(?P<label>.+?) · \d+%")


def settled(page, progress: str) -> None:
    page.wait_for_function(SETTLED, arg=progress, timeout=WAIT_MS)


def at_place(page, place: int) -> None:
    """Wait until the open photo is the queue's `place`-th and the run is over."""
    page.wait_for_function(
        """text => [...document.querySelectorAll('[data-testid=stCaptionContainer]')].some(
            c => c.innerText.startsWith(text)) && """
        + SCRIPT_DONE,
        arg=f"{place} of {PHOTOS} in the queue · ",
        timeout=WAIT_MS,
    )


def photo_shown(page, path: str) -> None:
    """Wait until the photo captioned `path` is on the page, loaded."""
    page.wait_for_function(
        """path => [...document.querySelectorAll('[data-testid=stImage]')].some(figure => {
            const img = figure.querySelector('img');
            return figure.innerText.trim() === path && img && img.complete && img.naturalWidth > 0;
        })""",
        arg=path,
        timeout=WAIT_MS,
    )


def open_photo(page) -> tuple[int, str]:
    """(its place in the queue, its path) of the photo open for review, as its caption says."""
    caption = page.locator("[data-testid=stCaptionContainer]").filter(has_text=" in the queue · ")
    place, _, path = caption.inner_text().partition(" in the queue · ")
    return int(place.split(" of ")[0]), path.rsplit(" · ", 1)[-1].strip()


def uploaded(page, key: str, files: int) -> None:
    """Wait until the uploader `key` lists `files` files, none still uploading, and the run is over.

    A file's chip shows from the start of its upload, with a spinner until the upload ends; the uploader
    gives the server its files only when all have ended. A click before that runs the page without them.
    """
    page.wait_for_function(
        """([key, files]) => document.querySelectorAll(`.st-key-${key} [data-testid=stFileChip]`).length
            === files && !document.querySelector(`.st-key-${key} [data-testid=stFileChipIconSpinner]`) && """
        + SCRIPT_DONE,
        arg=[key, files],
        timeout=WAIT_MS,
    )


def button(page, key: str):
    return page.locator(f".st-key-{key} button:visible")


def guess(page, number: int) -> str:
    """The label the model's guess `number` (its button, its key) gives."""
    return GUESS.match(button(page, f"review_guess_{number}").inner_text()).group("label")


def saved_rows(page, folder: Path, name: str) -> dict[str, dict[str, str]]:
    """Download the review's CSV (its button) into `folder`: path -> row."""
    with page.expect_download() as download:
        button(page, "review_download_csv").click()
    assert download.value.suggested_filename == name
    folder.mkdir(exist_ok=True)
    target = folder / name
    download.value.save_as(target)
    text = target.read_text(encoding="utf-8")
    header = next(csv.reader(io.StringIO(text)))
    assert len(set(header)) == len(header), header  # a spreadsheet reads a name given twice as two columns
    return {row["path"]: row for row in csv.DictReader(io.StringIO(text))}


def test_review_20_photos_by_key_and_click_save_the_csv_and_continue_later(
    app_url: str, browser, page, tmp_path: Path
) -> None:
    """Issue 16: batch-label 24 photos, review 20 of them (keys and clicks, an undo, a whole sequence),
    download the CSV; in a new browser session upload it with the same photos: 20 of 24 reviewed, open at
    the 21st, the labels and who gave them kept; review the last 4."""
    photos = []
    (tmp_path / "photos").mkdir()
    for i in range(PHOTOS):
        # EXIF dates 5 minutes apart but the burst's, 20 s apart (an undated upload is a sequence of its
        # own).
        taken = START + timedelta(minutes=5 * min(i, BURST[0]), seconds=20 * max(0, i - BURST[0]))
        taken += timedelta(minutes=5 * max(0, i - BURST[-1]))
        photo = tmp_path / "photos" / f"trap_{i:02d}.jpg"
        photo.write_bytes(photo_bytes(("red", "green", "blue")[i % 3], 300 + i, taken))
        photos.append(str(photo))

    # The batch page, from the sidebar; a threshold of 1.0 sends every photo to a person: 24 in the queue.
    page.set_default_timeout(WAIT_MS)
    page.goto(app_url)
    page.get_by_text(TINY_TITLE).wait_for()
    page.locator("[data-testid=stSidebarNav]").get_by_text("Batch-label photos").click()
    page_drawn(page, "Batch-label photos", timeout=WAIT_MS)
    threshold = page.get_by_role("slider", name="Confidence threshold")
    threshold.focus()
    threshold.press("End")
    page.locator("[data-testid=stSliderThumbValue]").filter(has_text="1.00").wait_for()
    page.locator(".st-key-batch_uploads input[type=file]").set_input_files(photos)
    page.get_by_role("button", name=f"Label {PHOTOS} file(s)").click()  # drawn once the server has all 24
    button(page, "batch_review").click()
    settled(page, f"0 of {PHOTOS} reviewed")
    page.get_by_role("heading", name="Review and correct").wait_for()
    assert open_photo(page) == (1, "trap_00.jpg")
    photo_shown(page, "trap_00.jpg")

    page.locator(".st-key-review_reviewer input").fill("A. Ranger")
    page.locator(".st-key-review_reviewer input").press("Enter")
    settled(page, f"0 of {PHOTOS} reviewed")

    expected: dict[str, str] = {}  # path -> the label given to it
    done = 0

    def review(label: Callable[[], str], action: Callable[[], None], photos: int = 1) -> None:
        """Label the open photo (and the next `photos` - 1 of its sequence) by `action`."""
        nonlocal done
        place, path = open_photo(page)
        assert (place, path) == (done + 1, f"trap_{done:02d}.jpg")  # the queue, in order
        given = label()
        for number in range(done, done + photos):
            expected[f"trap_{number:02d}.jpg"] = given
        action()
        done += photos
        settled(page, f"{done} of {PHOTOS} reviewed")
        if done < PHOTOS:
            assert open_photo(page) == (done + 1, f"trap_{done:02d}.jpg")  # the next one to review
            photo_shown(page, f"trap_{done:02d}.jpg")

    def key(name: str) -> Callable[[], None]:
        return lambda: page.keyboard.press(name)

    def click(widget: str) -> Callable[[], None]:
        return lambda: button(page, widget).click()

    subheader = page.locator("[data-testid=stHeadingWithActionElements] h3").first

    def model_label() -> str:
        return subheader.inner_text().strip()

    # What each key gives the open photo: the model's guesses 1-3, its label kept, blank, unknown.
    keyed = {
        "1": lambda: guess(page, 1),
        "2": lambda: guess(page, 2),
        "3": lambda: guess(page, 3),
        "a": model_label,
        "b": lambda: "blank",
        "u": lambda: "unknown",
    }
    review(keyed["1"], click("review_guess_1"))  # a click: the focus leaves the name's text box
    for name in ("1", "2", "a", "b", "u"):
        review(keyed[name], key(name))
    # Z undoes the last correction and opens its photo again.
    undone = list(expected)[-1]
    page.keyboard.press("z")
    done -= 1
    settled(page, f"{done} of {PHOTOS} reviewed")
    assert open_photo(page) == (done + 1, undone)
    del expected[undone]
    review(keyed["3"], key("3"))
    # N and P move through the queue without labelling.
    page.keyboard.press("n")
    at_place(page, done + 2)
    page.keyboard.press("p")
    at_place(page, done + 1)
    # The mouse: the model's guesses, keep, blank, unknown, any label, a name typed in.
    review(keyed["2"], click("review_guess_2"))
    review(model_label, click("review_keep"))
    review(keyed["b"], click("review_blank"))
    review(keyed["u"], click("review_unknown"))
    pills = page.locator("[data-testid=stButtonGroup]").filter(has_text="Any label")
    review(lambda: "green", lambda: pills.get_by_role("radio", name="green", exact=True).click())

    def type_a_name() -> None:
        page.locator(".st-key-review_typed input").fill("zebra")
        page.locator(".st-key-review_typed input").press("Enter")

    review(lambda: "zebra", type_a_name)
    # S: the next label goes to the whole burst (three photos), here a click on the typed name.
    assert done == BURST[0]
    page.keyboard.press("Tab")  # out of the text box, where keys type (onto its "Use this label" button)
    page.keyboard.press("s")
    button(page, "review_sequence").filter(has_text="Whole sequence (3 photos): on").wait_for()
    review(lambda: "zebra", lambda: pills.get_by_role("radio", name="zebra", exact=True).click(), 3)
    # The rest by key, as a person who has learnt them would.
    for name in ("1", "b", "2", "a", "u"):
        review(keyed[name], key(name))
    assert done == FIRST_SITTING
    stopped_at = open_photo(page)
    assert stopped_at[0] == FIRST_SITTING + 1
    page.screenshot(path=tmp_path / "review-first-sitting.png", full_page=True)
    first = saved_rows(page, tmp_path, "labels-tiny-reviewed.csv")
    assert len(first) == PHOTOS
    human = {path: row for path, row in first.items() if row["classification_method"] == "human"}
    assert {path: row["label"] for path, row in human.items()} == expected
    assert {row["classified_by"] for row in human.values()} == {"A. Ranger"}
    assert all(row["classification_method"] == "machine" for p, row in first.items() if p not in human)

    # Another day, a new browser session: the saved CSV and the same photos.
    later = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        again = later.new_page()
        again.set_default_timeout(WAIT_MS)
        again.goto(f"{app_url}/review")
        again.locator(".st-key-review_file input[type=file]").set_input_files(
            str(tmp_path / "labels-tiny-reviewed.csv")
        )
        again.locator(".st-key-review_photos input[type=file]").set_input_files(photos)
        uploaded(again, "review_file", 1)
        uploaded(again, "review_photos", PHOTOS)
        button(again, "review_load").click()
        settled(again, f"{FIRST_SITTING} of {PHOTOS} reviewed")
        assert open_photo(again) == stopped_at  # where it stopped: the 21st photo of the queue
        photo_shown(again, stopped_at[1])
        # The one before is the 20th, reviewed, with its label and the reviewer's name.
        button(again, "review_previous").click()
        at_place(again, FIRST_SITTING)
        place, path = open_photo(again)
        assert place == FIRST_SITTING
        heading = again.locator("[data-testid=stHeadingWithActionElements] h3").first.inner_text().strip()
        assert heading == expected[path]
        assert again.get_by_text("Reviewed by A. Ranger").is_visible()
        offered = again.locator("[data-testid=stButtonGroup]").filter(has_text="Any label")
        assert offered.get_by_role("radio").all_inner_texts() == ["blue", "green", "red", "zebra"]
        again.keyboard.press("n")
        at_place(again, FIRST_SITTING + 1)
        # The last four, by key.
        for count, name in enumerate(("1", "b", "a", "u"), start=FIRST_SITTING + 1):
            again.keyboard.press(name)
            settled(again, f"{count} of {PHOTOS} reviewed")
        again.screenshot(path=tmp_path / "review-second-sitting.png", full_page=True)
        last = saved_rows(again, tmp_path / "later", "labels-tiny-reviewed.csv")
    finally:
        later.close()
    assert all(row["classification_method"] == "human" for row in last.values())
    assert {p: last[p]["label"] for p in expected} == expected  # the first sitting's labels kept
    assert {p: last[p]["classified_by"] for p in expected} == dict.fromkeys(expected, "A. Ranger")
    assert {last[p]["classified_by"] for p in last if p not in expected} == {"reviewer"}
