"""The review page (`app_pages/review.py`) through Streamlit's AppTest: queue, relabel, undo, sequences,
progress, stop and come back, exports, bad input, a 10,000-row file, and the hand-over from the batch page.

Most tests need no model: a saved CSV of generated rows (`review_rows.batch_rows`) and a zip of generated
photos. The downloads are made when clicked (a callable given to `st.download_button`); the `downloads`
fixture catches those callables and calls them as the browser's click would.
"""

from __future__ import annotations

import io
import json
import shutil
import time
import zipfile
from pathlib import Path

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from classifier.results.review import Review
from classifier.schema.predictions_file import parse_predictions
from review_rows import batch_rows, csv_text, photo_zip

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")
PAGE = "app_pages/review.py"
ODD = 'gazelle, "Thomson\'s"'


@pytest.fixture(scope="module")
def saved() -> tuple[bytes, bytes]:
    """A saved CSV of 20 rows, as `python -m classifier predict` writes it, and a zip of their photos."""
    rows = batch_rows(20)
    return csv_text(rows).encode(), photo_zip(rows)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """The app without any model (a saved file is reviewed without one), opened on the review page."""
    (tmp_path / "models").mkdir()
    (tmp_path / "species").mkdir()
    monkeypatch.setenv("WILDLIFE_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("WILDLIFE_SPECIES_DIR", str(tmp_path / "species"))
    at = AppTest.from_file(APP, default_timeout=120).run()
    return at.switch_page(PAGE).run()


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict:
    """file name -> the callable a download button runs when clicked (the latest run's)."""
    made: dict = {}
    original = MediaFileManager.add_deferred

    def catch(self, data_callable, mimetype, coordinates, file_name=None, **options):
        made[file_name] = data_callable
        return original(self, data_callable, mimetype, coordinates, file_name=file_name, **options)

    monkeypatch.setattr(MediaFileManager, "add_deferred", catch)
    return made


def load(at: AppTest, data: bytes, photos: list[tuple[str, bytes]] = (), name: str = "labels.csv") -> AppTest:
    at.file_uploader(key="review_file").upload(name, data, "text/csv")
    for photo_name, photo in photos:
        at.file_uploader(key="review_photos").upload(photo_name, photo, "application/zip")
    at.run()
    return at.button(key="review_load").click().run()


def progress(at: AppTest) -> str:
    return at.get("progress")[0].proto.text


def review(at: AppTest) -> Review:
    return at.session_state["review"]


def test_without_a_review_the_page_says_where_to_start(app: AppTest) -> None:
    assert not app.exception
    assert app.title[0].value == "Review and correct"
    assert "press **Review and correct**" in app.info[0].value


def test_a_saved_file_and_its_photos_open_at_the_first_photo_to_review(app: AppTest, saved) -> None:
    data, photos = saved
    load(app, data, [("trap.zip", photos)])
    assert not app.exception and not app.error
    expected = Review.from_file(data, name="labels.csv")
    total = expected.progress()[1]
    assert progress(app) == f"0 of {total} reviewed" and total >= 10
    first = expected.queue[0]
    assert app.session_state["review_cursor"] == first == 1
    assert app.subheader[0].value == expected.records[1].label
    assert len(app.image) >= 2  # the open photo (boxes drawn) and the queue's thumbnails
    caption = " ".join(c.value for c in app.caption)
    assert "20 photos from labels.csv" in caption and "1 unreadable" in caption
    keys = {b.proto.shortcut.upper() for b in app.button if b.proto.shortcut}
    assert {"1", "2", "A", "B", "U", "S", "N", "P", "Z"} <= keys  # the keys the page documents


def test_one_click_relabels_and_moves_on_and_undo_takes_it_back(app: AppTest, saved, downloads) -> None:
    data, photos = saved
    load(app, data, [("trap.zip", photos)])
    total = review(app).progress()[1]
    before = downloads["labels-reviewed.csv"]()
    guess = app.button(key="review_guess_2")
    assert guess.label == "green · 38%"  # the model's second guess for row 1
    guess.click().run()
    record = review(app).records[1]
    assert (record.label, record.classification_method, record.classified_by) == (
        "green",
        "human",
        "reviewer",
    )
    assert progress(app) == f"1 of {total} reviewed"
    assert app.session_state["review_cursor"] == 2  # the next photo still to review
    corrected = parse_predictions(downloads["labels-reviewed.csv"](), name="saved").records[1]
    assert (corrected.label, corrected.classification_method) == ("green", "human")
    app.button(key="review_undo").click().run()
    assert progress(app) == f"0 of {total} reviewed"
    assert review(app).records[1].classification_method == "machine"
    assert downloads["labels-reviewed.csv"]() == before
    assert app.session_state["review_cursor"] == 1
    app.button(key="review_blank").click().run()
    app.button(key="review_unknown").click().run()
    assert [review(app).records[i].label for i in (1, 2)] == ["blank", "unknown"]


def test_a_typed_label_with_commas_and_quotes_is_saved_with_the_reviewers_name(
    app: AppTest, saved, downloads
) -> None:
    data, photos = saved
    load(app, data, [("trap.zip", photos)])
    app.text_input(key="review_reviewer").input("A. Ranger").run()
    app.text_input(key="review_typed").input(ODD)
    app.button[[b.label for b in app.button].index("Use this label")].click().run()
    assert not app.exception and not app.error
    assert ODD in app.get("pills")[0].options  # the typed name is now a one-click choice
    saved_csv = downloads["labels-reviewed.csv"]()
    record = parse_predictions(saved_csv, name="saved").records[1]
    assert (record.label, record.classified_by, record.classification_method) == (ODD, "A. Ranger", "human")
    assert record.classified_at is not None and record.classified_at.tzinfo is not None
    app.text_input(key="review_typed").input("   ")
    app.button[[b.label for b in app.button].index("Use this label")].click().run()
    assert [e.value for e in app.error] == ["Type a label (a species, blank or unknown)."]


def test_a_whole_sequence_is_relabelled_at_once_and_undone_at_once(app: AppTest, saved, downloads) -> None:
    data, photos = saved
    load(app, data, [("trap.zip", photos)])
    total = review(app).progress()[1]
    sequence = app.button(key="review_sequence")
    assert sequence.label == "Whole sequence (4 photos): off"
    sequence.click().run()
    assert app.button(key="review_sequence").label == "Whole sequence (4 photos): on"
    app.get("pills")[0].set_value("red").run()
    assert [review(app).records[i].label for i in range(4)] == ["red"] * 4
    saved_rows = parse_predictions(downloads["labels-reviewed.csv"](), name="saved").records
    assert [(r.label, r.classification_method) for r in saved_rows[:5]] == [("red", "human")] * 4 + [
        (saved_rows[4].label, "machine")
    ]
    # The sequence's two sure frames join the queue as reviewed ones: 4 more reviewed, 2 more queued.
    assert progress(app) == f"4 of {total + 2} reviewed"
    assert app.button(key="review_sequence").label.endswith("off")  # one label, then back to one photo
    assert app.session_state["review_cursor"] == 5  # past the sequence
    app.button(key="review_undo").click().run()
    assert [review(app).records[i].classification_method for i in range(4)] == ["machine"] * 4
    assert progress(app) == f"0 of {total} reviewed"


def test_stop_download_and_continue_later_where_it_stopped(app: AppTest, saved, downloads, tmp_path) -> None:
    data, photos = saved
    load(app, data, [("trap.zip", photos)])
    app.button(key="review_guess_1").click().run()
    app.button(key="review_blank").click().run()
    app.button(key="review_next").click().run()
    app.button(key="review_guess_1").click().run()
    done, total = review(app).progress()
    assert done == 3
    reviewed = downloads["labels-reviewed.csv"]().encode()
    # Another day, another session: the saved CSV and the same photos.
    later = AppTest.from_file(APP, default_timeout=120).run()
    later.switch_page(PAGE).run()
    load(later, reviewed, [("trap.zip", photos)], name="labels-reviewed.csv")
    assert not later.exception
    assert progress(later) == f"3 of {total} reviewed"
    assert [r.label for r in review(later).records] == [r.label for r in review(app).records]
    assert later.session_state["review_cursor"] == review(app).next_to_review() == 5
    later.button(key="review_unknown").click().run()  # the unreadable photo
    assert progress(later) == f"4 of {total} reviewed"
    assert later.get("download_button")[0].proto.label == "CSV with the corrections"


def test_rows_without_their_photos_are_shown_missing_and_can_be_relabelled(app: AppTest, saved) -> None:
    data, _ = saved
    load(app, data)  # no photos
    assert "No photos were given" in app.info[0].value
    app.button(key="review_guess_1").click().run()
    assert review(app).progress()[0] == 1
    rows = batch_rows(20)
    some = io.BytesIO(photo_zip(rows[:2]))  # the photos of two rows only; the unreadable row has none
    with zipfile.ZipFile(some, "a") as archive:
        archive.writestr("trap/notes.txt", "batteries changed")
    load(app, csv_text(rows).encode(), [("some.zip", some.getvalue())])
    assert [i.value for i in app.main.info] == ["Skipped 1 files without an image extension."]
    app.session_state["review_cursor"] = 5
    app.run()
    assert app.warning[0].value == "Photo missing: photo not found among the uploaded photos"
    assert "truncated" in app.error[0].value  # predict's reason for the unreadable photo
    app.button(key="review_unknown").click().run()
    assert review(app).records[5].label == "unknown"


def test_a_csv_from_another_tool_is_refused_in_one_line(app: AppTest) -> None:
    load(app, b"filename,species,count\nIMG_1.JPG,zebra,2\n", name="timelapse.csv")
    assert not app.exception
    assert [e.value for e in app.error] == [
        "timelapse.csv: not a predictions file of `python -m classifier predict` or the app: missing columns "
        "path, label, confidence, status (it has: filename, species, count)."
    ]
    assert "review" not in app.session_state


def test_exports_download_csv_megadetector_and_camtrap_dp(app: AppTest, saved, downloads) -> None:
    data, photos = saved
    load(app, data, [("trap.zip", photos)])
    app.button(key="review_guess_2").click().run()
    assert {"labels-reviewed.csv", "labels.megadetector.json"} <= set(downloads)
    results = json.loads(downloads["labels.megadetector.json"]())
    assert results["info"]["format_version"] == "1.6" and len(results["images"]) == 20
    names = results["classification_categories"]
    box = results["images"][1]["detections"][0]
    assert (names[box["classifications"][0][0]], box["classifications"][0][1]) == ("green", 1.0)
    # Camtrap DP: the deployments from an uploaded CSV.
    app.session_state["review_camtrap_open"] = True
    app.run()
    app.radio(key="review_deployments_from").set_value("Upload a CSV").run()
    app.file_uploader(key="review_deployments_file").upload(
        "deployments.csv",
        b"deploymentID,latitude,longitude,folder,timezone\nkopje,-2.45,34.82,trap,+03:00\n",
        "text/csv",
    )
    app.run()
    app.button(key="review_make_camtrap").click().run()
    assert not app.exception and not app.error
    package = app.session_state["review_camtrap"][2]
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        assert sorted(archive.namelist()) == [
            "datapackage.json", "deployments.csv", "media.csv", "observations.csv"
        ]  # fmt: skip
        observations = archive.read("observations.csv").decode()
    assert ",human,reviewer," in observations
    assert [b.proto.label for b in app.get("download_button")][-1] == "Camtrap DP 1.0 zip"
    # A correction after the package was made: it must be made again.
    app.button(key="review_guess_1").click().run()
    assert "make it again" in " ".join(c.value for c in app.caption)


def test_a_deployments_csv_that_cannot_be_used_is_one_line(app: AppTest, saved) -> None:
    data, _ = saved
    load(app, data)
    app.session_state["review_camtrap_open"] = True
    app.run()
    app.radio(key="review_deployments_from").set_value("Upload a CSV").run()
    app.file_uploader(key="review_deployments_file").upload(
        "d.csv", b"deploymentID,latitude\nx,1\n", "text/csv"
    )
    app.run()
    assert [e.value for e in app.error] == [
        "d.csv: missing columns longitude, folder (needed: deploymentID, latitude, longitude, folder; "
        "optional: camera, locationName, locationID, timezone, deploymentStart, deploymentEnd, "
        "coordinateUncertainty, cameraModel, deploymentComments)."
    ]


def test_ten_thousand_rows_stay_responsive(app: AppTest) -> None:
    """The page's run times with a 10,000-row file (no photos), measured here (docs/benchmarks.md)."""
    data = csv_text(batch_rows(10_000)).encode()
    app.file_uploader(key="review_file").upload("big.csv", data, "text/csv")
    app.run()
    timings = {}
    started = time.perf_counter()
    app.button(key="review_load").click().run()
    timings["load"] = time.perf_counter() - started
    for name, action in (
        ("relabel", lambda: app.button(key="review_guess_1").click()),
        ("sequence", lambda: app.button(key="review_sequence").click()),
        ("sequence relabel", lambda: app.button(key="review_blank").click()),
        ("undo", lambda: app.button(key="review_undo").click()),
        ("page 400 of the queue", lambda: app.get("pagination")[0].set_value(400)),
    ):
        started = time.perf_counter()
        action().run()
        timings[name] = time.perf_counter() - started
        assert not app.exception, name
    print("10,000 rows, page run times: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    assert progress(app) == f"1 of {review(app).progress()[1]} reviewed"
    assert len(app.get("pagination")) == 1 and len(app.button) < 40  # a page of the queue, not 5,000 rows
    assert timings["load"] < 20 and max(timings.values()) < 10


def test_the_batch_page_hands_its_rows_and_photos_to_the_review(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import write_tiny_species_notes
    from review_rows import photo_bytes

    shutil.copytree(tiny_bundle, tmp_path / "models" / "tiny")
    monkeypatch.setenv("WILDLIFE_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("WILDLIFE_SPECIES_DIR", str(write_tiny_species_notes(tmp_path)))
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.session_state["threshold_tiny"] = 1.0  # nothing is sure: every photo needs a person
    at.switch_page("app_pages/batch.py").run()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for i, label in enumerate(("red", "green", "blue")):
            zf.writestr(f"trap/{label}.jpg", photo_bytes(label, i + 30))
    at.file_uploader(key="batch_uploads").upload("trap.zip", archive.getvalue(), "application/zip")
    at.run()
    at.button[0].click().run()
    at.button(key="batch_review").click().run()
    assert not at.exception
    assert at.title[0].value == "Review and correct"
    assert progress(at) == "0 of 3 reviewed"
    assert review(at).classes == ("blue", "green", "red")
    assert len(at.image) >= 2 and not at.warning  # the batch's photos, found by path
    # AppTest runs the page its own switch_page last named, not the one st.switch_page moved to; the
    # browser stays where the button took it.
    at.switch_page(PAGE)
    at.button(key="review_guess_1").click().run()
    assert progress(at) == "1 of 3 reviewed"
    assert review(at).records[0].classification_method == "human"
    # Back to the batch page and here again: the review goes on as it was.
    at.switch_page("app_pages/batch.py").run()
    at.button(key="batch_review").click().run()
    assert not at.exception
    assert progress(at) == "1 of 3 reviewed"
