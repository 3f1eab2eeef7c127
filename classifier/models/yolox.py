"""YOLOX-tiny in plain torch: the network MegadetectorLite's weights were trained for, and its decoding.

A re-implementation of Megvii's YOLOX (Apache-2.0, github.com/Megvii-BaseDetection/YOLOX) as zamba 2.7.2
builds it for MegadetectorLite: depth 0.33, width 0.375, one class, plain (not depthwise) convolutions,
SiLU, batch norm with eps 1e-3 and momentum 0.03. Module names follow YOLOX's, so the checkpoint's
"model" state dict loads with `strict=True` as it is. Only torch is imported: no torchvision (its NMS is
replaced by `nms` below, for the few boxes a frame has), fastai or timm, to keep the app's memory low.

`YOLOX(x)` takes a float batch (N, 3, H, W), H and W multiples of 32, pixel values 0-255 (not scaled),
and returns (N, A, 5 + classes): box centre x, y, width, height in input pixels, objectness, class
scores (both after the sigmoid), for A = H*W/64 + H*W/256 + H*W/1024 anchor points (strides 8, 16, 32),
as YOLOX's eval mode does. `postprocess` turns that into boxes as YOLOX's `utils.postprocess` does: score =
objectness x best class score, kept at `>= confidence`, then per-class NMS at IoU `> nms_iou` suppressed.

Channel order, measured with `benchmarks/detector.py` on the 439 real frames of
../shared/data/camera_traps (2026-12-01): zamba feeds the network RGB, while YOLOX's own training code
reads images with OpenCV (BGR). Fed BGR, the best box scores higher on 220 of the 304 colour animal
frames at 640 px (RGB higher on 84; median +0.010), as if the weights had been trained on BGR; but BGR
raises the empty frames' scores as much: fed RGB, the best box on the 6 empty frames scores 0.023, 0,
0, 0, 0, 0; fed BGR 0.023, 0, 0.045, 0, 0.128, 0. At the lowest threshold that leaves every empty frame
empty, RGB keeps a box on more animal frames: 0.959 at 0.03 and 0.939 at 0.05, against BGR's 0.915 at
0.15 (at 0.25 BGR keeps more, 0.886 against 0.852). RGB separates empty frames from animals better on
these frames, and it is what zamba, the reference implementation, feeds: CHANNEL_ORDER is RGB.
"""

from __future__ import annotations

import torch
from torch import nn

# Measured on real frames (see the module docstring); as zamba feeds it.
CHANNEL_ORDER = "RGB"

BN_EPS = 1e-3
BN_MOMENTUM = 0.03
STRIDES = (8, 16, 32)
# Beyond this many candidates over the confidence threshold, NMS sees only the best ones (YOLOX has no
# cap; a frame at the default threshold has a few dozen). Bounds the IoU matrix at 2000 x 2000.
MAX_CANDIDATES = 2000


class BaseConv(nn.Module):
    """Conv2d (same padding, no bias) -> BatchNorm2d -> SiLU."""

    def __init__(self, in_channels: int, out_channels: int, ksize: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, ksize, stride, padding=(ksize - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, shortcut: bool = True, expansion: float = 0.5):
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1, 1)
        self.conv2 = BaseConv(hidden, out_channels, 3, 1)
        self.use_add = shortcut and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling (max pools of 5, 9 and 13 pixels side by side), as in YOLOv3-SPP."""

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: tuple[int, ...] = (5, 9, 13)):
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = BaseConv(in_channels, hidden, 1, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)
        self.conv2 = BaseConv(hidden * (len(kernel_sizes) + 1), out_channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *(pool(x) for pool in self.m)], dim=1))


class CSPLayer(nn.Module):
    """Cross-stage partial layer (YOLOv5's C3): half the channels go through `n` bottlenecks."""

    def __init__(self, in_channels: int, out_channels: int, n: int = 1, shortcut: bool = True):
        super().__init__()
        hidden = int(out_channels * 0.5)
        self.conv1 = BaseConv(in_channels, hidden, 1, 1)
        self.conv2 = BaseConv(in_channels, hidden, 1, 1)
        self.conv3 = BaseConv(2 * hidden, out_channels, 1, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, 1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.cat((self.m(self.conv1(x)), self.conv2(x)), dim=1))


class Focus(nn.Module):
    """Space to depth: each 2x2 block of pixels becomes 4x the channels, then a convolution."""

    def __init__(self, in_channels: int, out_channels: int, ksize: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = BaseConv(in_channels * 4, out_channels, ksize, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top_left, top_right = x[..., ::2, ::2], x[..., ::2, 1::2]
        bottom_left, bottom_right = x[..., 1::2, ::2], x[..., 1::2, 1::2]
        return self.conv(torch.cat((top_left, bottom_left, top_right, bottom_right), dim=1))


class CSPDarknet(nn.Module):
    def __init__(self, depth: float, width: float) -> None:
        super().__init__()
        channels = int(width * 64)
        n = max(round(depth * 3), 1)
        self.stem = Focus(3, channels, ksize=3)
        self.dark2 = nn.Sequential(
            BaseConv(channels, channels * 2, 3, 2), CSPLayer(channels * 2, channels * 2, n)
        )
        self.dark3 = nn.Sequential(
            BaseConv(channels * 2, channels * 4, 3, 2), CSPLayer(channels * 4, channels * 4, n * 3)
        )
        self.dark4 = nn.Sequential(
            BaseConv(channels * 4, channels * 8, 3, 2), CSPLayer(channels * 8, channels * 8, n * 3)
        )
        self.dark5 = nn.Sequential(
            BaseConv(channels * 8, channels * 16, 3, 2),
            SPPBottleneck(channels * 16, channels * 16),
            CSPLayer(channels * 16, channels * 16, n, shortcut=False),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.dark2(self.stem(x))
        dark3 = self.dark3(x)
        dark4 = self.dark4(dark3)
        return dark3, dark4, self.dark5(dark4)


class YOLOPAFPN(nn.Module):
    """CSPDarknet, then a path-aggregation feature pyramid: features at strides 8, 16 and 32."""

    def __init__(self, depth: float, width: float, in_channels: tuple[int, int, int] = (256, 512, 1024)):
        super().__init__()
        c3, c4, c5 = (int(c * width) for c in in_channels)
        n = round(3 * depth)
        self.backbone = CSPDarknet(depth, width)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = BaseConv(c5, c4, 1, 1)
        self.C3_p4 = CSPLayer(2 * c4, c4, n, shortcut=False)
        self.reduce_conv1 = BaseConv(c4, c3, 1, 1)
        self.C3_p3 = CSPLayer(2 * c3, c3, n, shortcut=False)
        self.bu_conv2 = BaseConv(c3, c3, 3, 2)
        self.C3_n3 = CSPLayer(2 * c3, c4, n, shortcut=False)
        self.bu_conv1 = BaseConv(c4, c4, 3, 2)
        self.C3_n4 = CSPLayer(2 * c4, c5, n, shortcut=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dark3, dark4, dark5 = self.backbone(x)
        fpn_out0 = self.lateral_conv0(dark5)
        f_out0 = self.C3_p4(torch.cat([self.upsample(fpn_out0), dark4], dim=1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat([self.upsample(fpn_out1), dark3], dim=1))
        pan_out1 = self.C3_n3(torch.cat([self.bu_conv2(pan_out2), fpn_out1], dim=1))
        pan_out0 = self.C3_n4(torch.cat([self.bu_conv1(pan_out1), fpn_out0], dim=1))
        return pan_out2, pan_out1, pan_out0


class YOLOXHead(nn.Module):
    """Decoupled head: per level, a stem, then class and box branches; box branch also gives objectness."""

    def __init__(
        self, num_classes: int, width: float, in_channels: tuple[int, int, int] = (256, 512, 1024)
    ) -> None:
        super().__init__()
        hidden = int(256 * width)
        self.num_classes = num_classes
        self.strides = STRIDES
        self.stems = nn.ModuleList(BaseConv(int(c * width), hidden, 1, 1) for c in in_channels)
        self.cls_convs = nn.ModuleList(
            nn.Sequential(BaseConv(hidden, hidden, 3, 1), BaseConv(hidden, hidden, 3, 1)) for _ in in_channels
        )
        self.reg_convs = nn.ModuleList(
            nn.Sequential(BaseConv(hidden, hidden, 3, 1), BaseConv(hidden, hidden, 3, 1)) for _ in in_channels
        )
        self.cls_preds = nn.ModuleList(nn.Conv2d(hidden, num_classes, 1) for _ in in_channels)
        self.reg_preds = nn.ModuleList(nn.Conv2d(hidden, 4, 1) for _ in in_channels)
        self.obj_preds = nn.ModuleList(nn.Conv2d(hidden, 1, 1) for _ in in_channels)

    def forward(self, features: tuple[torch.Tensor, ...]) -> torch.Tensor:
        levels = []
        grids = []
        strides = []
        for k, x in enumerate(features):
            x = self.stems[k](x)
            cls_out = self.cls_preds[k](self.cls_convs[k](x))
            reg_feat = self.reg_convs[k](x)
            out = torch.cat(
                [self.reg_preds[k](reg_feat), self.obj_preds[k](reg_feat).sigmoid(), cls_out.sigmoid()], dim=1
            )
            height, width = out.shape[-2:]
            levels.append(out.flatten(start_dim=2))
            ys, xs = torch.meshgrid(
                torch.arange(height, device=out.device), torch.arange(width, device=out.device), indexing="ij"
            )
            grids.append(torch.stack((xs, ys), dim=2).reshape(-1, 2))
            strides.append(torch.full((height * width, 1), self.strides[k], device=out.device))
        outputs = torch.cat(levels, dim=2).permute(0, 2, 1)
        grid = torch.cat(grids).to(outputs.dtype)
        stride = torch.cat(strides).to(outputs.dtype)
        centres = (outputs[..., :2] + grid) * stride
        sizes = torch.exp(outputs[..., 2:4]) * stride
        return torch.cat([centres, sizes, outputs[..., 4:]], dim=-1)


class YOLOX(nn.Module):
    """YOLOX (eval mode only): YOLOPAFPN backbone + YOLOXHead. Defaults: tiny, one class."""

    def __init__(self, num_classes: int = 1, depth: float = 0.33, width: float = 0.375) -> None:
        super().__init__()
        self.backbone = YOLOPAFPN(depth, width)
        self.head = YOLOXHead(num_classes, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"YOLOX needs sides that are multiples of 32, not {tuple(x.shape[-2:])}")
        return self.head(self.backbone(x))


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box in `a` (n, 4) with every box in `b` (m, 4), both x1, y1, x2, y2 (as torchvision)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first.

    As torchvision.ops.nms: a box is dropped when its IoU with a kept, better-scoring box is above
    `iou_threshold`. Ties in score keep their input order.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    overlaps = (box_iou(boxes[order], boxes[order]) > iou_threshold).cpu()
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlaps[i]
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)]


def postprocess(outputs: torch.Tensor, confidence: float, nms_iou: float = 0.45) -> list[torch.Tensor]:
    """Per image, a (k, 6) tensor of kept boxes: x1, y1, x2, y2 (input pixels), score, class; best first.

    score = objectness x the best class's score, kept when `>= confidence`, then NMS within each class.
    """
    results = []
    for prediction in outputs:
        class_score, class_index = prediction[:, 5:].max(dim=1)
        score = prediction[:, 4] * class_score
        chosen = torch.nonzero(score >= confidence).flatten()
        if len(chosen) > MAX_CANDIDATES:
            chosen = chosen[torch.topk(score[chosen], MAX_CANDIDATES).indices]
        centre, size = prediction[chosen, :2], prediction[chosen, 2:4]
        boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)
        labels = class_index[chosen].to(boxes.dtype)
        # Per-class NMS in one pass: classes are moved apart so that boxes of two classes never overlap.
        offset = labels[:, None] * (boxes.max() + 1 if len(boxes) else 0)
        kept = nms(boxes + offset, score[chosen], nms_iou)
        results.append(torch.cat([boxes[kept], score[chosen][kept, None], labels[kept, None]], dim=1))
    return results
