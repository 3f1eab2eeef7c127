"""A linear head as arrays, and its fit on pooled backbone features: the few-shot recipe (train/probe.py)
and a site's model fitted on a person's corrections (classifier/models/site.py) fit it the same way.

`LinearScores` is what `classifier.models.network.LinearHead` computes, without fastai (the app never
imports it): logits = features @ weight.T + bias + scale * prior, where the prior is the backbone's own
ImageNet classifier's log-sum-exp over the ImageNet classes that show each class (`prior_scores`).

`fit` fits the weights (and the prior's scale) by L-BFGS with label smoothing and an L2 penalty on
standardised features. Retraining (`anchored`), the fit starts from the head it is given and the penalty
pulls towards it: the corrections move the head as far as they show, and a class with few or no photos
in them keeps what the base learned.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn


def prior_scores(
    pooled: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, index: torch.Tensor, member: torch.Tensor
) -> torch.Tensor:
    """Each class's ImageNet score (N, C), before its scale: the log-sum-exp of the ImageNet logits of
    the classes that show it; a class that names none gets the mean score of those that do."""
    logits = pooled @ weight.T + bias  # (N, 1000)
    grouped = logits[:, index].masked_fill(~member, float("-inf"))  # (N, C, width)
    score = torch.logsumexp(grouped, dim=2)
    mapped = member.any(dim=1)
    # The mean over the mapped classes, without boolean indexing (its output size is data-dependent,
    # which ONNX and OpenVINO export cannot express; classifier/models/runtimes/).
    neutral = torch.where(mapped, score, 0.0).sum(dim=1, keepdim=True) / mapped.sum()
    return torch.where(mapped, score, neutral)


@dataclass(frozen=True)
class Prior:
    """The ImageNet prior's fixed part: the backbone's ImageNet classifier and each class's ImageNet classes."""

    weight: torch.Tensor  # (1000, F)
    bias: torch.Tensor  # (1000,)
    index: torch.Tensor  # (C, width) ImageNet class indices, padded
    member: torch.Tensor  # (C, width) which of `index` are real

    def scores(self, pooled: torch.Tensor) -> torch.Tensor:
        return prior_scores(pooled, self.weight, self.bias, self.index, self.member)


@dataclass(frozen=True)
class LinearScores:
    """A linear head: logits = features @ weight.T + bias (+ scale * the prior's scores)."""

    weight: torch.Tensor  # (C, F)
    bias: torch.Tensor  # (C,)
    scale: torch.Tensor  # () the prior's weight
    prior: Prior | None = None

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        out = features @ self.weight.T + self.bias
        return out if self.prior is None else out + self.scale * self.prior.scores(features)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.logits(torch.as_tensor(features, dtype=torch.float32)).softmax(1).double().numpy()

    def with_classes(self, old: Sequence[str], new: Sequence[str]) -> LinearScores:
        """This head for `new`: a class `old` has keeps its row (and ImageNet classes), a new class gets
        a zero row (neutral: the fit gives it one) and no ImageNet classes (the prior scores it neutrally)."""
        rows = [list(old).index(c) if c in old else -1 for c in new]
        keep = torch.tensor([max(r, 0) for r in rows])
        fresh = torch.tensor([r < 0 for r in rows])
        weight = self.weight[keep].masked_fill(fresh[:, None], 0.0)
        bias = self.bias[keep].masked_fill(fresh, 0.0)
        prior = self.prior
        if prior is not None:
            prior = replace(prior, index=prior.index[keep], member=prior.member[keep] & ~fresh[:, None])
        return LinearScores(weight, bias, self.scale, prior)

    def to_bytes(self) -> bytes:
        arrays = {"weight": self.weight, "bias": self.bias, "scale": self.scale}
        if self.prior is not None:
            arrays |= {f"prior_{k}": getattr(self.prior, k) for k in ("weight", "bias", "index", "member")}
        buffer = io.BytesIO()
        np.savez(buffer, **{k: v.detach().cpu().numpy() for k, v in arrays.items()})
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LinearScores:
        with np.load(io.BytesIO(data)) as saved:
            arrays = {k: torch.from_numpy(saved[k]) for k in saved.files}
        prior = None
        if "prior_weight" in arrays:
            prior = Prior(*(arrays[f"prior_{k}"] for k in ("weight", "bias", "index", "member")))
        return cls(arrays["weight"], arrays["bias"], arrays["scale"], prior)


def fit(
    head: LinearScores,
    features: torch.Tensor,
    labels: torch.Tensor,
    l2: float,
    smoothing: float,
    *,
    anchored: bool = False,
    weights: torch.Tensor | None = None,
    bias_l2: float = 0.0,
) -> LinearScores:
    """`head` fitted to `features` (N, F) and `labels` (N,) by L-BFGS; see the module docstring.

    The penalty acts on standardised features, so `l2` means the same for any backbone; the fitted
    weights are folded back to act on raw features, so the head needs no extra normalisation. Without
    `anchored` the fit starts from zeros and the penalty pulls towards zero; anchored it starts from
    `head`'s weights and pulls towards them. `weights`: how much each example counts (default 1).
    """
    features = features.float()
    mean, std = features.mean(0), features.std(0) + 1e-6
    prior = head.prior.scores(features).detach() if head.prior is not None else None
    n_classes = head.weight.shape[0]
    if not anchored:
        scaled = (features - mean) / std
        centre = torch.zeros(n_classes, features.shape[1])
        start_bias, start_scale = torch.zeros(n_classes), torch.ones(())
    else:
        # A feature that barely varies in the corrections (one camera, one light) would let a row move
        # far along it at almost no cost, changing the answers for every other photo: no feature counts
        # as spreading less than the median one. Measured on 185 real frames: 0.914 -> 0.901 on the
        # shared classes; on 12 near-uniform generated photos it kept the rows of the classes they do
        # not show (cosine to the base's from 0.08 to above 0.9).
        spread = std[std > 1e-5]
        std = torch.maximum(std, spread.median()) if len(spread) else std
        scaled = (features - mean) / std
        centre = head.weight.float() * std  # the anchor acts on raw features: the same logits here
        start_bias, start_scale = head.bias.float() + head.weight.float() @ mean, head.scale.float()
    weight = centre.clone().requires_grad_(True)
    bias = start_bias.clone().requires_grad_(True)
    scale = start_scale.clone().reshape(()).requires_grad_(True)
    counts = torch.ones(len(labels)) if weights is None else weights.float()
    optimiser = torch.optim.LBFGS([weight, bias, scale], max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        logits = scaled @ weight.T + bias + (scale * prior if prior is not None else 0.0)
        each = nn.functional.cross_entropy(logits, labels, label_smoothing=smoothing, reduction="none")
        loss = (each * counts).sum() / counts.sum() + l2 * (weight - centre).pow(2).sum()
        loss = loss + bias_l2 * (bias - start_bias).pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    with torch.no_grad():
        return LinearScores(
            (weight / std).detach(),
            (bias - (weight * (mean / std)).sum(1)).detach(),
            scale.detach() if head.prior is not None else head.scale,
            head.prior,
        )


def assign_folds(labels: list[str], folds: int, seed: int) -> np.ndarray:
    """Fold of each photo: every class spread over the folds as evenly as its photos allow, the count
    going on from one class to the next, so classes of one photo each fill the folds too (counted again
    from 0 for each class, they all fell in fold 0 and left the others empty: "nothing to evaluate").
    At least two folds, and no more than there are photos."""
    folds = max(2, min(folds, len(labels)))
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(labels), dtype=np.int64)
    start = 0
    for label in sorted(set(labels)):
        members = np.flatnonzero(np.array(labels) == label)
        fold[rng.permutation(members)] = (start + np.arange(len(members))) % folds
        start += len(members)
    return fold
