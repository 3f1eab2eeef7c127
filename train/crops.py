"""Cut each training photo to its animal, as prediction with a detector will: `python -m train --crops detector`.

Prediction classifies the detector's crop of each animal, so a model that learned from whole frames
sees something else at work than in training (distant animals a few dozen pixels wide; night frames
mostly background). Here every photo is decoded as prediction decodes it, the detector finds its best
box, and the crop prediction would cut (square, `crop_margin` of context) is saved under
RUNS_DIR/NAME/crops/ and trained on instead. A photo with no box over the threshold stays whole (bats,
insects, animals too close for a box); the report counts them, since prediction calls such a frame
blank. The frame's `file` stays the original photo, so the report's biggest mistakes still point at the
training data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

from classifier.intake.images import load_photo
from classifier.models.detect import Detector, crop_box
from train.data import TrainingData
from train.recipe import TrainConfig


@dataclass(frozen=True)
class Cropped:
    data: TrainingData  # paths point at the crops (file: still the original photo); detector: its settings
    frames: TrainingData  # the same photos whole, for --crop-frames


def crop_photos(data: TrainingData, config: TrainConfig, folder: Path) -> Cropped:
    """Every photo of `data` replaced by its best box's crop (see the module docstring)."""
    detector = Detector(confidence=config.crop_confidence)
    decode_size = max(detector.input_size, config.sizes[-1])  # as classifier.models.predict decodes frames
    folder.mkdir(parents=True, exist_ok=True)
    paths, boxed = [], 0
    for path in data.frame["path"]:
        photo = load_photo(path, target_size=decode_size)
        boxes = detector.detect([photo.image])[0]
        if not boxes:
            paths.append(path)
            continue
        crop = crop_box(photo.image, boxes[0].bbox, config.crop_margin)
        target = folder / f"{hashlib.sha1(str(path).encode()).hexdigest()[:16]}.jpg"
        crop.save(target, quality=95)
        paths.append(str(target))
        boxed += 1
    frame = data.frame.assign(path=paths)
    facts = {
        "name": "MegadetectorLite (YOLOX-tiny, weights from zamba 2.7.2)",
        "confidence": config.crop_confidence,
        "input_size": detector.input_size,
        "crop_margin": config.crop_margin,
        "training_photos_boxed": boxed,
        "training_photos_whole": len(paths) - boxed,
    }
    return Cropped(replace(data, frame=frame, detector=facts), data)
