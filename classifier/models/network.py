"""The network every bundle holds: a backbone, fastai's head, and the backbone's input normalisation.

Normalisation lives inside the network so a bundle is self-contained: it takes RGB tensors scaled to
[0, 1] at the bundle's image size, whatever the backbone expects. Prediction needs no fastai pipeline,
and the exported learner holds nothing from `train/` (everything here is importable from `classifier`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from fastai.vision.learner import create_head
from torch import nn

from classifier.models.backbones import create_backbone, feature_count
from classifier.models.heads import LinearScores, Prior, prior_scores


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

    def scores_and_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the pooled features they came from, in one pass (as every compiled runtime gives)."""
        maps = self.body((images - self.mean) / self.std)
        return self.head(maps), maps.mean(dim=(2, 3))


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

    def groups(self) -> list[list[int]]:
        """The ImageNet classes of each class, in class order (empty: none)."""
        return [row[keep].tolist() for row, keep in zip(self.index, self.member, strict=True)]

    def imagenet_classifier(self) -> nn.Linear:
        """A copy of the backbone's ImageNet classifier this prior scores with."""
        layer = nn.Linear(self.weight.shape[1], self.weight.shape[0])
        with torch.no_grad():
            layer.weight.copy_(self.weight)
            layer.bias.copy_(self.bias)
        return layer

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.scale * prior_scores(pooled, self.weight, self.bias, self.index, self.member)


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

    def scores(self) -> LinearScores:
        """This head as arrays (a copy), as the app and a site's model compute it without fastai."""
        prior = self.prior
        return LinearScores(
            self.linear.weight.detach().clone().float(),
            self.linear.bias.detach().clone().float(),
            (prior.scale if prior is not None else torch.ones(())).detach().clone().float(),
            None
            if prior is None
            else Prior(prior.weight.clone(), prior.bias.clone(), prior.index.clone(), prior.member.clone()),
        )

    def set_scores(self, scores: LinearScores) -> None:
        """Take a fitted head's weights and prior scale (same classes, same ImageNet classes)."""
        with torch.no_grad():
            self.linear.weight.copy_(scores.weight)
            self.linear.bias.copy_(scores.bias)
            if self.prior is not None:
                self.prior.scale.copy_(scores.scale)


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


def with_classes(
    network: WildlifeNet,
    old: Sequence[str],
    new: Sequence[str],
    *,
    imagenet_groups: Sequence[Sequence[int]] | None = None,
    imagenet_classifier: nn.Linear | None = None,
) -> WildlifeNet:
    """A copy of `network` (whose head predicts `old`) that predicts `new`, for retraining a bundle.

    The backbone, its normalisation and the head's hidden layers are copied as they are. In the head's
    last linear layer, a class of `new` that `old` has keeps its row (weights and bias); a class `old`
    lacks gets a fresh row: zeros in a `LinearHead` (neutral; the probe fits it), the layer's usual
    random start in fastai's head; classes of `old` that `new` lacks are dropped. An ImageNet prior
    keeps its scale and, for the classes it keeps, their ImageNet classes; a new class gets
    `imagenet_groups`' entry when that names any (a class kept from `old` too), else none, which the
    prior scores neutrally (the mean of the named ones). `imagenet_classifier` gives a prior to a
    `LinearHead` that had none. `network` itself is left untouched.
    """
    if len(set(new)) != len(new):
        raise ValueError("the new classes have duplicate names")
    index = {name: row for row, name in enumerate(old)}
    copied = copy.deepcopy(network)
    head = copied.head
    parent, name, last = _last_linear(head)
    if last.out_features != len(old):
        raise ValueError(f"the head predicts {last.out_features} classes, not the {len(old)} named")
    setattr(parent, name, _carried_rows(last, index, new, zero_fresh=isinstance(head, LinearHead)))
    if isinstance(head, LinearHead):
        head.prior = _carried_prior(head.prior, index, new, imagenet_groups, imagenet_classifier)
    elif imagenet_groups and any(imagenet_groups):
        raise ValueError("an ImageNet prior needs the linear head")
    return copied


def _last_linear(head: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    found = None
    for parent in head.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                found = (parent, name, child)
    if found is None:
        raise ValueError("the head has no linear layer to carry classes over")
    return found


def _carried_rows(layer: nn.Linear, index: dict[str, int], new: Sequence[str], zero_fresh: bool) -> nn.Linear:
    fresh = nn.Linear(layer.in_features, len(new), bias=layer.bias is not None)
    fresh.to(device=layer.weight.device, dtype=layer.weight.dtype)
    with torch.no_grad():
        if zero_fresh:
            fresh.weight.zero_()
            if fresh.bias is not None:
                fresh.bias.zero_()
        for row, name in enumerate(new):
            if name in index:
                fresh.weight[row] = layer.weight[index[name]]
                if fresh.bias is not None:
                    fresh.bias[row] = layer.bias[index[name]]
    return fresh


def _carried_prior(
    prior: ImageNetPrior | None,
    index: dict[str, int],
    new: Sequence[str],
    named: Sequence[Sequence[int]] | None,
    classifier: nn.Linear | None,
) -> ImageNetPrior | None:
    old_groups = prior.groups() if prior is not None else []
    groups = []
    for row, name in enumerate(new):
        if named and named[row]:
            groups.append(list(named[row]))
        elif name in index and old_groups:
            groups.append(old_groups[index[name]])
        else:
            groups.append([])
    if not any(groups):
        return None  # no class left that ImageNet shows
    source = prior.imagenet_classifier() if prior is not None else classifier
    if source is None:
        raise ValueError("this network has no ImageNet classifier for a prior; drop the ImageNet prior")
    carried = ImageNetPrior(source, groups).to(source.weight.device)
    if prior is not None:
        with torch.no_grad():
            carried.scale.copy_(prior.scale)
    return carried


def body_head_splitter(model: WildlifeNet) -> list[list[nn.Parameter]]:
    """fastai parameter groups: the backbone trains with smaller rates than the new head."""
    return [list(model.body.parameters()), list(model.head.parameters())]
