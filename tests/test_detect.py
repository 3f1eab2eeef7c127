"""The animal detector (MegadetectorLite in classifier.models.yolox / classifier.models.detect), as a user meets it.

The detector is loaded once for the module. Frames from ../shared/data are only read (tests that need
them skip without it); every other image is generated here.
"""

from __future__ import annotations

import io
import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from classifier.intake.images import ImageError, load_photo
from classifier.models.bundles import DETECTOR_CONFIDENCE
from classifier.models.detect import (
    Detector,
    DetectorUnavailable,
    crop_box,
    load_network,
    weights_path,
)
from classifier.models.yolox import YOLOX, nms
from classifier.schema.rows import Detection

REFERENCE = Path(__file__).parent / "data" / "detector_reference.json"
SPECIESNET = "camera_traps/speciesnet_test_data"
SPECIESNET_ANIMALS = (
    "african_elephants.jpg",
    "african_elephants_bw.jpg",  # greyscale copy
    "african_elephants_cmyk.jpg",
    "african_elephants_with_exif_orientation.jpg",  # stored sideways, EXIF orientation 6
    "american_black_bear.jpg",
    "domestic_cattle.jpg",
    "domestic_dog.jpg",
    "ocelot.jpg",
)
EMPTY_FRAMES = (
    f"{SPECIESNET}/blank.jpg",
    f"{SPECIESNET}/blank2.jpg",
    f"{SPECIESNET}/blank3.jpg",
    "camera_traps/chicago_wildlife_watch_fieldguide/empty/empty-1.jpg",
    "camera_traps/chicago_wildlife_watch_fieldguide/empty/empty-2.jpg",
    "camera_traps/chicago_wildlife_watch_fieldguide/empty/empty-3.jpg",
)


@pytest.fixture(scope="module")
def detector() -> Detector:
    torch.set_num_threads(2)
    return Detector()


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """IoU of two [x, y, w, h] boxes."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(width, 0.0) * max(height, 0.0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else float(a == b)


def assert_same_boxes(ours: list[Detection], theirs: list[Detection], min_iou: float) -> None:
    assert len(ours) == len(theirs), (ours, theirs)
    for mine in ours:
        assert max(iou(mine.bbox, other.bbox) for other in theirs) > min_iou, (mine, theirs)


def test_the_checkpoint_loads_strictly_into_our_network() -> None:
    checkpoint = torch.load(weights_path(), map_location="cpu", weights_only=True)
    network = YOLOX()
    result = network.load_state_dict(checkpoint["model"], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert sum(p.numel() for p in network.parameters()) == 5_032_866
    assert network.backbone.backbone.stem.conv.bn.eps == 1e-3


def test_the_network_decodes_boxes_in_input_pixels() -> None:
    with torch.inference_mode():  # the YOLOX module itself: a compiled one is fixed to its input size
        outputs = load_network()(torch.zeros(1, 3, 64, 96))
    # 8x12 + 4x6 + 2x3 anchor points; centre x/y, width/height, objectness, one class score
    assert outputs.shape == (1, 96 + 24 + 6, 6)
    assert float(outputs[..., 4:].min()) >= 0 and float(outputs[..., 4:].max()) <= 1
    assert float(outputs[0, :96, 0].max()) < 96 + 8 * 12  # centres of the finest grid stay near the image


def test_a_generated_frame_without_animals_gives_no_box(detector: Detector) -> None:
    rng = np.random.default_rng(0)
    gradient = np.linspace(40, 200, 800)[None, :, None] * np.ones((600, 1, 3))
    noisy = np.clip(gradient + rng.normal(0, 12, gradient.shape), 0, 255).astype(np.uint8)
    plain_grey = np.full((480, 640, 3), 128, np.uint8)
    found = detector.detect([Image.fromarray(noisy), Image.fromarray(plain_grey)])
    assert found == [[], []]


def test_sixteen_bit_and_greyscale_photos_are_read_and_searched(detector: Detector, tmp_path: Path) -> None:
    ramp = (np.linspace(0, 65535, 300 * 400).reshape(300, 400)).astype(np.uint16)
    sixteen = tmp_path / "sixteen.png"
    Image.fromarray(ramp).save(sixteen)  # mode I;16
    grey = tmp_path / "grey.jpg"
    Image.fromarray((ramp >> 8).astype(np.uint8), mode="L").save(grey)
    assert Image.open(sixteen).mode.startswith("I;16")
    assert detector.detect([sixteen, grey]) == [[], []]


def test_nms_drops_overlapping_boxes_and_keeps_separate_ones() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.5, 0.9, 0.3, 0.5])
    assert nms(boxes, scores, 0.45).tolist() == [1, 2]
    assert nms(boxes[:0], scores[:0], 0.45).tolist() == []


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        Detector(input_size=600)
    with pytest.raises(ValueError, match="between 0 and 1"):
        Detector(confidence=1.5)


def test_without_the_weights_package_the_error_is_one_actionable_line(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "megadetector_lite", None)  # import fails as if not installed
    with pytest.raises(DetectorUnavailable) as error:
        Detector()
    message = str(error.value)
    assert message == (
        "the animal detector's weights are not installed: "
        "run `make install` (or pip install ./vendor/megadetector-lite)."
    )
    assert "\n" not in message


def test_a_damaged_weights_file_is_refused_before_loading(tmp_path: Path) -> None:
    damaged = tmp_path / "weights.pth"
    damaged.write_bytes(weights_path().read_bytes()[:1000])
    with pytest.raises(DetectorUnavailable, match=r"SHA-256 .* is not the pinned .*reinstall") as error:
        load_network(damaged)
    assert "\n" not in str(error.value)


def test_crop_is_square_with_context_and_stays_inside_the_image() -> None:
    image = Image.new("RGB", (400, 200))
    middle = crop_box(image, (0.4, 0.4, 0.1, 0.2), margin=0.1)  # 40 x 40 px box -> 48 px square
    assert middle.size == (48, 48)
    corner = crop_box(image, (0.9, 0.0, 0.1, 0.25), margin=0.5)  # 40 x 50 px box in the top right corner
    assert corner.size == (100, 100)
    wide = crop_box(image, (0.0, 0.2, 1.0, 0.5))  # wider than the image is tall: the short side
    assert wide.size == (200, 200)


def test_crop_at_the_edges_keeps_the_box_in_view() -> None:
    pixels = np.zeros((100, 300, 3), np.uint8)
    pixels[80:100, 280:300] = 255  # a white 20 x 20 animal in the bottom right corner
    image = Image.fromarray(pixels)
    crop = crop_box(image, (280 / 300, 0.8, 20 / 300, 0.2), margin=0.2)
    assert crop.size == (28, 28)
    assert np.asarray(crop)[-20:, -20:].min() == 255  # the whole box is in the crop, at its corner


def test_crop_of_a_one_pixel_wide_strip_and_of_an_empty_box() -> None:
    strip = Image.new("RGB", (1, 50), (10, 20, 30))
    assert crop_box(strip, (0.0, 0.2, 1.0, 0.1)).size == (1, 1)
    tall = Image.new("RGB", (1, 500))
    assert crop_box(tall, (0.0, 0.0, 1.0, 1.0)).size == (1, 1)
    flat = Image.new("RGB", (300, 200))
    assert crop_box(flat, (0.5, 0.5, 0.0, 0.0)).size == (1, 1)
    assert crop_box(flat, (1.0, 1.0, 0.0, 0.0)).size == (1, 1)
    assert crop_box(flat, (-0.5, 2.0, 3.0, 3.0), margin=0.2).size == (200, 200)


# --- real frames (skipped without ../shared/data) ---


@pytest.mark.shared
def test_every_speciesnet_animal_frame_is_boxed_including_the_broken_copies(detector, shared_data) -> None:
    paths = [shared_data / SPECIESNET / name for name in SPECIESNET_ANIMALS]
    for path, found in zip(paths, detector.detect(paths), strict=True):
        assert found, f"{path.name}: no box"
        for detection in found:
            x, y, w, h = detection.bbox
            assert 0 <= x <= x + w <= 1 and 0 <= y <= y + h <= 1
            assert DETECTOR_CONFIDENCE <= detection.detector_conf <= 1


@pytest.mark.shared
def test_small_frames_are_searched_at_their_own_size(detector, shared_data) -> None:
    """A 100x75 thumbnail is not enlarged to the input size (enlarged, the detector misses most animals)."""
    thumbnail = shared_data / "camera_traps/camtrapR_borneo/pigtailed_macaque"
    frames = sorted(thumbnail.glob("*.JPG"))[:4]
    assert frames and Image.open(frames[0]).size == (100, 75)
    assert all(detector.detect(frames))
    enlarged = Detector(enlarge_small=True)
    assert sum(map(bool, enlarged.detect(frames))) < len(frames)


@pytest.mark.shared
def test_a_truncated_frame_is_the_projects_one_line_error(detector, shared_data) -> None:
    truncated = shared_data / SPECIESNET / "african_elephants_truncated_file.jpg"
    with pytest.raises(ImageError, match=r"^african_elephants_truncated_file\.jpg: the file is truncated"):
        detector.detect([truncated])


@pytest.mark.shared
def test_empty_frames_get_no_box(detector, shared_data) -> None:
    found = detector.detect([shared_data / path for path in EMPTY_FRAMES])
    assert {path: boxes for path, boxes in zip(EMPTY_FRAMES, found, strict=True) if boxes} == {}


@pytest.mark.shared
def test_boxes_are_in_the_frame_as_exif_turns_it(detector, shared_data, tmp_path) -> None:
    upright = load_photo(shared_data / SPECIESNET / "domestic_cattle.jpg").image
    # As a camera held sideways writes it: pixels stored turned, EXIF orientation 6 ("turn 90 clockwise").
    sideways = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "sideways.jpg"
    sideways.save(path, quality=95, exif=exif)
    expected = detector.detect([upright])[0]
    found = detector.detect([path])[0]
    assert len(expected) >= 2
    assert_same_boxes(found, expected, min_iou=0.9)
    # without the orientation the same pixels give boxes in another place: the test can tell the two apart
    unturned = detector.detect([sideways])[0]
    assert max(iou(a.bbox, b.bbox) for a in unturned for b in expected) < 0.5


@pytest.mark.shared
def test_a_sixteen_bit_copy_of_a_real_frame_is_boxed_like_its_greyscale(detector, shared_data) -> None:
    grey = load_photo(shared_data / SPECIESNET / "african_elephants.jpg", target_size=640).image.convert("L")
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(grey).astype(np.uint16) * 257).save(buffer, format="PNG")
    sixteen, eight = detector.detect([buffer.getvalue(), grey.convert("RGB")])
    assert sixteen
    assert_same_boxes(sixteen, eight, min_iou=0.99)


@pytest.mark.shared
def test_batches_threads_and_single_frames_agree(detector, shared_data) -> None:
    images = [
        load_photo(shared_data / SPECIESNET / name, target_size=640).image
        for name in ("ocelot.jpg", "domestic_dog.jpg", "blank.jpg")
    ]
    batched = detector.detect(images)
    alone = [detector.detect_one(image) for image in images]
    results: dict[int, list] = {}

    def run(index: int) -> None:
        results[index] = detector.detect(images)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for found in (alone, results[0], results[1]):
        for mine, theirs in zip(found, batched, strict=True):
            assert [d.detector_conf for d in mine] == pytest.approx(
                [d.detector_conf for d in theirs], abs=1e-4
            )
            assert_same_boxes(mine, theirs, min_iou=0.999)


@pytest.mark.shared
def test_boxes_match_zambas_own_implementation(detector, shared_data) -> None:
    """Our network, decoding and NMS against zamba 2.7.2's code on the same pixels, fed as zamba feeds them."""
    import megadetector_lite

    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    low = min(reference["confidences"])
    root = shared_data / "camera_traps"
    assert reference["input_size"] == 640
    assert reference["weights_sha256"] == megadetector_lite.WEIGHTS_SHA256
    zambas_way = Detector(input_size=640, channel_order="RGB", enlarge_small=True)
    for frame in reference["frames"]:
        image = load_photo(root / frame["path"]).image  # decoded in full, as the reference was
        assert list(image.size) == frame["decoded_size"]
        found = zambas_way.detect([image], confidence=low)[0]
        for confidence, boxes in frame["boxes"].items():
            ours = [d for d in found if d.detector_conf >= float(confidence)]
            theirs = [
                Detection(bbox=_clipped_xywh(box["x1y1x2y2"]), detector_conf=box["score"]) for box in boxes
            ]
            assert len(ours) == len(theirs), (frame["path"], confidence, ours, theirs)
            for mine, other in zip(ours, sorted(theirs, key=lambda d: -d.detector_conf), strict=True):
                assert iou(mine.bbox, other.bbox) > 0.99, (frame["path"], mine, other)
                assert mine.detector_conf == pytest.approx(other.detector_conf, abs=1e-3)


def _clipped_xywh(corners: list[float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in corners)
    return (x1, y1, x2 - x1, y2 - y1)
