"""What prediction writes: one `Row` per photo, as CSV or JSON, and the words its `status` uses.

Kept apart from `classifier.predict` (and torch) so that what only reads or writes rows, such as the app's
pages, sequences and exports, loads without the network's libraries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

OK, UNCERTAIN, ERROR = "ok", "uncertain", "error"
CSV_COLUMNS = ("path", "label", "confidence", "status", "error", "top_k", "datetime", "camera", "sequence_id")
SEQUENCE_LABEL = "sequence_label"


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    status: str  # ok | uncertain (confidence below the threshold)
    top_k: tuple[tuple[str, float], ...]  # best first
    probabilities: tuple[float, ...] = field(repr=False, default=())  # every class, in the bundle's order


@dataclass
class Row:
    """One output row; the CSV columns are `CSV_COLUMNS` (+ `sequence_label` when asked for)."""

    path: str
    label: str = ""
    confidence: float | None = None
    status: str = ERROR
    error: str = ""
    top_k: tuple[tuple[str, float], ...] = ()
    datetime: datetime | None = None  # EXIF DateTimeOriginal (or DateTime) when the photo has one
    camera: str = ""
    sequence_id: str = ""
    sequence_label: str = ""
    # Not written out: what sequences.py groups by.
    group: str = field(default="", repr=False)
    time: float | None = field(default=None, repr=False)  # EXIF time (as if UTC), else the file's mtime
    probabilities: tuple[float, ...] = field(default=(), repr=False)  # every class: for evaluation

    def to_csv(self, sequence_label: bool = False) -> dict[str, str]:
        values = {
            "path": self.path,
            "label": self.label,
            "confidence": "" if self.confidence is None else f"{self.confidence:.4f}",
            "status": self.status,
            "error": self.error,
            "top_k": ";".join(f"{label}:{p:.4f}" for label, p in self.top_k),
            "datetime": self.datetime.isoformat() if self.datetime else "",
            "camera": self.camera,
            "sequence_id": self.sequence_id,
        }
        if sequence_label:
            values[SEQUENCE_LABEL] = self.sequence_label
        return values

    def to_json(self, sequence_label: bool = False) -> dict[str, Any]:
        values: dict[str, Any] = {
            "path": self.path,
            "label": self.label or None,
            "confidence": None if self.confidence is None else round(self.confidence, 6),
            "status": self.status,
            "error": self.error or None,
            "top_k": [{"label": label, "confidence": round(p, 6)} for label, p in self.top_k],
            "datetime": self.datetime.isoformat() if self.datetime else None,
            "camera": self.camera or None,
            "sequence_id": self.sequence_id or None,
        }
        if sequence_label:
            values[SEQUENCE_LABEL] = self.sequence_label or None
        return values
