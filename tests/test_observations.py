"""Detector first: a frame's boxes, their crops' labels, blank frames, counts, rows per animal, sequences.

A stand-in detector that reports where the test pasted each animal keeps these tests about the
pipeline, fast and free of ../shared; tests/test_detect.py checks the real detector's boxes.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier.models.bundles import read_bundle
from classifier.models.predict import Predictor
from classifier.models.runtimes import load_model
from classifier.results.sequences import assign_sequences
from classifier.schema.observations import per_detection
from classifier.schema.rows import BLANK, CSV_COLUMNS, HUMAN, OK, UNCERTAIN, UNKNOWN, Detection, Row
from conftest import make_tiny_image, png

FRAME = (480, 320)


class PastedAnimals:
    """Finds the animals the test pasted (the same boxes in every frame it is shown)."""

    input_size = 64

    def __init__(self, boxes: list[Detection], confidence: float = 0.25) -> None:
        self.boxes, self.confidence = boxes, confidence

    def detect(self, images, confidence=None):
        floor = self.confidence if confidence is None else confidence
        return [[b for b in self.boxes if b.detector_conf >= floor] for _ in images]


def frame_with(animals: list[tuple[str, tuple[int, int]]], size: tuple[int, int] = FRAME) -> Image.Image:
    """A grey frame with a tiny-bundle photo of each (label, top-left corner) pasted at 96 px."""
    canvas = Image.fromarray(np.full((size[1], size[0], 3), 128, dtype=np.uint8))
    for index, (label, corner) in enumerate(animals):
        canvas.paste(make_tiny_image(label, seed=100 + index), corner)
    return canvas


def box_at(corner: tuple[int, int], size: tuple[int, int] = FRAME, confidence: float = 0.9) -> Detection:
    return Detection((corner[0] / size[0], corner[1] / size[1], 96 / size[0], 96 / size[1]), confidence)


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return load_model(read_bundle(tiny_bundle))


def test_each_animal_is_classified_on_its_crop_and_the_frame_weighs_them_all(model) -> None:
    corners = [(20, 30), (300, 180), (200, 40)]
    detector = PastedAnimals([box_at(c, confidence=s) for c, s in zip(corners, (0.9, 0.8, 0.7), strict=True)])
    image = frame_with([("red", corners[0]), ("blue", corners[1]), ("red", corners[2])])
    row = Predictor(model, detector=detector, crop_margin=0.0).predict_photo(
        png(image), name="two-species.jpg"
    )
    assert [d.label for d in row.detections] == ["red", "blue", "red"]
    assert (row.label, row.count) == ("red", 2)  # two boxes of red add up against one of blue
    # the frame's score for red: every box's, weighted by how sure the detector was of the box
    red = [dict(d.top_k)["red"] * d.detector_conf for d in row.detections]
    assert row.confidence == pytest.approx(sum(red) / sum(d.detector_conf for d in row.detections))
    assert row.observation_type == "animal" and row.classification_method == "machine"
    assert [d.detector_conf for d in row.detections] == [0.9, 0.8, 0.7]
    assert row.decision.rule == "class" and row.decision.lead == 0 and row.decision.boxes == 3


def test_a_speck_the_detector_barely_believes_neither_leads_nor_counts(model) -> None:
    sure, speck = (20, 30), (400, 20)
    detector = PastedAnimals([box_at(sure, confidence=0.9), box_at(speck, confidence=0.12)], confidence=0.05)
    row = Predictor(model, detector=detector, crop_margin=0.0).predict_photo(
        png(frame_with([("red", sure), ("blue", speck)])), name="frame.png"
    )
    assert (row.label, row.count, len(row.detections)) == ("red", 1, 1)
    assert row.detections[0].detector_conf == 0.9 and row.decision.lead == 0
    # alone, the faint box is all there is: the frame is an animal, not blank
    alone = Predictor(model, detector=PastedAnimals([box_at(speck, confidence=0.12)], confidence=0.05))
    row = alone.predict_photo(png(frame_with([("blue", speck)])), name="frame.png")
    assert (row.observation_type, row.count, len(row.detections)) == ("animal", 1, 1)


def test_two_boxes_on_one_animal_count_once(model) -> None:
    body = Detection((20 / 480, 30 / 320, 0.4, 0.6), 0.9)  # a big animal, and a box on its head
    head = Detection((40 / 480, 40 / 320, 0.1, 0.15), 0.7)
    canvas = frame_with([])
    canvas.paste(make_tiny_image("red", seed=7, size=192), (20, 30))
    row = Predictor(model, detector=PastedAnimals([body, head]), crop_margin=0.0).predict_photo(
        png(canvas), name="frame.png"
    )
    assert (row.label, row.count, len(row.detections)) == ("red", 1, 1)
    assert row.detections[0].bbox == body.bbox


def test_a_frame_without_a_box_over_the_threshold_is_blank_and_says_how_close_it_came(model) -> None:
    detector = PastedAnimals([box_at((20, 30), confidence=0.1)])
    unsure = Predictor(model, detector=detector, crop_margin=0.0, threshold=1.0)  # no answer is sure
    row = unsure.predict_photo(png(frame_with([("red", (20, 30))])), name="frame.png")
    assert (row.label, row.observation_type, row.status, row.count) == ("blank", BLANK, OK, 0)
    assert row.detections == () and row.detector_best == pytest.approx(0.1)
    assert row.confidence == pytest.approx(0.9)


def test_an_animal_the_detector_missed_but_the_classifier_is_sure_of_is_not_blank(model) -> None:
    detector = PastedAnimals([box_at((20, 30), confidence=0.1)])
    sure = Predictor(model, detector=detector, crop_margin=0.0, threshold=0.0)
    row = sure.predict_photo(png(make_tiny_image("red", seed=4).resize(FRAME)), name="frame.png")
    assert (row.label, row.observation_type, row.detections, row.count) == ("red", "animal", (), None)


def test_whole_frame_rows_say_nobody_looked_for_an_animal(model) -> None:
    row = Predictor(model).predict_photo(png(make_tiny_image("green")), name="frame.png")
    assert row.label == "green" and row.observation_type == UNKNOWN and row.detections is None
    detector = PastedAnimals([])
    anyway = Predictor(model, detector=detector, crop_margin=0.0).predict_photo(
        png(make_tiny_image("green")), name="frame.png", detect=False
    )
    assert anyway.label == "green" and anyway.detections is None


def test_csv_and_json_rows_carry_the_boxes_and_one_row_per_animal_on_request(model, tmp_path) -> None:
    corners = [(20, 30), (300, 180)]
    detector = PastedAnimals([box_at(c) for c in corners])
    path = tmp_path / "pair.jpg"
    frame_with([("red", corners[0]), ("blue", corners[1])]).save(path, quality=95)
    [row] = Predictor(model, detector=detector, workers=0, crop_margin=0.0).predict_many([path])
    written = row.to_csv()
    assert list(written) == list(CSV_COLUMNS)
    boxes = json.loads(written["detections"])
    assert [b["label"] for b in boxes] == ["red", "blue"]
    assert boxes[0]["bbox"] == pytest.approx([20 / 480, 30 / 320, 0.2, 0.3], abs=1e-6)
    assert {"bbox", "detector_conf", "label", "confidence", "top_k"} <= set(boxes[0])
    assert row.to_json()["detections"] == boxes and written["count"] == "1"
    rows = per_detection(row)
    assert [(r.label, r.count, len(r.detections)) for r in rows] == [("red", 1, 1), ("blue", 1, 1)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(r.to_csv() for r in rows)
    assert [r["label"] for r in csv.DictReader(io.StringIO(buffer.getvalue()))] == ["red", "blue"]


def test_a_person_is_the_frames_label_only_when_no_animal_is_there(model) -> None:
    corners = [(20, 30), (300, 180)]
    predictor = Predictor(model, detector=PastedAnimals([box_at(c) for c in corners]), crop_margin=0.0)
    # the tiny bundle's red crops, called people here
    predictor.classes = ("blue", "green", "human")
    predictor.rules = replace(predictor.rules, classes=predictor.classes)
    alone = predictor.predict_photo(
        png(frame_with([("red", corners[0]), ("red", corners[1])])), name="frame.png"
    )
    assert (alone.label, alone.observation_type, alone.count) == ("human", HUMAN, 2)
    together = predictor.predict_photo(
        png(frame_with([("red", corners[0]), ("blue", corners[1])])), name="frame.png"
    )
    assert (together.label, together.observation_type, together.count) == ("blue", "animal", 1)


def sequence_rows(labels: list[tuple[str, str, float]], guesses: tuple[str, ...] = ()) -> list[Row]:
    """Rows of one burst (one folder, one camera, a second apart): (label, status, confidence) each, the
    label the first of each frame's guesses, then `guesses`."""
    rows = []
    for second, (label, status, confidence) in enumerate(labels):
        kind = BLANK if label == "blank" else "animal"
        rows.append(
            Row(
                path=f"burst/{second}.jpg",
                label=label,
                status=status,
                confidence=confidence,
                top_k=tuple((g, 0.1) for g in dict.fromkeys((label, *guesses))),
                observation_type=kind,
                detections=(),
                group="burst",
                time=float(second),
            )
        )
    return rows


def test_a_burst_shares_its_sure_animal_and_flags_a_blank_frame_for_review() -> None:
    rows = sequence_rows(
        [("zebra", OK, 0.9), ("buffalo", UNCERTAIN, 0.4), ("blank", OK, 0.95), ("zebra", UNCERTAIN, 0.3)],
        guesses=("zebra",),  # the tail in the second frame looked like a buffalo, then a zebra
    )
    assign_sequences(rows)
    assert {r.sequence_id for r in rows} == {"seq00001"}
    assert [r.label for r in rows] == ["zebra", "zebra", "blank", "zebra"]
    assert [r.status for r in rows] == [OK, OK, UNCERTAIN, OK]
    assert rows[1].confidence == 0.9 and rows[1].decision.rule == "sequence"  # the sure frame's


def test_a_frame_that_never_guessed_the_bursts_animal_stays_for_a_person() -> None:
    """Stills stamped with one time are one "burst" to the clock, not one animal: a chimpanzee the model
    took for a vervet is not relabelled with the hogs of the next still."""
    rows = sequence_rows(
        [("even-toed hoofed mammal (Artiodactyla)", OK, 0.69), ("vervet-monkey", UNCERTAIN, 0.2)]
    )
    rows[0].top_k, rows[0].rank = (("cattle", 0.16), ("warthog", 0.07)), "order"
    rows[1].top_k = (("vervet-monkey", 0.22), ("baboon", 0.19), ("other-bird", 0.07))
    buffalo = sequence_rows([("buffalo", UNCERTAIN, 0.48)])[0]
    buffalo.path, buffalo.top_k = "burst/2.jpg", (("buffalo", 0.48), ("cattle", 0.1))
    rows.append(buffalo)
    assign_sequences(rows)
    assert [r.status for r in rows] == [OK, UNCERTAIN, OK]
    assert (rows[2].label, rows[2].rank) == ("even-toed hoofed mammal (Artiodactyla)", "order")


def test_a_frame_that_clearly_disagrees_keeps_its_own_answer_and_blank_bursts_stay_blank() -> None:
    rows = sequence_rows([("zebra", OK, 0.9), ("lion-male", OK, 0.8), ("zebra", OK, 0.7)])
    assign_sequences(rows)
    assert [r.label for r in rows] == ["zebra", "lion-male", "zebra"]
    empty = sequence_rows([("blank", OK, 0.9), ("blank", OK, 0.97)])
    assign_sequences(empty)
    assert [r.status for r in empty] == [OK, OK] and empty[0].sequence_label == ""


def test_whole_frame_rows_are_not_smoothed() -> None:
    rows = sequence_rows([("zebra", OK, 0.9), ("buffalo", UNCERTAIN, 0.4)])
    for row in rows:
        row.detections, row.observation_type = None, UNKNOWN
    assign_sequences(rows)
    assert [(r.label, r.status) for r in rows] == [("zebra", OK), ("buffalo", UNCERTAIN)]


def test_rows_written_before_the_detector_columns_are_still_a_prefix(tmp_path: Path) -> None:
    assert CSV_COLUMNS[:9] == (
        "path",
        "label",
        "confidence",
        "status",
        "error",
        "top_k",
        "datetime",
        "camera",
        "sequence_id",
    )
