"""What a label says a row observed (`observation_type`), and a frame's row split into one row per box.

A frame's verdict (classifier/models/verdict.py) gives a detected frame its label, count and boxes. The
observation type is `animal` for a box of any label but the ones that name a type themselves (`human`,
`vehicle`, `blank`); without a detector it is `unknown` (nothing looked for an animal).
"""

from __future__ import annotations

from dataclasses import replace

from classifier.schema.rows import (
    ANIMAL,
    BLANK,
    HUMAN,
    UNKNOWN,
    VEHICLE,
    Row,
)

BLANK_LABEL = "blank"
# Labels that are an observation type of their own (the field's words and the datasets' ones).
TYPE_OF_LABEL = {"human": HUMAN, "person": HUMAN, "vehicle": VEHICLE, "blank": BLANK, "empty": BLANK}


def observation_type(label: str, detected: bool) -> str:
    """`animal` for a detected box of any other label; `unknown` for a whole-frame answer."""
    return TYPE_OF_LABEL.get(label.lower(), ANIMAL if detected else UNKNOWN)


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
