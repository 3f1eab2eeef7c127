"""Where the model looked: a heatmap over the photo for the class it names, for the frame and each animal.

A class-activation map weighs the classifier's last feature map (the body's output: 1280 channels on a
grid of 7-9 cells a side for the bundled EfficientNet-Lites, one cell per 32 pixels of the square input)
by how much each channel counts for the class, and keeps the positive part. It needs the network as the
two parts `classifier.models.runtimes.CompiledNetwork` compiles: the body runs once without gradients, then the
head runs on its feature map with gradients, so the class score's gradient with respect to that map costs
one small backward pass through the head, whatever the head is: fastai's two-layer head (habitat,
otters) or the linear probe with its ImageNet prior (serengeti). fastai is never imported.

Methods (`METHODS`), all on that feature map A with the gradient G of the class score:
- `gradcam`: channel weights = G averaged over the grid (Selvaraju et al. 2017);
- `gradcam++`: weights from positive gradients with per-cell coefficients (Chattopadhay et al. 2018);
- `hirescam`: the element-wise product G x A summed over channels (Draelos and Carin 2020); the same map
  as Grad-CAM where the head starts by averaging the grid (the linear probe), not where it also takes
  the grid's maximum (fastai's head);
- `ablation`: gradient-free: each channel's weight is how much the score drops when it is zeroed
  (Desai and Ramaswamy 2020), one head pass per channel, batched;
- `eigencam`: gradient-free and class-blind: the feature map's first principal component (Muhammad and
  Yeasin 2020).
`DEFAULT_METHOD` is the one `benchmarks/explain_sanity.py` chose: the model-randomisation sanity check
(Adebayo et al. 2018: a map that survives randomised weights shows the photo, not the model) and the
share of the map inside the animal detector's box on real camera-trap frames; the figures are beside it.

The map is over the square the classifier sees, which is the whole photo (or crop) squished, so its
normalised coordinates are the photo's: `Heatmap.values(size)` stretches it over a picture of any size,
`Heatmap.mass_inside(bbox)` says what share of it falls in a normalised [x, y, w, h] box, and `overlay`
draws it (no matplotlib: a built-in colour map).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from classifier.models.detect import crop_box
from classifier.schema.rows import Row, pixel_box

if TYPE_CHECKING:
    from classifier.models.predict import Predictor

GRADCAM, GRADCAM_PP, HIRESCAM, ABLATION, EIGENCAM = "gradcam", "gradcam++", "hirescam", "ablation", "eigencam"
METHODS = (GRADCAM, GRADCAM_PP, HIRESCAM, ABLATION, EIGENCAM)
GRADIENT_METHODS = (GRADCAM, GRADCAM_PP, HIRESCAM)
# Chosen by benchmarks/explain_sanity.py (--quick, 2026-12-01): of the methods whose maps change when
# the weights are randomised (mean |Spearman| under 0.5 at every stage on every bundle: Grad-CAM,
# HiResCAM, ablation), the most mass inside the detector's boxes on camera-trap frames serengeti never saw
# (0.48, boxes 0.22 of the frame: tied with Grad-CAM, the linear probe makes them one map), then the most
# change under randomisation: mean |Spearman| 0.19 against Grad-CAM's 0.23 (likely because fastai's head
# also max-pools the grid, and Grad-CAM averages away which cell that gradient falls on). EigenCAM put more
# in the boxes (0.55) but does not change at all with a random head. docs/benchmarks.md, "Where the model looked".
DEFAULT_METHOD = HIRESCAM
ABLATION_CHUNK = 256  # channels ablated per head pass
# Colours of the overlay, cold to hot (matplotlib's "inferno" at 0, 1/4, 1/2, 3/4 and 1).
_ANCHORS = np.array(
    [(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)], dtype=np.float32
)
COLOURS = np.stack(
    [np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_ANCHORS)), _ANCHORS[:, c]) for c in range(3)],
    axis=1,
).astype(np.uint8)


class ExplainError(ValueError):
    """A network or request that cannot be explained; the message is one line."""


@dataclass(frozen=True)
class Heatmap:
    """Where the classifier looked for `label` in one picture: `cells` (rows, columns) in [0, 1] over the
    square input of `input_size` pixels (the picture squished), 1 at the strongest cell; all zeros when
    nothing in the picture counted for the class."""

    label: str
    probability: float  # the classifier's probability for `label` on this picture
    cells: np.ndarray = field(repr=False)
    input_size: int
    method: str = DEFAULT_METHOD

    def values(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """The map as (height, width) float32 in [0, 1] over a picture of `size` (width, height); default
        the classifier's square input. Each cell covers its stride of input pixels from the top left, as
        the network's strided convolutions do, then the square is stretched back to the picture."""
        side = self.input_size
        rows, columns = self.cells.shape
        stride = 2 ** math.ceil(math.log2(max(side / rows, side / columns, 1.0)))
        grid = torch.from_numpy(np.ascontiguousarray(self.cells, dtype=np.float32))[None, None]
        square = F.interpolate(grid, scale_factor=stride, mode="bilinear", align_corners=False)
        square = square[..., :side, :side]
        width, height = size or (side, side)
        if (width, height) != (square.shape[-1], square.shape[-2]):
            square = F.interpolate(square, size=(height, width), mode="bilinear", align_corners=False)
        return square[0, 0].clamp_(0, 1).numpy()

    def mass_inside(self, bbox: Sequence[float]) -> float:
        """The share of the map's total inside a normalised [x, y, w, h] box (0 for an empty map)."""
        values = self.values()
        total = float(values.sum())
        if total <= 0:
            return 0.0
        side = self.input_size
        x, y, w, h = (float(v) for v in bbox)
        left, right = round(min(max(x, 0), 1) * side), round(min(max(x + w, 0), 1) * side)
        top, bottom = round(min(max(y, 0), 1) * side), round(min(max(y + h, 0), 1) * side)
        return float(values[top:bottom, left:right].sum()) / total

    @property
    def empty(self) -> bool:
        return not bool(np.any(self.cells > 0))


@dataclass(frozen=True)
class CropHeatmap:
    """One animal: the detector's box, the crop the classifier saw, and where it looked in it."""

    bbox: tuple[float, float, float, float]
    crop: Image.Image = field(repr=False)
    heatmap: Heatmap


@dataclass(frozen=True)
class Explanation:
    """The whole frame's heatmap and, when the detector ran, each classified animal's."""

    frame: Heatmap
    crops: tuple[CropHeatmap, ...] = ()
    seconds: float = 0.0


def heatmaps(
    network: torch.nn.Module,
    images: torch.Tensor,
    classes: Sequence[str],
    targets: Sequence[str | None] | None = None,
    method: str = DEFAULT_METHOD,
) -> list[Heatmap]:
    """Heatmaps for a batch of squished images (N, 3, S, S) with values in [0, 1], as prediction feeds
    the network; `targets`: the class to explain for each (None: its top class)."""
    return heatmaps_by_method(network, images, classes, targets, (method,))[method]


def heatmaps_by_method(
    network: torch.nn.Module,
    images: torch.Tensor,
    classes: Sequence[str],
    targets: Sequence[str | None] | None = None,
    methods: Sequence[str] = METHODS,
) -> dict[str, list[Heatmap]]:
    """`heatmaps` with several methods from one pass through the body (what the benchmark compares)."""
    for method in methods:
        if method not in METHODS:
            raise ExplainError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    body, head = getattr(network, "body", None), getattr(network, "head", None)
    if body is None or head is None:
        raise ExplainError(
            f"{type(network).__name__} has no separate body and head: a heatmap needs the torch "
            'runtime\'s network, load_model(bundle, runtime="torch")'
        )
    classes = list(classes)
    wanted = list(targets) if targets is not None else [None] * len(images)
    if len(wanted) != len(images):
        raise ExplainError(f"{len(wanted)} targets for {len(images)} images")
    unknown = [t for t in wanted if t is not None and t not in classes]
    if unknown:
        raise ExplainError(f"{unknown[0]!r} is not a class of this model")
    found = {}
    with torch.inference_mode(False), torch.enable_grad():
        with torch.no_grad():
            maps = body(images)
        maps = maps.detach().requires_grad_(any(m in GRADIENT_METHODS for m in methods))
        logits = head(maps)
        probabilities = torch.softmax(logits.detach().float(), dim=1)
        index = torch.tensor(
            [
                classes.index(t) if t is not None else int(p.argmax())
                for t, p in zip(wanted, probabilities, strict=True)
            ],
            dtype=torch.long,
            device=logits.device,
        )
        activations = maps.detach().float()
        gradients = None
        if maps.requires_grad:
            (gradients,) = torch.autograd.grad(logits.gather(1, index[:, None]).sum(), maps)
            gradients = gradients.float()
        for method in methods:
            if method in GRADIENT_METHODS:
                cams = _gradient_cam(method, activations, gradients)
            elif method == ABLATION:
                cams = _ablation_cam(head, maps.detach(), logits.detach(), index)
            else:
                cams = _eigen_cam(activations)
            found[method] = _heatmaps(cams, probabilities, index, classes, int(images.shape[-1]), method)
    return found


def _heatmaps(cams, probabilities, index, classes, side: int, method: str) -> list[Heatmap]:
    cams = cams.detach().clamp(min=0)
    peak = cams.flatten(1).amax(dim=1).clamp(min=1e-12)[:, None, None]
    cells = (cams / peak).cpu().numpy().astype(np.float32)
    return [
        Heatmap(classes[i], float(probabilities[n, i]), cells[n], side, method)
        for n, i in enumerate(index.tolist())
    ]


def _gradient_cam(method: str, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    if method == HIRESCAM:
        return (g * a).sum(dim=1)
    if method == GRADCAM:
        weights = g.mean(dim=(2, 3))
    else:  # Grad-CAM++, with the exponential-score closed form its authors and pytorch-grad-cam use
        g2, g3 = g.pow(2), g.pow(3)
        denominator = 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g3
        alpha = torch.where(g != 0, g2 / torch.where(denominator != 0, denominator, torch.ones_like(g)), 0)
        weights = (alpha * g.clamp(min=0)).sum(dim=(2, 3))
    return (weights[:, :, None, None] * a).sum(dim=1)


def _ablation_cam(head: torch.nn.Module, maps: torch.Tensor, logits: torch.Tensor, index: torch.Tensor):
    channels = maps.shape[1]
    cams = []
    with torch.no_grad():
        for n in range(maps.shape[0]):
            base = logits[n, index[n]].float()
            drops = []
            for start in range(0, channels, ABLATION_CHUNK):
                stop = min(start + ABLATION_CHUNK, channels)
                batch = maps[n : n + 1].repeat(stop - start, 1, 1, 1)
                batch[torch.arange(stop - start), torch.arange(start, stop)] = 0
                drops.append(base - head(batch)[:, index[n]].float())
            weights = torch.cat(drops) / base.abs().clamp(min=1e-6)
            cams.append((weights[:, None, None] * maps[n].float()).sum(dim=0))
    return torch.stack(cams)


def _eigen_cam(a: torch.Tensor) -> torch.Tensor:
    n, c, h, w = a.shape
    flat = a.permute(0, 2, 3, 1).reshape(n, h * w, c)
    centred = flat - flat.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    projection = (flat @ vh[:, 0, :, None]).squeeze(-1)  # (n, h*w)
    # An eigenvector's sign is arbitrary: turn it so the map follows the overall activation.
    sign = torch.sign(((projection - projection.mean(1, keepdim=True)) * flat.sum(-1)).sum(1, keepdim=True))
    return (projection * torch.where(sign == 0, 1.0, sign)).reshape(n, h, w)


# --------------------------------------------------------------------------- a predictor's photo


def explain(
    predictor: Predictor,
    image: Image.Image,
    row: Row | None = None,
    *,
    method: str = DEFAULT_METHOD,
    target: str | None = None,
    network: torch.nn.Module | None = None,
) -> Explanation:
    """Where the predictor's classifier looked in `image`: over the whole frame, and in each animal's
    crop when `row` (the frame's row from `predictor.predict_photo`) has the detector's boxes.

    The whole frame is explained for the first class of the row's bars (the frame's answer among the
    place's classes, as shown), else for its own top class; each crop for its box's first class; `target`
    names another class to explain everywhere. Nothing is computed before this is called: prediction never
    pays for it. `network`: the classifier's torch network in two parts (`load_model(bundle,
    runtime="torch")`) when the predictor's runs on another runtime, which gives no gradients.
    """
    started = time.perf_counter()
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    classes = list(predictor.classes)
    frame_target = None
    if row is not None:
        frame_target = next((label for label, _ in row.top_k if label in classes), None)
    if target is not None and target not in classes:
        raise ExplainError(f"{target!r} is not a class of this model")
    pictures, targets = [rgb], [target or frame_target]
    boxes = list(row.detections or ()) if row is not None else []
    crops = [crop_box(rgb, d.bbox, predictor.crop_margin) for d in boxes]
    for detection, crop in zip(boxes, crops, strict=True):
        pictures.append(crop)
        targets.append(target or next((label for label, _ in detection.top_k if label in classes), None))
    batch = prepared(predictor, pictures)
    maps = heatmaps(network or predictor.network, batch, classes, targets, method)
    return Explanation(
        frame=maps[0],
        crops=tuple(
            CropHeatmap(tuple(d.bbox), crop, heatmap)
            for d, crop, heatmap in zip(boxes, crops, maps[1:], strict=True)
        ),
        seconds=time.perf_counter() - started,
    )


def prepared(predictor: Predictor, pictures: Sequence[Image.Image]) -> torch.Tensor:
    """The pictures as prediction feeds them: squished to the bundle's size, [0, 1], channels last."""
    size = (predictor.image_size, predictor.image_size)
    arrays = [np.asarray(p if p.size == size else p.resize(size, Image.BILINEAR)) for p in pictures]
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(predictor.device).float().div_(255.0)
    return batch.contiguous(memory_format=torch.channels_last)


# ------------------------------------------------------------------------------------------- drawing


def overlay(
    image: Image.Image, heatmap: Heatmap, opacity: float = 0.65, *, max_side: int | None = None
) -> Image.Image:
    """`image` with the heatmap over it: hot cells coloured (dark red to pale yellow), cold ones left
    as they are, so what the model ignored stays visible. `max_side`: first shrink the image by a whole
    factor (PIL's cheap box reduce) until neither side is longer, for a screen that shows no more.

    All in PIL, the map stretched once as 8-bit levels and coloured by look-up tables: blending a
    3-megapixel frame in numpy cost more than the prediction itself, and even PIL's blend of it about
    as much as the heatmap's network pass (benchmarks/explain_speed.py); hence `max_side`."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if max_side and max(rgb.size) > max_side:
        rgb = rgb.reduce(math.ceil(max(rgb.size) / max_side))
    level = Image.fromarray(np.round(heatmap.values() * 255).astype(np.uint8), mode="L")
    if level.size != rgb.size:
        level = level.resize(rgb.size, Image.BILINEAR)
    colours = Image.merge("RGB", [level.point(COLOURS[:, c].tolist()) for c in range(3)])
    alpha = level.point([round(opacity * v) for v in range(256)])
    return Image.composite(colours, rgb, alpha)


def render(image: Image.Image, explanation: Explanation, *, name: Callable[[str], str] = str) -> Image.Image:
    """One picture of an explanation (what the command line writes): the frame with its heatmap and the
    detector's boxes, each animal's crop with its own below, and a caption line under each."""
    frame = overlay(image, explanation.frame)
    crop_size = max(128, frame.width // 4)
    draw = ImageDraw.Draw(frame)
    width = max(2, round(min(frame.size) / 250))
    for crop in explanation.crops:
        draw.rectangle(pixel_box(frame.size, crop.bbox), outline=(255, 196, 0), width=width)
    font = ImageFont.load_default(size=max(12, round(frame.width / 60)))
    pieces = [(frame, _caption("Whole frame", explanation.frame, name))]
    for number, crop in enumerate(explanation.crops, 1):
        tile = overlay(crop.crop.resize((crop_size, crop_size), Image.BILINEAR), crop.heatmap)
        pieces.append((tile, f"{number}: {name(crop.heatmap.label)} {crop.heatmap.probability:.0%}"))
    line = font.size + 8
    crops_width = sum(tile.width for tile, _ in pieces[1:])
    rows = max(1, -(-crops_width // frame.width)) if len(pieces) > 1 else 0
    height = frame.height + line + rows * (crop_size + line)
    sheet = Image.new("RGB", (frame.width, height), (255, 255, 255))
    sheet.paste(frame, (0, 0))
    text = ImageDraw.Draw(sheet)
    text.text((4, frame.height + 4), pieces[0][1], fill=(0, 0, 0), font=font)
    x, y = 0, frame.height + line
    small = ImageFont.load_default(size=max(10, round(crop_size / 14)))
    for tile, caption in pieces[1:]:
        if x + tile.width > frame.width and x > 0:
            x, y = 0, y + crop_size + line
        sheet.paste(tile, (x, y))
        text.text((x + 4, y + crop_size + 4), caption, fill=(0, 0, 0), font=small)
        x += tile.width
    return sheet


def _caption(what: str, heatmap: Heatmap, name: Callable[[str], str]) -> str:
    if heatmap.empty:
        return f"{what}: nothing in it counted for {name(heatmap.label)} ({heatmap.probability:.0%})"
    return f"{what}: where the model looked for {name(heatmap.label)} ({heatmap.probability:.0%})"
