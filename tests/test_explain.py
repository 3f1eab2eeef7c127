"""Where the model looked (classifier/models/explain.py): heatmaps that depend on the model, on every bundle,
on real frames where the animal is, for crops, and from the command line."""

from __future__ import annotations

import copy
import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from scipy.stats import spearmanr

from classifier import cli
from classifier.models import detect
from classifier.models.bundles import MODELS_DIR, load_learner, read_bundle, resolve_bundle
from classifier.models.explain import (
    DEFAULT_METHOD,
    EIGENCAM,
    METHODS,
    ExplainError,
    Heatmap,
    explain,
    heatmaps,
    heatmaps_by_method,
    overlay,
    prepared,
)
from classifier.models.predict import Predictor
from classifier.models.runtimes import TORCH, CompiledNetwork, _Normalised, load_model
from classifier.schema.rows import Detection, Row
from conftest import TINY_CLASSES, png

BUNDLED = [b for b in ("serengeti", "habitat", "otters") if (MODELS_DIR / b / "model.pkl").is_file()]


def animal_photo(seed: int, size: tuple[int, int] = (480, 320)) -> Image.Image:
    """A generated frame: textured ground and sky with a dark, striped shape standing on it."""
    rng = np.random.default_rng(seed)
    width, height = size
    canvas = np.empty((height, width, 3), dtype=np.float32)
    canvas[: height // 2] = (150, 190, 230)
    canvas[height // 2 :] = (170, 150, 90)
    canvas += rng.normal(0, 14, canvas.shape)
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    x, y = int(rng.integers(40, width - 200)), int(rng.integers(height // 3, height // 2))
    draw.ellipse((x, y, x + 160, y + 90), fill=(60, 50, 40))
    for stripe in range(x + 10, x + 150, 22):
        draw.line((stripe, y + 5, stripe + 8, y + 85), fill=(230, 230, 220), width=6)
    draw.rectangle((x + 20, y + 80, x + 35, y + 130), fill=(60, 50, 40))
    draw.rectangle((x + 120, y + 80, x + 135, y + 130), fill=(60, 50, 40))
    return image


def randomised(network, head_only: bool):
    """The learner's network with its head (or every layer) re-initialised, as two eager parts."""
    copied = copy.deepcopy(network).eval()
    modules = list(copied.head.modules()) + ([] if head_only else list(copied.body.modules()))
    torch.manual_seed(0)
    with torch.no_grad():
        for module in modules:
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            for name, buffer in module.named_buffers(recurse=False):  # the ImageNet prior's classifier
                if name in ("weight", "bias") and buffer.is_floating_point():
                    buffer.normal_(0, float(buffer.std()) or 0.01)
    return CompiledNetwork(_Normalised(copied).eval(), copied.head.eval()).eval()


def correlation(a: Heatmap, b: Heatmap) -> float:
    if a.cells.std() == 0 or b.cells.std() == 0:
        return 1.0 if a.cells.std() == b.cells.std() == 0 else 0.0
    return float(spearmanr(a.cells.ravel(), b.cells.ravel()).statistic)


@pytest.fixture(scope="module")
def otters():
    if "otters" not in BUNDLED:
        pytest.skip("the otters bundle is not in models/")
    bundle = resolve_bundle("otters")
    return bundle, Predictor(load_model(bundle, runtime=TORCH)), load_learner(bundle).model.eval()


def test_the_heatmap_changes_when_the_models_weights_are_randomised(otters):
    """Adebayo et al.'s model-randomisation check: a map that stays when the weights are random shows
    the photo, not what the model learnt. The class-blind EigenCAM is the control that fails it."""
    bundle, predictor, learner = otters
    batch = prepared(predictor, [animal_photo(seed) for seed in range(4)])
    trained = heatmaps_by_method(predictor.network, batch, bundle.classes, methods=(DEFAULT_METHOD, EIGENCAM))
    asked = [h.label for h in trained[DEFAULT_METHOD]]
    again = heatmaps(predictor.network, batch, bundle.classes, asked)
    assert all(np.array_equal(a.cells, b.cells) for a, b in zip(trained[DEFAULT_METHOD], again, strict=True))
    for head_only in (True, False):
        random = heatmaps_by_method(
            randomised(learner, head_only), batch, bundle.classes, asked, (DEFAULT_METHOD, EIGENCAM)
        )
        changed = [
            abs(correlation(a, b))
            for a, b in zip(trained[DEFAULT_METHOD], random[DEFAULT_METHOD], strict=True)
        ]
        assert np.mean(changed) < 0.5, (head_only, changed)
        if head_only:  # the control: a map that ignores the head cannot notice a random head
            blind = [correlation(a, b) for a, b in zip(trained[EIGENCAM], random[EIGENCAM], strict=True)]
            assert np.mean(blind) > 0.99


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_model_explains_its_answer(name):
    bundle = resolve_bundle(name)
    predictor = Predictor(load_model(bundle, runtime=TORCH), top_k=5)
    photo = animal_photo(1)
    row = predictor.predict_photo(png(photo), name="frame.png")
    explanation = explain(predictor, photo, row)
    heat = explanation.frame
    assert heat.label == row.top_k[0][0] and heat.probability == pytest.approx(row.top_k[0][1], abs=1e-4)
    assert heat.method == DEFAULT_METHOD and heat.input_size == bundle.image_size
    rows, columns = heat.cells.shape
    assert rows == columns == -(-bundle.image_size // 32)  # one cell per 32 pixels of the square input
    assert heat.cells.min() >= 0 and heat.cells.max() == pytest.approx(1.0)
    values = heat.values(photo.size)
    assert values.shape == (photo.height, photo.width) and 0 <= values.min() <= values.max() <= 1
    assert explanation.crops == ()


def test_every_method_runs_and_a_named_class_is_explained(tiny_bundle, tiny_image):
    predictor = Predictor(load_model(read_bundle(tiny_bundle), runtime=TORCH))
    batch = prepared(predictor, [tiny_image("red", seed=1)])
    found = heatmaps_by_method(predictor.network, batch, TINY_CLASSES, ["blue"])
    assert set(found) == set(METHODS)
    assert all(h[0].label == "blue" and h[0].cells.shape == (2, 2) for h in found.values())
    with pytest.raises(ExplainError, match="'zebra' is not a class"):
        heatmaps(predictor.network, batch, TINY_CLASSES, ["zebra"])
    with pytest.raises(ExplainError, match="unknown method"):
        heatmaps(predictor.network, batch, TINY_CLASSES, method="saliency")
    with pytest.raises(ExplainError, match="no separate body and head"):
        heatmaps(torch.nn.Identity(), batch, TINY_CLASSES)


def test_each_animal_the_detector_found_gets_its_own_heatmap(tiny_bundle, tiny_image):
    predictor = Predictor(load_model(read_bundle(tiny_bundle), runtime=TORCH), top_k=3)
    frame = Image.new("RGB", (300, 200), (128, 128, 128))
    frame.paste(tiny_image("red", seed=2).resize((80, 80)), (20, 30))
    frame.paste(tiny_image("blue", seed=3).resize((90, 90)), (180, 90))
    row = Row(
        path="frame.jpg",
        status="ok",
        detections=(
            Detection(
                bbox=(20 / 300, 30 / 200, 80 / 300, 80 / 200), detector_conf=0.9, top_k=(("red", 0.9),)
            ),
            Detection(
                bbox=(180 / 300, 90 / 200, 90 / 300, 90 / 200), detector_conf=0.8, top_k=(("blue", 0.8),)
            ),
        ),
    )
    explanation = explain(predictor, frame, row)
    assert [c.heatmap.label for c in explanation.crops] == ["red", "blue"]
    assert [c.bbox for c in explanation.crops] == [d.bbox for d in row.detections]
    assert all(c.crop.width == c.crop.height for c in explanation.crops)  # the square cut prediction uses
    assert explain(predictor, frame, row, target="green").crops[0].heatmap.label == "green"


def test_a_heatmap_knows_its_share_inside_a_box_and_draws_over_the_photo():
    cells = np.zeros((8, 8), dtype=np.float32)
    cells[4:8, 0:4] = 1.0  # the bottom-left quarter of the square
    heat = Heatmap("zebra", 0.9, cells, 256)
    assert heat.mass_inside((0, 0.5, 0.5, 0.5)) > 0.9
    assert heat.mass_inside((0.5, 0, 0.5, 0.5)) < 0.02
    assert heat.mass_inside((0, 0, 1, 1)) == pytest.approx(1.0)
    photo = Image.new("RGB", (400, 200), (0, 128, 0))
    drawn = np.asarray(overlay(photo, heat)).astype(int)
    assert drawn.shape == (200, 400, 3)
    assert (drawn[5, 395] == (0, 128, 0)).all()  # cold: the photo as it was
    assert abs(drawn[190, 10] - (0, 128, 0)).sum() > 100  # hot: coloured
    assert overlay(photo, heat, max_side=150).size == (134, 67)  # the smallest whole factor that fits: 3
    assert Heatmap("zebra", 0.1, np.zeros((3, 3), np.float32), 96).mass_inside((0, 0, 1, 1)) == 0


@pytest.mark.shared
def test_on_a_real_frame_most_of_the_heatmap_is_inside_the_detectors_box(shared_data):
    pytest.importorskip("megadetector_lite", reason="the detector's weights are installed by `make install`")
    from classifier.intake.images import load_photo
    from classifier.models.detect import Detector

    if "serengeti" not in BUNDLED:
        pytest.skip("the serengeti bundle is not in models/")
    photo = load_photo(shared_data / FRAME, target_size=1024).image
    [box, *_] = Detector(confidence=0.25).detect_one(photo)
    predictor = Predictor(load_model(resolve_bundle("serengeti"), runtime=TORCH))
    row = predictor.predict_photo(png(photo), name="frame.png")
    heat = explain(predictor, photo, row).frame
    area = box.bbox[2] * box.bbox[3]
    assert heat.label == row.top_k[0][0]
    assert heat.mass_inside(box.bbox) > 0.5, (heat.mass_inside(box.bbox), area)
    assert heat.mass_inside(box.bbox) > 1.5 * area


FRAME = "camera_traps/snapshot_serengeti_misc/cheetah/S1_I13_R1_PICT0472.JPG"


def test_the_command_line_writes_a_png(tiny_bundle, tiny_image, tmp_path, capsys):
    photo = tmp_path / "field.jpg"
    tiny_image("green", seed=4).resize((200, 150)).save(photo)
    out = tmp_path / "heat.png"
    assert cli.main(["explain", str(photo), "--out", str(out), "--model", str(tiny_bundle)]) == 0
    written = Image.open(out)
    assert written.format == "PNG" and written.width == 200 and written.height > 150
    assert capsys.readouterr().out.startswith("whole frame: green (")
    assert (
        cli.main(["explain", str(photo), "--out", str(tmp_path / "heat.jpg"), "--model", str(tiny_bundle)])
        == 1
    )
    assert "name a .png file" in capsys.readouterr().err
    bad = ["explain", str(photo), "--out", str(out), "--model", str(tiny_bundle), "--class", "zebra"]
    assert cli.main(bad) == 1
    assert "--class zebra: not a class" in capsys.readouterr().err
    missing = ["explain", str(tmp_path / "none.jpg"), "--out", str(out), "--model", str(tiny_bundle)]
    assert cli.main(missing) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_the_command_line_explains_each_animal_with_a_detector_bundle(
    tiny_bundle, tmp_path, capsys, monkeypatch
):
    """A detector bundle: the PNG holds the frame and a tile per animal, and each box's share is printed."""
    bundle = tmp_path / "tiny"
    shutil.copytree(tiny_bundle, bundle)
    report = json.loads((bundle / "report.json").read_text())
    (bundle / "report.json").write_text(
        json.dumps({**report, "detector": {"confidence": 0.25, "input_size": 640}})
    )

    class TwoAnimals:
        confidence, input_size = 0.25, 640

        def detect(self, frames, confidence=None):
            return [
                [Detection((0.1, 0.2, 0.3, 0.3), 0.9), Detection((0.6, 0.5, 0.3, 0.4), 0.7)] for _ in frames
            ]

    monkeypatch.setattr(detect, "detector_for", lambda *_: TwoAnimals())
    photo = tmp_path / "frame.png"
    Image.new("RGB", (320, 240), (40, 190, 50)).save(photo)
    out = tmp_path / "heat.png"
    assert cli.main(["explain", str(photo), "--out", str(out), "--model", str(bundle)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[1].startswith("animal 1: ") and "inside its box" in lines[2]
    assert Image.open(io.BytesIO(out.read_bytes())).height > 240 + 80  # the crops' row under the frame
