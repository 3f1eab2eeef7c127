"""The network every bundle holds: a backbone, fastai's head, and the backbone's input normalisation.

Normalisation lives inside the network so a bundle is self-contained: it takes RGB tensors scaled to
[0, 1] at the bundle's image size, whatever the backbone expects. Prediction needs no fastai pipeline,
and the exported learner holds nothing from `train/` (everything here is importable from `classifier`).
"""

from __future__ import annotations

from collections.abc import Sequence

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


class ImageNetPrior(nn.Module):
    """What the backbone's own ImageNet classifier says about each class, as a score added to the head's.

    Each class names the ImageNet classes that show it (zebra -> "zebra"; rodents -> hamster, marmot,
    ...); its score is the log-sum-exp of their ImageNet logits, times a learned scale. With three photos
    a class, this knowledge from 1.2 million ImageNet photos carries to other cameras and places better
    than what a linear head learns alone. Classes that name none get the mean score of those that do, so
    the prior favours no class it knows nothing about.
    """

    def __init__(self, classifier: nn.Linear, groups: Sequence[Sequence[int]]) -> None:
        super().__init__()
        if not any(groups):
            raise ValueError("an ImageNet prior needs at least one class with ImageNet classes")
        width = max(len(g) for g in groups) or 1
        index = torch.zeros(len(groups), width, dtype=torch.long)
        member = torch.zeros(len(groups), width, dtype=torch.bool)
        for row, group in enumerate(groups):
            index[row, : len(group)] = torch.tensor(list(group), dtype=torch.long)
            member[row, : len(group)] = True
        self.register_buffer("weight", classifier.weight.detach().clone())
        self.register_buffer("bias", classifier.bias.detach().clone())
        self.register_buffer("index", index)
        self.register_buffer("member", member)
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        logits = pooled @ self.weight.T + self.bias  # (N, 1000)
        grouped = logits[:, self.index].masked_fill(~self.member, float("-inf"))  # (N, C, width)
        score = torch.logsumexp(grouped, dim=-1)
        mapped = self.member.any(dim=1)
        neutral = score[:, mapped].mean(dim=1, keepdim=True)
        return self.scale * torch.where(mapped, score, neutral)


class LinearHead(nn.Module):
    """Average-pooled features -> one linear layer (+ an optional ImageNet prior): the head for few-shot
    data, where fastai's two-layer head has more weights than there are photos to fit them."""

    def __init__(
        self, n_features: int, n_classes: int, dropout: float = 0.0, prior: ImageNetPrior | None = None
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(n_features, n_classes)
        self.prior = prior

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.from_pooled(maps.mean(dim=(2, 3)))

    def from_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        out = self.linear(self.dropout(pooled))
        return out if self.prior is None else out + self.prior(pooled)


HEADS = ("mlp", "linear")


def build_network(
    backbone: str,
    n_classes: int,
    pretrained: bool = True,
    dropout: float = 0.5,
    head: str = "mlp",
    imagenet_groups: Sequence[Sequence[int]] | None = None,
) -> WildlifeNet:
    """A fresh network with an untrained head for `n_classes`.

    `head`: "mlp" is fastai's (concat avg+max pooling, two layers); "linear" is `LinearHead`, which
    `imagenet_groups` (one list of ImageNet class indices per class) gives an `ImageNetPrior`.
    """
    parts = create_backbone(backbone, pretrained=pretrained)
    features = feature_count(parts.body)
    if head == "mlp":
        if imagenet_groups:
            raise ValueError("an ImageNet prior needs the linear head")
        return WildlifeNet(parts.body, create_head(features, n_classes, ps=dropout), parts.mean, parts.std)
    if head != "linear":
        raise ValueError(f"unknown head {head!r}; use one of {', '.join(HEADS)}")
    prior = None
    if imagenet_groups:
        if parts.imagenet_classifier is None:
            raise ValueError(f"{backbone} has no ImageNet classifier here; drop the ImageNet prior")
        prior = ImageNetPrior(parts.imagenet_classifier, imagenet_groups)
    return WildlifeNet(parts.body, LinearHead(features, n_classes, dropout, prior), parts.mean, parts.std)


def body_head_splitter(model: WildlifeNet) -> list[list[nn.Parameter]]:
    """fastai parameter groups: the backbone trains with smaller rates than the new head."""
    return [list(model.body.parameters()), list(model.head.parameters())]
