"""What a label says a row observed (`observation_type`), and a frame's row split into one row per box.

A frame's verdict (classifier/models/verdict.py) gives a detected frame its label, count and boxes. The
observation type is `animal` for a box of any label but the ones that name a type themselves (`human`,
`vehicle`, `blank`); without a detector it is `unknown` (nothing looked for an animal).
"""

from __future__ import annotations

from dataclasses import replace

from classifier.schema.rows import ANIMAL, TYPE_OF_LABEL, UNKNOWN, Row

BLANK_LABEL = "blank"


def observation_type(label: str, detected: bool) -> str:
    """What the machine's answer observed: the type a label names (blank, human, vehicle); else `animal`
    for a detected box (its species unknown when the label is "unknown") and `unknown` for a whole-frame
    answer (nothing looked for an animal)."""
    kind = TYPE_OF_LABEL.get(label.casefold(), UNKNOWN)
    return kind if kind != UNKNOWN else (ANIMAL if detected else UNKNOWN)


def label_type(label: str) -> str:
    """The observation type a person's label means: blank, human, vehicle, unknown, else animal."""
    return TYPE_OF_LABEL.get(label.casefold(), ANIMAL)


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
