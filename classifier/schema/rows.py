"""What prediction writes: one `Row` per photo (or per animal), as CSV or JSON, and the words it uses.

The columns (DESIGN.md): `path,label,confidence,status,error,top_k,datetime,camera,sequence_id`, then what
the detector adds, `observation_type,count,detections,rank,geofenced`, then who labelled the row,
`classification_method,classified_by,classified_at` (a review changes them to `human`, the reviewer and
the time). `status` is `ok`, `uncertain` (under the threshold, or a blank frame inside a sequence of
animals: a person should look) or `error`. `observation_type` says what the detector saw: `animal`,
`human`, `vehicle`, `blank` (no box), or `unknown` (no detector ran, so nobody looked for the animal).
`detections` is a JSON list, one object per box: `bbox` normalised [x, y, w, h] from the top left,
`detector_conf`, and the classifier's `label`, `confidence` and `top_k` for the box's crop.

Kept apart from `classifier.models.predict` (and torch) so that what only reads or writes rows, such as the app's
pages, sequences and exports, loads without the network's libraries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

OK, UNCERTAIN, ERROR = "ok", "uncertain", "error"
ANIMAL, HUMAN, VEHICLE, BLANK, UNKNOWN = "animal", "human", "vehicle", "blank", "unknown"
OBSERVATION_TYPES = (ANIMAL, HUMAN, VEHICLE, BLANK, UNKNOWN)
# Labels that name an observation type of their own (the field's words and the datasets'); any other label
# is an animal. How each reader takes "unknown" differs: see `observation_type` and `label_type`.
TYPE_OF_LABEL = {
    "blank": BLANK,
    "empty": BLANK,
    "human": HUMAN,
    "person": HUMAN,
    "vehicle": VEHICLE,
    "unknown": UNKNOWN,
}
# The ranks an answer can name, narrowest first: a species, or the group a rolled-up answer names.
RANKS = ("species", "genus", "family", "order", "class")
MACHINE, PERSON = "machine", "human"  # classification_method
# What gave a row its answer (`Decision.rule`): a sure class, a group of related classes, nothing sure
# enough, no animal found, the sure answer of its sequence (classifier/results/sequences.py).
SURE_CLASS, ROLLED_UP, NOT_SURE, NO_ANIMAL, FROM_SEQUENCE = (
    "class",
    "rollup",
    "not sure",
    "no animal",
    "sequence",
)
GIVEN, GPS = "given", "gps"  # where `Decision.country` came from
FIRST_COLUMNS = (
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
DETECTOR_COLUMNS = ("observation_type", "count", "detections", "rank", "geofenced", "decision")
REVIEW_COLUMNS = ("classification_method", "classified_by", "classified_at")
CSV_COLUMNS = FIRST_COLUMNS + DETECTOR_COLUMNS + REVIEW_COLUMNS
SEQUENCE_LABEL = "sequence_label"


@dataclass(frozen=True)
class Prediction:
    label: str  # a class of the model, a taxon above it ("cat (Felidae)"), or "unknown"
    confidence: float
    status: str  # ok | uncertain (confidence below the threshold)
    top_k: tuple[tuple[str, float], ...]  # best first
    probabilities: tuple[float, ...] = field(repr=False, default=())  # every class, in the bundle's order
    rank: str = ""  # species, or the rank a rolled-up answer names; "" without taxonomy in the notes
    geofenced: str = ""  # the model's best class, when the photo's place ruled it out


@dataclass(frozen=True)
class Detection:
    """One box: an animal (or person, or vehicle) in a frame, what the detector found and the classifier
    said of it. `detector_conf` is None for a whole-frame answer a file wrote in the detections column (no
    detector ran); `category` is what the detector called it (animal, person, vehicle), when a file says."""

    bbox: tuple[float, float, float, float]  # x, y, width, height: fractions of the photo, from the top left
    detector_conf: float | None
    label: str = ""
    confidence: float | None = None
    top_k: tuple[tuple[str, float], ...] = ()
    rank: str = ""  # as the row's `rank`: species, or the rank a rolled-up answer names
    status: str = ""  # ok | uncertain, as the row's
    category: str = ""

    def to_json(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "bbox": [round(v, 6) for v in self.bbox],
            "detector_conf": None if self.detector_conf is None else round(self.detector_conf, 6),
            "label": self.label,
            "confidence": None if self.confidence is None else round(self.confidence, 6),
            "top_k": [{"label": label, "confidence": round(p, 6)} for label, p in self.top_k],
            "rank": self.rank,
            "status": self.status,
        }
        if self.category:
            values["category"] = self.category
        return values


@dataclass(frozen=True)
class Decision:
    """How a row's answer was reached, recorded when it is made so that every page, explanation and export
    reads the same story instead of working it out again (the `decision` column, JSON).

    `rule`: what gave the answer (`SURE_CLASS`, `ROLLED_UP`, `NOT_SURE`, `NO_ANIMAL`, `FROM_SEQUENCE`);
    `lead`: the index in `detections` of the box whose evidence weighed most for the answer; `boxes`: how
    many boxes the answer rests on (the others were merged into them or too faint to count); `country` and
    `place`: the place used and where it came from (`GIVEN`, `GPS`); `threshold`: the cut-off the answer
    had to reach (its class's or its rank's); `removed`: the share of the model's score on classes that do
    not live there; `group`: for a "not sure" answer, the broader group holding most of the score
    (rank, label, summed score).
    """

    rule: str
    lead: int | None = None
    boxes: int = 0
    country: str = ""
    place: str = ""
    threshold: float | None = None
    removed: float = 0.0
    group: tuple[str, str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        values: dict[str, Any] = {"rule": self.rule}
        if self.lead is not None:
            values["lead"] = self.lead
        if self.boxes:
            values["boxes"] = self.boxes
        if self.country:
            values["country"], values["place"] = self.country, self.place
        if self.threshold is not None:
            values["threshold"] = round(self.threshold, 4)
        if self.removed:
            values["removed"] = round(self.removed, 4)
        if self.group:
            rank, label, score = self.group
            values["group"] = {"rank": rank, "label": label, "score": round(score, 4)}
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Decision:
        """The decision a file wrote; `ValueError` (with the key) for one that does not fit."""
        group = values.get("group")
        return cls(
            rule=str(values["rule"]),
            lead=None if values.get("lead") is None else int(values["lead"]),
            boxes=int(values.get("boxes", 0)),
            country=str(values.get("country", "")),
            place=str(values.get("place", "")),
            threshold=None if values.get("threshold") is None else float(values["threshold"]),
            removed=float(values.get("removed", 0.0)),
            group=(str(group["rank"]), str(group["label"]), float(group["score"])) if group else None,
        )


@dataclass
class Row:
    """One row of predictions: made by prediction, or read back from a predictions file
    (`classifier.schema.predictions_file`, where columns the file lacks stay empty). The CSV columns are
    `CSV_COLUMNS` (+ `sequence_label` when asked for)."""

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
    observation_type: str = ""
    count: int | None = None  # animals of the row's label in the frame (detector runs only)
    detections: tuple[Detection, ...] | None = None  # None: no detector ran
    rank: str = ""  # species, or the taxonomic rank the answer rolled up to
    geofenced: str = ""  # the best class, when the photo's place ruled it out
    decision: Decision | None = None  # how the answer was reached (None: error rows, old files)
    classification_method: str = ""  # machine | human (empty on error rows)
    classified_by: str = ""  # the model's name, or the reviewer's
    classified_at: datetime | None = None
    # Not written out: what sequences.py groups by, and the numbers evaluation and the app use.
    group: str = field(default="", repr=False)
    time: float | None = field(default=None, repr=False)  # EXIF time (as if UTC), else the file's mtime
    probabilities: tuple[float, ...] = field(default=(), repr=False)  # every class: for evaluation
    detector_best: float | None = field(default=None, repr=False)  # the best box score, kept or not
    location: tuple[float, float] | None = field(default=None, repr=False)  # the photo's EXIF GPS
    photo_sha256: str = field(default="", repr=False)  # of the file: what its kept embeddings are found by

    @property
    def boxes(self) -> tuple[Detection, ...]:
        """The detector's boxes (whole-frame answers a file wrote as detections left out)."""
        return tuple(d for d in self.detections or () if d.detector_conf is not None)

    @property
    def whole_frame(self) -> bool:
        """True when no detector looked at this photo: the answer is the classifier's, for the frame."""
        return self.detections is None or any(d.detector_conf is None for d in self.detections)

    @property
    def reviewed(self) -> bool:
        return self.classification_method == PERSON

    @property
    def rolled_up(self) -> bool:
        """The answer names a group of classes (a genus, a family, ...), not one species."""
        return self.rank not in ("", RANKS[0])

    def kind(self) -> str:
        """Observation type: the row's, else from the label and status (files written before the column).

        An error row is `unclassified`, unless a person labelled it (they looked at the file elsewhere).
        """
        if self.status == ERROR and not (self.reviewed and self.label):
            return "unclassified"
        if self.observation_type:
            return self.observation_type
        if self.label.casefold() in TYPE_OF_LABEL:
            return TYPE_OF_LABEL[self.label.casefold()]
        if not self.label:
            return "unclassified"
        return UNKNOWN if self.status == UNCERTAIN and not self.reviewed else ANIMAL

    def to_csv(self, sequence_label: bool = False) -> dict[str, str]:
        values = {
            "path": self.path,
            "label": self.label,
            "confidence": "" if self.confidence is None else f"{self.confidence:.4f}",
            "status": self.status,
            "error": self.error,
            "top_k": top_k_text(self.top_k),
            "datetime": self.datetime.isoformat() if self.datetime else "",
            "camera": self.camera,
            "sequence_id": self.sequence_id,
            "observation_type": self.observation_type,
            "count": "" if self.count is None else str(self.count),
            "detections": ""
            if self.detections is None
            else json.dumps([d.to_json() for d in self.detections], separators=(",", ":")),
            "rank": self.rank,
            "geofenced": self.geofenced,
            "decision": ""
            if self.decision is None
            else json.dumps(self.decision.to_json(), separators=(",", ":")),
            "classification_method": self.classification_method,
            "classified_by": self.classified_by,
            "classified_at": self.classified_at.isoformat() if self.classified_at else "",
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
            "observation_type": self.observation_type or None,
            "count": self.count,
            "detections": None if self.detections is None else [d.to_json() for d in self.detections],
            "rank": self.rank or None,
            "geofenced": self.geofenced or None,
            "decision": None if self.decision is None else self.decision.to_json(),
            "classification_method": self.classification_method or None,
            "classified_by": self.classified_by or None,
            "classified_at": self.classified_at.isoformat() if self.classified_at else None,
        }
        if sequence_label:
            values[SEQUENCE_LABEL] = self.sequence_label or None
        return values


def labels_of(rows: Iterable[Row]) -> set[str]:
    """Every label the rows give: each frame's and each of its boxes' (what the taxa of an export are for)."""
    rows = list(rows)
    return {r.label for r in rows} | {d.label for r in rows for d in r.detections or ()}


def pixel_box(size: tuple[int, int], bbox: Sequence[float]) -> tuple[int, int, int, int]:
    """A normalised [x, y, w, h] box as pixel (left, top, right, bottom), inside the image."""
    width, height = size
    x, y, w, h = (float(v) for v in bbox)
    left, top = round(min(max(x, 0.0), 1.0) * width), round(min(max(y, 0.0), 1.0) * height)
    right = round(min(max(x + w, 0.0), 1.0) * width)
    bottom = round(min(max(y + h, 0.0), 1.0) * height)
    return left, top, max(left, right), max(top, bottom)


def top_k_text(top_k: Sequence[tuple[str, float]]) -> str:
    """A top-k list as a CSV cell: `label:p;label:p`, best first."""
    return ";".join(f"{label}:{p:.4f}" for label, p in top_k)
