"""What a frame's boxes and their labels add up to: the frame's label, count and observation type.

A frame with no box over the detector's threshold is `blank`. Otherwise its label is the most confident
animal's (a person or a vehicle is the frame's label only when nothing else is in it), `count` is the
number of boxes with that label, and `detections` lists every box with its own answer. Without a
detector, a frame's answer is the whole frame's and `observation_type` is `unknown` (nothing looked for
an animal), except for the labels that name a type themselves (`human`, `vehicle`, `blank`).
"""

from __future__ import annotations

from dataclasses import replace

from classifier.results.rows import (
    ANIMAL,
    BLANK,
    HUMAN,
    OK,
    UNKNOWN,
    VEHICLE,
    Detection,
    Prediction,
    Row,
)

BLANK_LABEL = "blank"
# Labels that are an observation type of their own (the field's words and the datasets' ones).
TYPE_OF_LABEL = {"human": HUMAN, "person": HUMAN, "vehicle": VEHICLE, "blank": BLANK, "empty": BLANK}


def observation_type(label: str, detected: bool) -> str:
    """`animal` for a detected box of any other label; `unknown` for a whole-frame answer."""
    return TYPE_OF_LABEL.get(label.lower(), ANIMAL if detected else UNKNOWN)


def whole_frame(row: Row, prediction: Prediction) -> Row:
    """The row of a frame classified whole (no detector)."""
    return replace(
        row,
        label=prediction.label,
        confidence=prediction.confidence,
        status=prediction.status,
        top_k=prediction.top_k,
        probabilities=prediction.probabilities,
        rank=prediction.rank,
        geofenced=prediction.geofenced,
        observation_type=observation_type(prediction.label, detected=False),
    )


def detected_frame(
    row: Row,
    detections: list[Detection],
    answers: list[Prediction],
    best: float,
    sure_frame: Prediction | None = None,
) -> Row:
    """The row of a frame from its boxes (`detections`, best box first) and each box's answer.

    `best` is the detector's best score in the frame, kept or not: for a blank frame, how close it came.
    `sure_frame`: the whole frame's answer when the classifier is sure of it; a frame without a box then
    takes it (an animal the detector missed: no box, no count) instead of being blank.
    """
    boxes = tuple(
        replace(d, label=a.label, confidence=a.confidence, top_k=a.top_k, rank=a.rank, status=a.status)
        for d, a in zip(detections, answers, strict=True)
    )
    if not boxes and sure_frame is not None:
        return replace(
            whole_frame(row, sure_frame),
            observation_type=observation_type(sure_frame.label, detected=True),
            detections=(),
            detector_best=best,
        )
    if not boxes:
        return replace(
            row,
            label=BLANK_LABEL,
            confidence=1.0 - best,
            status=OK,
            observation_type=BLANK,
            count=0,
            detections=(),
            detector_best=best,
        )
    chosen = max(range(len(boxes)), key=lambda i: (_is_animal(boxes[i].label), answers[i].confidence))
    answer = answers[chosen]
    return replace(
        row,
        label=answer.label,
        confidence=answer.confidence,
        status=answer.status,
        top_k=answer.top_k,
        probabilities=answer.probabilities,
        rank=answer.rank,
        geofenced=answer.geofenced,
        observation_type=observation_type(answer.label, detected=True),
        count=sum(box.label == answer.label for box in boxes),
        detections=boxes,
        detector_best=best,
    )


def per_detection(row: Row) -> list[Row]:
    """One row per box of a detected frame (`--per-detection`); other rows stay as they are."""
    if not row.detections:
        return [row]
    return [
        replace(
            row,
            label=box.label,
            confidence=box.confidence,
            status=box.status,
            top_k=box.top_k,
            rank=box.rank,
            observation_type=observation_type(box.label, detected=True),
            count=1,
            detections=(box,),
        )
        for box in row.detections
    ]


def _is_animal(label: str) -> bool:
    return observation_type(label, detected=True) == ANIMAL
