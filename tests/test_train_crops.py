"""Training on the detector's crops (`python -m train --crops detector`): each photo cut to its animal as
prediction will cut it, the bundle then finds animals first. A stand-in detector keeps it fast and
independent of ../shared; tests/test_detect.py checks the real one."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from classifier.models.bundles import detector_settings, read_bundle
from classifier.schema.rows import Detection
from conftest import tiny_config, write_tiny_dataset


class MiddleOfRedAndGreen:
    """A box in the middle of every photo that is not mostly blue (blue photos have 'no animal')."""

    input_size = 64

    def __init__(self, confidence: float) -> None:
        self.confidence = confidence

    def detect(self, images: list[Image.Image], confidence: float | None = None) -> list[list[Detection]]:
        found = []
        for image in images:
            red, green, blue = image.resize((1, 1)).getpixel((0, 0))
            found.append([] if blue > max(red, green) else [Detection((0.25, 0.25, 0.5, 0.5), 0.9)])
        return found


@pytest.mark.slow
def test_training_on_crops_cuts_each_photo_and_the_bundle_finds_animals_first(tmp_path: Path, monkeypatch):
    from train import crops, train

    monkeypatch.setattr(crops, "Detector", MiddleOfRedAndGreen)
    data = write_tiny_dataset(tmp_path / "data", per_class=6)
    config = tiny_config(
        data, tmp_path, crops="detector", crop_margin=0.1, frozen_epochs=1, unfrozen_epochs=1
    )
    result = train(config, quiet=True)
    facts = result.report["detector"]
    assert (facts["training_photos_boxed"], facts["training_photos_whole"]) == (12, 6)
    assert facts["crop_margin"] == 0.1 and facts["input_size"] == 64
    saved = sorted((tmp_path / "runs" / "tiny" / "crops").glob("*.jpg"))
    assert len(saved) == 12
    side = Image.open(saved[0]).size
    assert side[0] == side[1] and side[0] == round(96 * 0.5 * 1.2)  # square, the box plus 10% a side
    assert all((data / loss["file"]).is_file() for loss in result.report["top_losses"])  # the originals
    bundle = read_bundle(result.bundle)
    assert detector_settings(bundle) == {"confidence": config.crop_confidence, "input_size": 64}
    assert result.report["recipe"]["crops"] == "detector"


def test_crop_options_that_cannot_work_are_refused() -> None:
    from train.recipe import RecipeError, TrainConfig, check

    with pytest.raises(RecipeError, match="--crop-frames needs --crops detector and --linear-probe"):
        check(TrainConfig(data=Path("x"), crop_frames=True))
    with pytest.raises(RecipeError, match="--crop-margin"):
        check(TrainConfig(data=Path("x"), crops="detector", crop_margin=-1))
