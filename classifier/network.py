"""The network every bundle holds: a backbone, fastai's head, and the backbone's input normalisation.

Normalisation lives inside the network so a bundle is self-contained: it takes RGB tensors scaled to
[0, 1] at the bundle's image size, whatever the backbone expects. Prediction needs no fastai pipeline,
and the exported learner holds nothing from `train/` (everything here is importable from `classifier`).
"""

from __future__ import annotations

import torch
from fastai.vision.learner import create_head
from torch import nn

from classifier.backbones import create_backbone, feature_count


class WildlifeNet(nn.Module):
    def __init__(self, body: nn.Module, head: nn.Module, mean: tuple, std: tuple) -> None:
        super().__init__()
        self.body = body
        self.head = head
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (N, C): what the unknown-species detector compares."""
        return self.body((images - self.mean) / self.std).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body((images - self.mean) / self.std))


def build_network(
    backbone: str, n_classes: int, pretrained: bool = True, dropout: float = 0.5
) -> WildlifeNet:
    """A fresh network with an untrained head for `n_classes`."""
    parts = create_backbone(backbone, pretrained=pretrained)
    head = create_head(feature_count(parts.body), n_classes, ps=dropout)  # concat avg+max pooling inside
    return WildlifeNet(parts.body, head, parts.mean, parts.std)


def body_head_splitter(model: WildlifeNet) -> list[list[nn.Parameter]]:
    """fastai parameter groups: the backbone trains with smaller rates than the new head."""
    return [list(model.body.parameters()), list(model.head.parameters())]
