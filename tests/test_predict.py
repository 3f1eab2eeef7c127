"""Prediction: the right label for a photo, one row per input in order, and bad photos as error rows."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier.intake.inputs import expand_inputs
from classifier.models.bundles import MODELS_DIR, find_bundles, load_learner, read_bundle
from classifier.models.predict import PROCESSES, Predictor
from classifier.models.runtimes import load_model
from classifier.schema.rows import CSV_COLUMNS, ERROR, OK, UNCERTAIN, Row
from conftest import TINY_CLASSES, make_tiny_image

SPECIESNET = "camera_traps/speciesnet_test_data"


@pytest.fixture(scope="module")
def loaded(tiny_bundle):
    return load_model(read_bundle(tiny_bundle))


@pytest.fixture(scope="module")
def predictor(loaded) -> Predictor:
    return Predictor(loaded, batch_size=4, workers=2)


def save(image: Image.Image, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


@pytest.fixture
def mixed_folder(tmp_path) -> tuple[Path, list[str], dict[str, str]]:
    """Good photos of known labels in several modes, and broken files with image names."""
    folder = tmp_path / "card"
    labels = {}
    for i, label in enumerate(TINY_CLASSES * 2):
        labels[f"{i:02d}_{label}.jpg"] = label
        save(make_tiny_image(label, seed=50 + i), folder / f"{i:02d}_{label}.jpg")
    save(make_tiny_image("red", seed=70).convert("RGBA"), folder / "07_red_alpha.png")
    labels["07_red_alpha.png"] = "red"
    save(make_tiny_image("blue", seed=71).convert("P"), folder / "08_blue_palette.gif")
    labels["08_blue_palette.gif"] = "blue"
    (folder / "09_empty.jpg").write_bytes(b"")
    (folder / "10_text.jpg").write_text("not a photo at all")
    buffer = io.BytesIO()
    make_tiny_image("green", seed=72, size=400).save(buffer, "JPEG")
    (folder / "11_truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    (folder / "12_notes.txt").write_text("skipped: not an image extension")
    names = sorted(p.name for p in folder.iterdir() if p.suffix != ".txt")
    return folder, names, labels


def test_generated_photos_get_their_label(predictor):
    # The tiny bundle is trained for seconds (about 0.93 validation accuracy): most, not all, photos.
    right = 0
    for label in TINY_CLASSES:
        predictions = [predictor.predict_image(make_tiny_image(label, seed=seed)) for seed in range(6)]
        hits = sum(p.label == label for p in predictions)
        assert hits >= 4, f"{label}: {[p.label for p in predictions]}"
        right += hits
        for prediction in predictions:
            assert prediction.top_k[0] == (prediction.label, prediction.confidence)
            assert len(prediction.probabilities) == 3 and abs(sum(prediction.probabilities) - 1) < 1e-5
    assert right >= 15


def test_same_probabilities_as_fastai_learn_predict(tiny_bundle, predictor, tmp_path):
    """The hand-made pipeline (reduced JPEG decoding, squish, [0, 1]) and the compiled network are the
    ones the learner was trained with."""
    learner = load_learner(read_bundle(tiny_bundle))
    for label in TINY_CLASSES:
        path = save(make_tiny_image(label, seed=9, size=300), tmp_path / f"{label}.jpg")
        ours = predictor.predict_photo(path, name="photo")
        _, _, theirs = learner.predict(str(path))
        np.testing.assert_allclose(ours.probabilities, theirs.numpy(), atol=2e-3)


def test_threshold_marks_uncertain_and_top_k_is_capped(loaded):
    image = make_tiny_image("green", seed=3)
    sure = Predictor(loaded, threshold=0.0, top_k=10).predict_image(image)
    unsure = Predictor(loaded, threshold=1.0, top_k=1).predict_image(image)
    assert sure.status == OK and len(sure.top_k) == 3
    assert unsure.status == UNCERTAIN and len(unsure.top_k) == 1 and unsure.label == sure.label
    assert Predictor(loaded).threshold == loaded.bundle.threshold
    with pytest.raises(ValueError, match="threshold"):
        Predictor(loaded, threshold=1.5)


def test_predict_many_rows_in_input_order_with_error_rows(predictor, mixed_folder):
    folder, names, labels = mixed_folder
    expansion = expand_inputs([folder])
    assert expansion.skipped_total == 1

    rows = list(predictor.predict_many(expansion.items))

    assert [Path(r.path).name for r in rows] == names
    by_name = {Path(r.path).name: r for r in rows}
    right = 0
    for name, label in labels.items():
        row = by_name[name]
        assert row.status in (OK, UNCERTAIN) and row.error == "", name
        assert row.probabilities == pytest.approx(
            predictor.predict_photo(folder / name, name="photo").probabilities, abs=1e-4
        )
        right += row.label == label
    assert right >= len(labels) - 2  # RGBA, palette and JPEG photos of each colour
    assert "empty (0 bytes)" in by_name["09_empty.jpg"].error
    assert "not an image" in by_name["10_text.jpg"].error
    assert "truncated" in by_name["11_truncated.jpg"].error
    for name in ("09_empty.jpg", "10_text.jpg", "11_truncated.jpg"):
        row = by_name[name]
        assert row.status == ERROR and row.label == "" and row.confidence is None and "\n" not in row.error
        assert row.error.startswith(name)


def test_decoding_strategies_and_batch_sizes_agree(loaded, mixed_folder):
    folder, _, _ = mixed_folder
    items = expand_inputs([folder]).items

    def summary(**options) -> list[tuple]:
        rows = Predictor(loaded, **options).predict_many(items)
        return [(r.path, r.label, round(r.confidence or 0, 4), r.status, r.error) for r in rows]

    reference = summary(workers=0, batch_size=1)
    assert summary(workers=2, batch_size=4) == reference
    assert summary(workers=3, batch_size=64) == reference
    assert summary(workers=2, batch_size=5, parallel=PROCESSES) == reference


def test_predict_many_streams_lazily(predictor):
    """Rows come out while inputs are still being produced: nothing holds the whole run in memory."""
    produced = []

    def paths(tmp: Path) -> Iterator[Path]:
        for i in range(24):
            produced.append(i)
            yield save(make_tiny_image("red", seed=i), tmp / f"{i}.jpg")

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rows = predictor.predict_many(paths(Path(tmp)))
        first = next(rows)
        assert first.label == "red"
        assert len(produced) < 24
        assert sum(1 for _ in rows) == 23


def test_zip_input_predicts_entries_and_refuses_evil_ones(predictor, tmp_path):
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for label in TINY_CLASSES:
            zf.writestr(f"site1/{label}.jpg", jpeg(label, seed=5))
        zf.writestr("../evil.jpg", jpeg("red", seed=5))
        zf.writestr("site1/readme.md", "hello")
    expansion = expand_inputs([archive])
    rows = list(predictor.predict_many(expansion.items))

    assert [r.path for r in rows] == [f"{archive}/../evil.jpg"] + [
        f"{archive}/site1/{c}.jpg" for c in TINY_CLASSES
    ]
    assert rows[0].status == ERROR and "outside it" in rows[0].error
    for row, label in zip(rows[1:], TINY_CLASSES, strict=True):  # read intact from inside the archive
        assert row.probabilities == pytest.approx(
            predictor.predict_photo(jpeg(label, seed=5), name="photo").probabilities, abs=1e-4
        )
    assert expansion.skipped == {"files without an image extension": 1}
    assert not (tmp_path / "evil.jpg").exists()


def jpeg(label: str, seed: int) -> bytes:
    buffer = io.BytesIO()
    make_tiny_image(label, seed=seed).save(buffer, "JPEG")
    return buffer.getvalue()


class _Photos(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        name = self.path.strip("/")
        if name in TINY_CLASSES:
            body, kind, code = jpeg(name, seed=11), "image/jpeg", 200
        elif name == "page":
            body, kind, code = b"<html>a page, not a photo</html>", "text/html", 200
        else:
            body, kind, code = b"missing", "text/plain", 404
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def local_web() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Photos)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_inputs_are_fetched_and_failures_are_rows(predictor, local_web):
    urls = [f"{local_web}/red", f"{local_web}/page", f"{local_web}/nothing", f"{local_web}/blue"]
    rows = list(predictor.predict_many(expand_inputs(urls, allow_loopback=True).items))
    assert [r.path for r in rows] == urls
    assert [r.status for r in rows][1:3] == [ERROR, ERROR]
    for row, label in ((rows[0], "red"), (rows[3], "blue")):
        assert row.status in (OK, UNCERTAIN)
        expected = predictor.predict_photo(jpeg(label, seed=11), name="photo")  # the bytes the server sent
        assert (
            row.probabilities == pytest.approx(expected.probabilities, abs=0.02)
            and row.label == expected.label
        )
    assert "text/html, not an image" in rows[1].error
    assert "404" in rows[2].error or "not found" in rows[2].error.lower()

    (refused,) = predictor.predict_many(expand_inputs(urls[:1]).items)  # no test switch: loopback refused
    assert refused.status == ERROR and "public" in refused.error


def test_rows_carry_exif_time_and_camera(predictor, tmp_path):
    image = make_tiny_image("blue", seed=1)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "RECONYX", "HC600"
    exif.get_ifd(0x8769)[0x9003] = "2023:05:01 06:30:00"
    path = save(image, tmp_path / "trap.jpg", exif=exif)
    (row,) = predictor.predict_many([path])
    csv = row.to_csv()
    assert list(csv) == list(CSV_COLUMNS)
    assert csv["datetime"] == "2023-05-01T06:30:00" and csv["camera"] == "RECONYX HC600"
    assert csv["top_k"].startswith("blue:") and csv["top_k"].count(";") == 2
    assert row.to_json()["top_k"][0]["label"] == "blue"


def test_error_row_serialises_with_empty_cells():
    row = Row(path="x.jpg", error="x.jpg: the file is empty (0 bytes); copy it again from its source.")
    assert row.to_csv(sequence_label=True) == {
        **dict.fromkeys(CSV_COLUMNS, ""),
        "path": "x.jpg",
        "status": "error",
        "error": row.error,
        "sequence_label": "",
    }
    assert row.to_json()["confidence"] is None and row.to_json()["top_k"] == []


# --- the real camera-trap test frames, when ../shared/data is there ------------------------------------


def _real_or_tiny(tiny_bundle: Path):
    """The bundled Serengeti model when it has been trained, else the tiny one."""
    real = [b for b in find_bundles(MODELS_DIR) if b.ok and b.name == "serengeti"]
    return real[0] if real else read_bundle(tiny_bundle)


@pytest.mark.shared
def test_speciesnet_frames_one_row_each_broken_copies_handled(shared_data, tiny_bundle):
    folder = shared_data / SPECIESNET
    bundle = _real_or_tiny(tiny_bundle)
    expansion = expand_inputs([folder])
    assert expansion.skipped == {"files without an image extension": 2}  # NOTES.txt and SOURCE_README.md

    rows = {Path(r.path).name: r for r in Predictor(load_model(bundle)).predict_many(expansion.items)}

    assert len(rows) == 14
    truncated = rows.pop("african_elephants_truncated_file.jpg")
    assert truncated.status == ERROR and "truncated" in truncated.error
    assert all(r.status in (OK, UNCERTAIN) and r.label for r in rows.values())
    original = rows["african_elephants.jpg"]
    assert original.datetime is not None and original.datetime.year == 2010
    for copy in ("african_elephants_cmyk.jpg", "african_elephants_with_exif_orientation.jpg"):
        assert rows[copy].label == original.label, copy
    if bundle.name != "tiny":  # a colour-only toy model may well change its mind when the colour goes
        # Without colour the Serengeti model weighs the same two answers (warthog 0.31 / elephant 0.17
        # in colour, elephant 0.20 / warthog 0.08 in grey): each copy's answer is in the other's top 3.
        grey = rows["african_elephants_bw.jpg"]
        assert original.label in dict(grey.top_k) and grey.label in dict(original.top_k)


@pytest.mark.shared
def test_rotated_and_cmyk_copies_decode_to_the_original_picture(shared_data, predictor):
    folder = shared_data / SPECIESNET
    original = predictor.predict_photo(folder / "african_elephants.jpg", name="photo")
    for copy in ("african_elephants_cmyk.jpg", "african_elephants_with_exif_orientation.jpg"):
        np.testing.assert_allclose(
            predictor.predict_photo(folder / copy, name="photo").probabilities,
            original.probabilities,
            atol=0.05,
        )
