"""Every page of the app, driven by Streamlit's AppTest on a tiny bundle trained in the test session."""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from classifier import cli
from conftest import TINY_CLASSES, write_tiny_examples, write_tiny_species_notes

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")
PAGES = [
    "app_pages/classify.py",
    "app_pages/batch.py",
    "app_pages/review.py",
    "app_pages/season.py",
    "app_pages/species.py",
    "app_pages/lookalikes.py",
    "app_pages/quiz.py",
    "app_pages/performance.py",
    "app_pages/about.py",
]


def jpeg(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def models_dir(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("app_models")
    shutil.copytree(tiny_bundle, root / "tiny")
    write_tiny_examples(root / "tiny")
    return root


@pytest.fixture(scope="module")
def species_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Notes for two of the three tiny classes, so a class without notes is shown too."""
    return write_tiny_species_notes(tmp_path_factory.mktemp("species"))


@pytest.fixture
def app(models_dir: Path, species_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("WILDLIFE_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("WILDLIFE_SPECIES_DIR", str(species_dir))
    return AppTest.from_file(APP, default_timeout=120).run()


def test_app_without_any_model_shows_navigation_and_says_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WILDLIFE_MODELS_DIR", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("No model bundled yet" in info.value for info in at.info)
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, page


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(app: AppTest, page: str) -> None:
    app.switch_page(page).run()
    assert not app.exception
    assert app.title, f"{page} shows a title"


def test_sidebar_offers_the_model_and_its_threshold(app: AppTest) -> None:
    assert app.sidebar.selectbox[0].options == ["Tiny colours"]
    assert app.sidebar.slider[0].label == "Confidence threshold"


def test_classify_an_uploaded_photo_shows_the_label_bars_and_card(app: AppTest, tiny_image) -> None:
    app.sidebar.slider[0].set_value(0.0).run()
    app.file_uploader(key="classify_upload").upload(
        "field.jpg", jpeg(tiny_image("red", seed=7)), "image/jpeg"
    )
    app.run()
    assert not app.exception and not app.error
    assert app.subheader[0].value == "Red field"  # the label, by its common name from the notes
    bars = [bar.proto.text for bar in app.get("progress")]
    assert len(bars) == len(TINY_CLASSES) and bars[0].startswith("Red field · ")
    assert "A field that is mostly red." in [m.value for m in app.markdown]


def test_a_photo_under_the_threshold_is_not_sure(app: AppTest, tiny_image) -> None:
    app.sidebar.slider[0].set_value(1.0).run()
    app.file_uploader(key="classify_upload").upload(
        "field.jpg", jpeg(tiny_image("blue", seed=3)), "image/jpeg"
    )
    app.run()
    assert app.subheader[0].value == "Not sure"


def test_the_verdict_the_bars_and_the_steps_give_one_number(app: AppTest, tiny_image) -> None:
    app.sidebar.slider[0].set_value(0.9).run()
    app.file_uploader(key="classify_upload").upload(
        "field.jpg", jpeg(tiny_image("blue", seed=11)), "image/jpeg"
    )
    app.run()
    first_bar = app.get("progress")[0].proto.text  # "Blue field · 61.3%"
    name, shown = first_bar.split(" · ")
    steps = [m.value for m in app.expander[0].markdown]
    said = f"**{name}**, has **{float(shown.rstrip('%')):.0f}%**, under the **90%** threshold"
    assert app.subheader[0].value == "Not sure" and said in steps[4]
    assert f"**{name}** the most: **{float(shown.rstrip('%')):.0f}%**" in steps[2]


def test_the_page_and_the_command_line_give_a_photo_the_same_answer(
    app: AppTest, models_dir: Path, tiny_image, tmp_path: Path
) -> None:
    """Both decode the photo one way: a large, grainy JPEG is decoded at a reduced scale, where two ways
    differ (decoded for display at 1024 px first, the page showed 85.7% where the command line wrote 85.8%)."""
    stripes = np.asarray(tiny_image("blue", seed=21).resize((2400, 1800), Image.BICUBIC), dtype=np.int16)
    grain = np.random.default_rng(0).integers(-90, 90, stripes.shape)
    photo = tmp_path / "big.jpg"
    Image.fromarray(np.clip(stripes + grain, 0, 255).astype(np.uint8)).save(photo, quality=90)
    app.sidebar.slider[0].set_value(0.0).run()
    app.file_uploader(key="classify_upload").upload("big.jpg", photo.read_bytes(), "image/jpeg")
    app.run()
    bars = [bar.proto.text.split(" · ") for bar in app.get("progress")]
    out = tmp_path / "labels.csv"
    argv = ["predict", "--models-dir", str(models_dir), "--model", "tiny", "--out", str(out), str(photo)]
    assert cli.main(argv) == 0
    with open(out, newline="", encoding="utf-8") as handle:
        [row] = list(csv.DictReader(handle))
    on_the_page = [float(shown.rstrip("%")) for _, shown in bars]
    written = [100 * float(p.rsplit(":", 1)[1]) for p in row["top_k"].split(";")]
    assert on_the_page[: len(written)] == pytest.approx(written, abs=0.051)  # the page shows 0.1%
    assert bars[0][1] == f"{100 * float(row['confidence']):.1f}%"


def test_truncated_upload_shows_one_error_line_and_the_page_still_works(app: AppTest, tiny_image) -> None:
    data = jpeg(tiny_image("green", seed=2).resize((400, 400)))
    app.file_uploader(key="classify_upload").upload("cut.jpg", data[: len(data) // 2], "image/jpeg")
    app.run()
    assert not app.exception
    assert [e.value for e in app.error] == [
        "cut.jpg: the file is truncated (an incomplete download or copy); copy it again."
    ]
    app.file_uploader(key="classify_upload").upload("ok.jpg", jpeg(tiny_image("green", seed=2)), "image/jpeg")
    app.session_state["threshold_tiny"] = 0.0
    app.run()
    assert not app.error and app.subheader[0].value == "Green field"


def test_species_page_lists_every_class_and_says_when_notes_are_missing(app: AppTest) -> None:
    app.switch_page("app_pages/species.py").run()
    assert app.caption[0].value == f"{len(TINY_CLASSES)} of {len(TINY_CLASSES)} classes"
    texts = [m.value for m in app.markdown]
    assert "**Red field**" in texts and "**blue**" in texts
    assert "No notes yet." in [c.value for c in app.caption]


def test_species_deep_link_opens_the_species_with_its_look_alikes(app: AppTest) -> None:
    app.query_params["species"] = "green"
    app.switch_page("app_pages/species.py").run()
    assert app.title[0].value == "Green field"
    assert "Colour." in [c.value for c in app.caption]


def test_performance_page_shows_metrics_and_the_confusion_matrix(app: AppTest) -> None:
    app.switch_page("app_pages/performance.py").run()
    assert [m.label for m in app.metric][:2] == ["Accuracy", "Macro F1"]
    assert app.get("vega_lite_chart"), "the confusion matrix heatmap is drawn"
    assert app.toggle(key="performance_normalise").set_value(True).run() and not app.exception


def test_batch_labels_photos_and_a_zip_and_lists_the_broken_file(app: AppTest, tiny_image) -> None:
    app.session_state["threshold_tiny"] = 0.0
    app.switch_page("app_pages/batch.py").run()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("trap/a.jpg", jpeg(tiny_image("blue", seed=11)))
        zf.writestr("trap/notes.txt", "not a photo")
    uploader = app.file_uploader(key="batch_uploads")
    uploader.upload("red.jpg", jpeg(tiny_image("red", seed=12)), "image/jpeg")
    uploader.upload("broken.jpg", b"not a jpeg at all", "image/jpeg")
    uploader.upload("trap.zip", archive.getvalue(), "application/zip")
    app.run()
    app.button[0].click().run()
    assert not app.exception
    table = app.dataframe[0].value
    assert sorted(table["path"]) == ["broken.jpg", "red.jpg", "trap.zip/trap/a.jpg"]
    broken = table[table["path"] == "broken.jpg"].iloc[0]
    assert broken["status"] == "error" and "not an image" in broken["error"]
    assert [m.value for m in app.metric] == ["3", "2", "1"]  # photos, labelled, needs review


def test_a_loopback_url_is_refused_with_one_line_and_nothing_is_fetched(app: AppTest) -> None:
    app.text_input(key="classify_url").input("http://127.0.0.1:8501/photo.jpg")
    app.button[0].click().run()
    assert not app.exception
    assert len(app.error) == 1
    assert app.error[0].value.startswith(
        "Refused http://127.0.0.1:8501/photo.jpg: it points at a loopback address"
    )


@pytest.fixture
def detector_app(tiny_bundle: Path, species_dir: Path, tmp_path: Path, monkeypatch) -> AppTest:
    """The tiny bundle as if trained on the detector's crops: the app finds animals first."""
    import json

    bundle = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_bundle, bundle)
    report = json.loads((bundle / "report.json").read_text())
    report["detector"] = {"confidence": 0.25, "input_size": 640, "crop_margin": 0.15}
    (bundle / "report.json").write_text(json.dumps(report))
    monkeypatch.setenv("WILDLIFE_MODELS_DIR", str(bundle.parent))
    monkeypatch.setenv("WILDLIFE_SPECIES_DIR", str(species_dir))
    return AppTest.from_file(APP, default_timeout=180).run()


def test_an_empty_frame_says_no_animal_and_can_be_classified_whole_anyway(detector_app: AppTest, tiny_image):
    pytest.importorskip("megadetector_lite", reason="the detector's weights are installed by `make install`")
    detector_app.sidebar.slider[0].set_value(1.0).run()  # nothing is sure: no answer overrides the detector
    detector_app.file_uploader(key="classify_upload").upload(
        "field.jpg", jpeg(tiny_image("green", seed=2).resize((640, 480))), "image/jpeg"
    )
    detector_app.run()
    assert not detector_app.exception
    assert detector_app.subheader[0].value == "No animal found"
    assert "best guess" in detector_app.markdown[1].value  # [0]: what the app does
    detector_app.button(key="classify_anyway").click().run()
    assert not detector_app.exception
    shown = detector_app.subheader[0].value + detector_app.markdown[1].value
    assert "Green field" in shown  # the whole frame's answer, sure or not
    assert any("whole frame was classified" in c.value for c in detector_app.caption), [
        c.value for c in detector_app.caption
    ]


# ------------------------------------------------------------------------------- explain and teach


def links(at: AppTest) -> list[tuple[str, str, str]]:
    """Every page link on the page: (label, page, query string)."""
    return [(e.proto.label, e.proto.page, e.proto.query_string) for e in at.get("page_link")]


def test_the_heatmap_is_computed_only_when_its_toggle_asks(app: AppTest, tiny_image, monkeypatch) -> None:
    import classifier.models.explain

    calls = []
    original = classifier.models.explain.explain
    monkeypatch.setattr(
        classifier.models.explain, "explain", lambda *a, **k: calls.append(a[2]) or original(*a, **k)
    )
    app.sidebar.slider[0].set_value(0.0).run()
    app.file_uploader(key="classify_upload").upload(
        "field.jpg", jpeg(tiny_image("red", seed=7)), "image/jpeg"
    )
    app.run()
    toggle = app.toggle(key="classify_heatmap")
    assert toggle.label == "Show where the model looked" and toggle.value is False
    assert calls == [] and "classify_explanation" not in app.session_state
    shown = len(app.get("image"))
    toggle.set_value(True).run()
    assert not app.exception and len(calls) == 1
    assert any(c.value.startswith("Where the model looked for **Red field**") for c in app.caption)
    assert len(app.get("image")) == shown  # the photo, now with its heatmap over it
    app.run()
    assert len(calls) == 1  # the same photo and answer: not computed again
    app.toggle(key="classify_heatmap").set_value(False).run()
    assert not any(c.value.startswith("Where the model looked") for c in app.caption)


def test_how_it_decided_tells_each_step_of_the_answer(app: AppTest, tiny_image) -> None:
    app.sidebar.slider[0].set_value(0.0).run()
    app.file_uploader(key="classify_upload").upload(
        "field.jpg", jpeg(tiny_image("green", seed=5)), "image/jpeg"
    )
    app.run()
    [expander] = app.expander
    assert expander.label == "How it decided, step by step"
    steps = [m.value for m in expander.markdown]
    assert [s.split(".**")[0] for s in steps] == [
        "**1. Looking for animals",
        "**2. What the classifier saw",
        "**3. Its top 3",
        "**4. Where and what: the rules",
        "**5. Sure, or not sure",
    ]
    assert "It gave **Green field** the most" in steps[2]
    assert "at or above the **0%** threshold set in the sidebar" in steps[4]
    assert expander.dataframe[0].value["class"].tolist()[0] == "Green field"
    app.session_state["threshold_tiny"] = 1.0
    app.run()
    assert "so the answer is **not sure**" in app.expander[0].markdown[4].value


def test_look_alikes_page_opens_from_a_link_and_keeps_the_address_in_step(app: AppTest) -> None:
    app.query_params["species"] = "green"
    app.query_params["vs"] = "red"
    app.switch_page("app_pages/lookalikes.py").run()
    assert not app.exception and app.title[0].value == "Look-alikes"
    assert app.selectbox(key="lookalikes_species").value == "green"
    assert app.selectbox(key="lookalikes_vs").value == "red"
    texts = [m.value for m in app.markdown]
    assert any(t.startswith("Of ") and t.endswith("the model called none Red field.") for t in texts)
    assert "**How to tell it from the Red field**" in texts and "Colour." in texts  # green's notes
    assert [m.label for m in app.metric][:4] == ["Precision", "Recall", "F1", "Photos"]
    app.selectbox(key="lookalikes_vs").set_value("blue").run()
    assert app.query_params["vs"] == "blue" and app.query_params["species"] == "green"
    assert any(
        "The notes say nothing about telling these two apart yet." in t
        for t in [m.value for m in app.markdown]
    )


@pytest.fixture
def confused_app(tiny_bundle: Path, species_dir: Path, tmp_path: Path, monkeypatch) -> AppTest:
    """The tiny bundle with a report that says it mixes up every pair of classes once each way."""
    import json

    bundle = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_bundle, bundle)
    report = json.loads((bundle / "report.json").read_text())
    n = len(report["classes"])
    report["confusion_matrix"] = [[5 if i == j else 1 for j in range(n)] for i in range(n)]
    (bundle / "report.json").write_text(json.dumps(report))
    monkeypatch.setenv("WILDLIFE_MODELS_DIR", str(bundle.parent))
    monkeypatch.setenv("WILDLIFE_SPECIES_DIR", str(species_dir))
    return AppTest.from_file(APP, default_timeout=120).run()


def test_a_species_page_links_what_the_model_confuses_it_with(confused_app: AppTest) -> None:
    confused_app.query_params["species"] = "green"
    confused_app.switch_page("app_pages/species.py").run()
    assert "Often confused with" in [s.value for s in confused_app.subheader]
    compared = [(label, query) for label, page, query in links(confused_app) if page.endswith("lookalikes")]
    assert ("blue: mixed up 2 times, side by side", "species=green&vs=blue&model=tiny") in compared
    assert ("Red field: mixed up 2 times, side by side", "species=green&vs=red&model=tiny") in compared
    assert ("Side by side", "species=green&vs=red&model=tiny") in compared  # the notes' look-alike
    assert ("Compare with another class", "species=green&model=tiny") in compared
    confused_app.query_params.pop("vs", None)
    confused_app.switch_page("app_pages/lookalikes.py").run()  # what that last link opens
    assert confused_app.selectbox(key="lookalikes_species").value == "green"
    assert confused_app.selectbox(key="lookalikes_vs").value == "red"  # green's notes name red


def test_a_not_sure_answer_links_its_two_look_alikes(confused_app: AppTest, tiny_image) -> None:
    confused_app.sidebar.slider[0].set_value(1.0).run()
    confused_app.file_uploader(key="classify_upload").upload(
        "field.jpg", jpeg(tiny_image("red", seed=9)), "image/jpeg"
    )
    confused_app.run()
    assert confused_app.subheader[0].value == "Not sure"
    [(label, _, query)] = [link for link in links(confused_app) if "lookalikes" in link[1]]
    assert label.startswith("How to tell Red field from ") and query.startswith("species=red&vs=")


def test_the_threshold_stays_after_review_and_correct(app: AppTest, tiny_image) -> None:
    """The button's page switch carries no widget values: the sidebar's own had been dropped with it."""
    app.sidebar.slider[0].set_value(1.0).run()
    app.switch_page("app_pages/batch.py").run()
    app.file_uploader(key="batch_uploads").upload("red.jpg", jpeg(tiny_image("red", seed=3)), "image/jpeg")
    app.run()
    app.button[0].click().run()
    app.button(key="batch_review").click().run()
    assert not app.exception
    assert app.title[0].value == "Review and correct"
    assert app.sidebar.slider[0].value == 1.0
    app.switch_page("app_pages/batch.py").run()
    assert app.sidebar.slider[0].value == 1.0


def test_season_page_analyses_an_uploaded_package(app: AppTest, tmp_path: Path) -> None:
    from tests.test_season import ZEBRA, hand_package

    folder = hand_package(tmp_path / "pkg")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for path in folder.iterdir():
            zf.write(path, path.name)
    app.switch_page("app_pages/season.py").run()
    assert app.radio(key="season_source").value == "A Camtrap DP package"  # no labels in this session yet
    app.file_uploader(key="season_package").upload("season.zip", archive.getvalue(), "application/zip")
    app.number_input(key="season_min").set_value(2)
    app.run()
    app.button(key="season_run").click().run()
    assert not app.exception and not app.error
    assert [m.value for m in app.metric] == ["3", "17.0", "6", "3"]  # deployments, camera-days, events, taxa
    table = app.dataframe[0].value
    zebra = table[(table["deploymentID"] == "all") & (table["scientificName"] == ZEBRA)].iloc[0]
    assert (zebra["events"], round(zebra["rai"], 4)) == (4, 23.5294)
    assert any("first to their last photo" in w.value for w in app.warning)  # B has no start or end
    assert app.get("vega_lite_chart"), "activity, accumulation, occupancy and the map are drawn"
    assert app.get("download_button")


def test_season_page_uses_this_sessions_labels(app: AppTest, tiny_image) -> None:
    from PIL import Image

    app.session_state["threshold_tiny"] = 0.0
    app.switch_page("app_pages/batch.py").run()
    uploader = app.file_uploader(key="batch_uploads")
    for hour in (5, 9, 14):
        exif = Image.Exif()
        exif[0x0132] = f"2024:03:0{hour % 3 + 1} {hour:02d}:00:00"  # DateTime
        buffer = io.BytesIO()
        tiny_image("red", seed=hour).save(buffer, format="JPEG", quality=92, exif=exif)
        uploader.upload(f"red{hour}.jpg", buffer.getvalue(), "image/jpeg")
    app.run()
    app.button[0].click().run()
    app.switch_page("app_pages/season.py").run()
    assert app.radio(key="season_source").value == "This session's labels"
    app.button(key="season_run").click().run()
    assert not app.exception and not app.error
    assert app.metric[0].value == "1"  # the uploads' folder is one deployment
    assert any("no deployments CSV" in w.value for w in app.warning)


# ------------------------------------------------------------------------------- teach (issue 28)

ROOT = Path(__file__).resolve().parents[1]


def test_the_landing_page_says_what_it_does_lists_the_classes_and_an_example_classifies(app: AppTest) -> None:
    assert app.title[0].value == "What kind of place is this?"  # the tiny notes describe places, not animals
    assert "For curious people and students" in app.markdown[0].value
    assert "The 3 kinds of place it knows: blue · Green field · Red field." in app.caption[0].value
    tries = [b for b in app.button if b.label == "Try this one"]
    assert len(tries) == 3
    tries[0].click().run()
    assert not app.exception
    assert app.get("progress"), "the example is classified: its bars are shown"
    assert any(c.value.startswith("Photo: generated test photos") for c in app.caption)
    app.button(key="classify_other_example").click().run()
    assert [b.label for b in app.button].count("Try this one") == 3


def test_the_sidebars_place_fits_and_the_species_list_and_page_show_the_photo(app: AppTest) -> None:
    not_given = app.sidebar.selectbox(key="country").options[0]
    assert not_given == "Not given: each photo's GPS" and len(not_given) <= 30  # the sidebar cut it at 34
    app.switch_page("app_pages/species.py").run()
    assert (
        len(app.get("image")) == 3
        and app.caption[1].value == "Photos from the generated test photos, CC0-1.0"
    )
    app.query_params["species"] = "red"
    app.switch_page("app_pages/species.py").run()
    assert not app.exception and len(app.get("image")) == 1
    assert "Photo: generated test photos, red/generated.jpg · CC0-1.0" in str(app.get("image")[0].proto)


def test_a_quiz_question_shows_the_models_answer_and_the_score(app: AppTest) -> None:
    app.switch_page("app_pages/quiz.py").run()
    assert not app.exception and app.title[0].value == "Can you beat the model?"
    choices = [b for b in app.button if b.key and b.key.startswith("quiz_choice_0_")]
    assert len(choices) == 3  # three classes: every name is a choice
    choices[0].click().run()
    assert not app.exception
    said = " ".join(m.value for m in app.markdown)
    assert "The model said" in said or "The model was not sure" in said
    assert "of 10 asked" in said and "1 of 10 asked" in said
    assert app.button(key="quiz_next").label == "Next photo"


@pytest.fixture
def bundled_app(monkeypatch) -> AppTest:
    """The project's own bundles and notes (these pages read them; no model is loaded)."""
    monkeypatch.setenv("WILDLIFE_MODELS_DIR", str(ROOT / "models"))
    monkeypatch.delenv("WILDLIFE_SPECIES_DIR", raising=False)
    return AppTest.from_file(APP, default_timeout=60)


def test_a_species_page_maps_where_it_lives_with_the_photos_country(bundled_app: AppTest) -> None:
    bundled_app.query_params["species"] = "zebra"
    bundled_app.query_params["country"] = "MOZ"
    bundled_app.run()
    bundled_app.switch_page("app_pages/species.py").run()
    assert not bundled_app.exception
    assert "Where it lives" in [s.value for s in bundled_app.subheader]
    assert bundled_app.get("vega_lite_chart"), "the range map"
    assert any("Mozambique, where the photo was taken, in its range" in c.value for c in bundled_app.caption)
    assert len(bundled_app.get("image")) == 1  # its example photo


def test_the_performance_page_refuses_to_compare_models_measured_on_other_photos(
    bundled_app: AppTest,
) -> None:
    bundled_app.run()
    bundled_app.switch_page("app_pages/performance.py").run()
    assert not bundled_app.exception
    assert "On camera-trap frames from other parks" in [s.value for s in bundled_app.subheader]
    bundled_app.selectbox(key="performance_compare").set_value("habitat").run()
    [refusal] = [i.value for i in bundled_app.info if "cannot be compared" in i.value]
    assert "**serengeti** was measured on 162 photos" in refusal and "**habitat** on 600 photos" in refusal
