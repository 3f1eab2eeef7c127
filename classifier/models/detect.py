"""Find animals in camera-trap frames with MegadetectorLite, offline, and cut them out for the classifier.

`Detector` loads the weights once (from the `megadetector_lite` package, SHA-256 checked) into our own
YOLOX-tiny (`classifier.models.yolox`) and is safe to share between threads: `detect` only reads the network.
A frame is prepared as zamba prepares it: pixel values 0-255 as floats, resized with bicubic
resampling to fit `input_size` x `input_size` keeping its aspect ratio, black padding below and to the
right; except that a frame smaller than that is not enlarged (`enlarge_small=True` does as zamba does):
measured on the 100x75 camtrapR thumbnails at 640 px, 78% of the animal frames kept a box at 0.25
instead of 1.5%, and 68% of Chicago's 400x200 ones instead of 55%, with empty frames still empty
(benchmarks/detector.py). Boxes come back as `Detection`s, best first, with `bbox` = normalised [x, y, w, h] from the top
left of the photo as `classifier.intake.images.load_photo` decodes it (EXIF orientation applied), clipped to
[0, 1].

`crop_box` cuts a square around a box, with some context, for the species classifier.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Sequence
from contextlib import suppress
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from classifier.intake.images import ImageError, Source, load_photo
from classifier.models import runtimes
from classifier.models.bundles import CROP_MARGIN, DETECTOR_CONFIDENCE, Bundle, BundleError, detector_settings
from classifier.models.yolox import CHANNEL_ORDER, YOLOX, postprocess
from classifier.schema.rows import Detection

# What the weights were trained at. 512 px did as well on these frames (0.942 / 1.0 at 0.05) and is 20%
# faster on a 12 MP frame (199 against 251 ms on 2 threads), but few of the frames are full-size ones,
# where a smaller input loses small animals first.
DEFAULT_INPUT_SIZE = 640
NMS_IOU = 0.45  # zamba's MegadetectorLite setting
INSTALL_HINT = "run `make install` (or pip install ./vendor/megadetector-lite)"


class DetectorUnavailable(RuntimeError):
    """The detector's weights are missing or not the pinned file; the message is one line saying what to do."""


def weights_path() -> Path:
    """MegadetectorLite's checkpoint, from the `megadetector_lite` package; DetectorUnavailable if missing."""
    try:
        import megadetector_lite
    except ImportError:
        raise DetectorUnavailable(
            f"the animal detector's weights are not installed: {INSTALL_HINT}."
        ) from None
    try:
        return megadetector_lite.weights_path()
    except FileNotFoundError:
        raise DetectorUnavailable(
            f"the animal detector's weights file is missing from its package: {INSTALL_HINT}."
        ) from None


def load_network(path: str | Path | None = None, expected_sha256: str | None = None) -> YOLOX:
    """The YOLOX-tiny network with MegadetectorLite's weights, in eval mode, after checking the file's hash.

    `expected_sha256` defaults to the hash the `megadetector_lite` package pins.
    """
    path = Path(path) if path is not None else weights_path()
    data, _ = _checked_weights(path, expected_sha256)
    checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    network = YOLOX(num_classes=1)
    network.load_state_dict(checkpoint["model"], strict=True)
    return network.eval().requires_grad_(False)


def _checked_weights(path: Path, expected_sha256: str | None) -> tuple[bytes, str]:
    """The weights file's bytes and SHA-256, after checking it is the pinned file."""
    if expected_sha256 is None:
        import megadetector_lite

        expected_sha256 = megadetector_lite.WEIGHTS_SHA256
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DetectorUnavailable(
            f"{path}: the detector's weights cannot be read ({exc.strerror or exc}); {INSTALL_HINT}."
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise DetectorUnavailable(
            f"{path}: SHA-256 {actual[:12]}... is not the pinned {expected_sha256[:12]}... (a damaged or "
            f"different file), so the detector is not loaded; reinstall it: {INSTALL_HINT}."
        )
    return data, actual


class Detector:
    """MegadetectorLite: `detect(images)` -> for each image, its `Detection`s, best first.

    `confidence` is the lowest score kept (objectness x class score, as YOLOX and zamba compute it);
    `input_size` the side of the square the frame is fitted into (a multiple of 32; the weights were
    trained at 640); `channel_order` what the network is fed (see `classifier.models.yolox.CHANNEL_ORDER`);
    `enlarge_small` whether frames smaller than the input are enlarged to fill it, as zamba does. `detect` takes PIL images (as `load_photo` returns them) or files/bytes, which it
    decodes with `load_photo` at a reduced scale (an unreadable one raises `ImageError`).
    `runtime` and `precision`: how the network runs (`classifier.models.runtimes`; default: this machine's default
    runtime at float32), compiled once for the input size and cached under the weights' SHA-256;
    `calibration`: the photos int8 calibrates on.
    """

    def __init__(
        self,
        confidence: float = DETECTOR_CONFIDENCE,
        input_size: int = DEFAULT_INPUT_SIZE,
        *,
        weights: str | Path | None = None,
        device: str | torch.device = "cpu",
        channel_order: str = CHANNEL_ORDER,
        enlarge_small: bool = False,
        runtime: str | None = None,
        precision: str = runtimes.FP32,
        calibration: Sequence[Path] | None = None,
    ) -> None:
        if input_size < 32 or input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32 (e.g. 640), not {input_size}")
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
        if channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be RGB or BGR, not {channel_order!r}")
        self.confidence = confidence
        self.input_size = input_size
        self.channel_order = channel_order
        self.enlarge_small = enlarge_small
        self.runtime = runtime or runtimes.default_runtime()
        self.precision = precision
        # OpenVINO and ONNX Runtime run on the CPU; torch on the device asked for.
        self.device = torch.device(device) if self.runtime == runtimes.TORCH else torch.device("cpu")
        path = Path(weights) if weights is not None else weights_path()
        _, sha256 = _checked_weights(path, None)
        photos = list(calibration or ())

        def frames() -> Iterator[np.ndarray]:
            for photo in photos:
                with suppress(ImageError):
                    yield self.prepare(load_photo(photo, target_size=input_size).image)[None]

        try:
            self.network = runtimes.load_detector_network(
                lambda: load_network(path, sha256),
                sha256,
                input_size,
                self.device,
                runtime=self.runtime,
                precision=precision,
                calibration=frames if photos else None,
            )
        except BundleError as exc:
            raise DetectorUnavailable(f"the animal detector: {exc}") from None

    def detect(
        self, images: Sequence[Image.Image | Source], confidence: float | None = None
    ) -> list[list[Detection]]:
        """Detections for each image, in order, as one batch; `confidence` overrides the detector's."""
        threshold = self.confidence if confidence is None else confidence
        if not images:
            return []
        pictures = [self._picture(image) for image in images]
        batch = torch.from_numpy(np.stack([self.prepare(picture) for picture in pictures]))
        with torch.inference_mode():
            outputs = self.network(batch.to(self.device))
            kept = postprocess(outputs, threshold, NMS_IOU)
        return [
            self._detections(boxes.cpu(), picture.size) for boxes, picture in zip(kept, pictures, strict=True)
        ]

    def detect_one(self, image: Image.Image | Source, confidence: float | None = None) -> list[Detection]:
        return self.detect([image], confidence)[0]

    def prepare(self, image: Image.Image) -> np.ndarray:
        """The network's input for one RGB image: (3, size, size) float32, values 0-255, padded as zamba pads."""
        side = self.input_size
        scale = self.scale(image.size)
        if scale == 1.0:
            fitted = Image.new("RGB", (side, side))
            fitted.paste(image, (0, 0))
        else:
            fitted = ImageOps.pad(
                image, (side, side), method=Image.Resampling.BICUBIC, color=0, centering=(0, 0)
            )
        array = np.asarray(fitted, dtype=np.float32)
        if self.channel_order == "BGR":
            array = array[..., ::-1]
        return np.ascontiguousarray(array.transpose(2, 0, 1))

    def scale(self, size: tuple[int, int]) -> float:
        """How much an image of `size` (width, height) is resized to fit the network's input."""
        scale = min(self.input_size / size[0], self.input_size / size[1])
        return scale if self.enlarge_small else min(scale, 1.0)

    def _picture(self, image: Image.Image | Source) -> Image.Image:
        if isinstance(image, Image.Image):
            return image if image.mode == "RGB" else image.convert("RGB")
        return load_photo(image, target_size=self.input_size).image

    def _detections(self, boxes: torch.Tensor, size: tuple[int, int]) -> list[Detection]:
        width, height = size
        scale = self.scale(size)
        found = []
        for x1, y1, x2, y2, score, _ in boxes.tolist():
            left, right = _clip(x1 / scale / width), _clip(x2 / scale / width)
            top, bottom = _clip(y1 / scale / height), _clip(y2 / scale / height)
            found.append(Detection(bbox=(left, top, right - left, bottom - top), detector_conf=score))
        return found


def crop_box(image: Image.Image, bbox: Sequence[float], margin: float = CROP_MARGIN) -> Image.Image:
    """A square cut of `image` around `bbox` (normalised x, y, w, h), with context for a classifier.

    The square's side is the box's longer side plus `margin` of it on each side, centred on the box, and
    moved inside the image where it would cross an edge; it is never larger than the image's shorter side
    (a box wider than that keeps its centre), and at least one pixel.
    """
    width, height = image.size
    x, y, w, h = (float(v) for v in bbox)
    left, right = _clip(x) * width, _clip(x + w) * width
    top, bottom = _clip(y) * height, _clip(y + h) * height
    side = max(right - left, bottom - top) * (1 + 2 * max(margin, 0.0))
    side = int(min(max(round(side), 1), width, height))
    x0 = min(max(round((left + right - side) / 2), 0), width - side)
    y0 = min(max(round((top + bottom - side) / 2), 0), height - side)
    return image.crop((x0, y0, x0 + side, y0 + side))


def _clip(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def detector_for(
    bundle: Bundle, runtime: str | None = None, precision: str = runtimes.FP32
) -> Detector | None:
    """The detector a bundle was trained with (its report's `detector` settings); None: whole frames.
    int8 calibrates on the bundle's training photos."""
    settings = detector_settings(bundle)
    if settings is None:
        return None
    photos = (
        runtimes.calibration_photos(bundle, runtimes.CALIBRATION_FRAMES)
        if precision == runtimes.INT8
        else None
    )
    return Detector(**settings, runtime=runtime, precision=precision, calibration=photos)
