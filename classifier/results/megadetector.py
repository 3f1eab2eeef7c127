"""MegaDetector batch output, format 1.6, of `Row`s: `megadetector_results` makes it, `write_megadetector`
writes it.

    results = megadetector_results(records)                       # MegaDetector batch output 1.6

Whole-frame answers (no detector box) in a MegaDetector file: the format's `detections` are a detector's
boxes, and a box around the whole image would claim a detection nobody made. Such a photo is written with
an empty `detections` list (what the detector format can say: no box) and its frame-level answer as an
image-level `classifications` list ([[category id, confidence], ...], best first, the same shape as a
detection's). The validator and the spec allow the extra field; tools that only read boxes (Timelapse)
see such a photo as empty, so `megadetector_results` warns how many photos were written that way.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import IO, Any

from classifier.results.taxa import Taxon
from classifier.schema.predictions_file import MD_CATEGORIES
from classifier.schema.rows import ERROR, RANKS, TYPE_OF_LABEL, Detection, Row

CLASSIFIER_NAME = "wildlife-classifier"

MD_FORMAT_VERSION = "1.6"
MD_DETECTION_CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}


# ------------------------------------------------------------------------------------------- MegaDetector


def megadetector_results(
    records: Sequence[Row],
    *,
    classifier: str | None = None,
    detector: str | None = None,
    completed: datetime | None = None,
    taxa: dict[str, Taxon] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """The MegaDetector batch output (format 1.6) for `records`, as a dict ready for `json.dump`.

    Error rows become `failure`s (with `detections: null`); a detector's empty list stays an empty
    `detections` (a blank photo); a whole-frame answer is an empty `detections` with an image-level
    `classifications` list (see the module's docstring). A human-reviewed row's label, at confidence 1.0,
    is the only classification of its frame, or of its animal boxes when they all had one label (a
    reviewer names the frame; with two species in it, each box keeps its own ranking).
    """
    warnings = warnings if warnings is not None else []
    categories: dict[str, str] = {}

    def category(label: str) -> str:
        if label not in categories:
            categories[label] = str(len(categories) + 1)
        return categories[label]

    def classifications(top_k: Sequence[tuple[str, float]]) -> list[list[Any]]:
        ranked = sorted(((label, p) for label, p in top_k if label), key=lambda item: -item[1])
        return [[category(label), round(float(p), 4)] for label, p in ranked]

    images = []
    whole_frame = 0
    for record in records:
        image: dict[str, Any] = {"file": record.path.replace("\\", "/")}
        if record.status == ERROR:
            image["failure"] = record.error or "could not be read"
            image["detections"] = None
            images.append(image)
            continue
        detections = []
        boxes = record.boxes
        for box in boxes:
            det: dict[str, Any] = {
                "category": _md_category(box),
                "conf": round(float(box.detector_conf), 4),
                "bbox": [round(v, 6) for v in _clamped(box.bbox)],  # 4 places would zero a tiny box
            }
            reviewed = _reviewed_label(record, box)
            if reviewed:
                det["classifications"] = classifications([(reviewed, 1.0)])
            elif box.top_k or box.label:
                det["classifications"] = classifications(box.top_k or [(box.label, box.confidence or 0.0)])
            if not det.get("classifications"):
                det.pop("classifications", None)
            detections.append(det)
        image["detections"] = detections
        if record.whole_frame:
            frame = _frame_answer(record)
            answer = [(record.label, 1.0)] if record.reviewed and record.label else frame
            if answer:
                image["classifications"] = classifications(answer)
                whole_frame += record.kind() != "blank"
        images.append(image)
    if whole_frame:
        warnings.append(
            f"{whole_frame} photos have a whole-frame answer and no detector box: written with empty "
            "'detections' and an image-level 'classifications' list, which tools that read only boxes "
            "(Timelapse) show as empty photos."
        )
    any_boxes = any(r.boxes for r in records)
    done = (completed or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    info: dict[str, Any] = {
        "format_version": MD_FORMAT_VERSION,
        "detector": detector or ("MegadetectorLite" if any_boxes else "none (whole-frame classifier)"),
    }
    if any_boxes:
        info["detection_completion_time"] = done
    info["classifier"] = classifier or _classifier_name(records)
    info["classification_completion_time"] = done
    results: dict[str, Any] = {
        "info": info,
        "detection_categories": dict(MD_DETECTION_CATEGORIES),
        "classification_categories": {cid: label for label, cid in categories.items()},
    }
    descriptions = (
        {cid: _md_description(taxa.get(label)) for label, cid in categories.items()} if taxa else {}
    )
    if any(descriptions.values()):
        results["classification_category_descriptions"] = descriptions
    results["images"] = images
    return results


def write_megadetector(results: dict[str, Any], stream: IO[str]) -> None:
    """`results` as JSON, one image a line (json's C encoder: 10,000 photos in about 0.1 s, not 1 s)."""
    head = json.dumps({k: v for k, v in results.items() if k != "images"}, indent=1, ensure_ascii=False)
    stream.write(head[:-2] + ',\n "images": [')
    for i, image in enumerate(results["images"]):
        stream.write(("\n  " if i == 0 else ",\n  ") + json.dumps(image, ensure_ascii=False))
    stream.write("\n ]\n}\n")


def _reviewed_label(record: Row, box: Detection) -> str:
    """The reviewer's label for an animal box ('' when the box keeps its own): see `megadetector_results`."""
    if not (record.reviewed and record.label) or _md_category(box) != "1":
        return ""
    labels = {d.label for d in record.boxes if _md_category(d) == "1"}
    return record.label if len(labels) <= 1 else ""


def _clamped(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    """A normalised box moved inside the image (rounding can push an edge a hair past it)."""
    x, y = min(max(bbox[0], 0.0), 1.0), min(max(bbox[1], 0.0), 1.0)
    return x, y, max(min(bbox[2], 1.0 - x), 1e-6), max(min(bbox[3], 1.0 - y), 1e-6)


def _md_category(detection: Detection) -> str:
    if detection.category:
        return MD_CATEGORIES[detection.category]
    kind = TYPE_OF_LABEL.get(detection.label.casefold(), "animal")
    return MD_CATEGORIES.get(kind, "1")


def _frame_answer(record: Row) -> list[tuple[str, float]]:
    """The whole-frame answer's ranking: the row's top-k, else its label (also when a pseudo-detection
    in the detections column carries it)."""
    if record.top_k:
        return list(record.top_k)
    pseudo = [d for d in record.detections or () if d.detector_conf is None]
    if pseudo and pseudo[0].top_k:
        return list(pseudo[0].top_k)
    if record.label:
        return [(record.label, record.confidence if record.confidence is not None else 0.0)]
    return []


def _md_description(taxon: Taxon | None) -> str:
    """A lower-case 'class;order;family;genus;species' string, the format's searchable taxonomy."""
    if taxon is None:
        return ""
    if taxon.taxonomy:
        names = [taxon.taxonomy.get(rank, "") for rank in reversed(RANKS)]
        return ";".join(n.casefold() for n in names)
    return (taxon.scientific_name or "").casefold()


def _classifier_name(records: Sequence[Row]) -> str:
    names = Counter(r.classified_by for r in records if r.classified_by and not r.reviewed)
    return names.most_common(1)[0][0] if names else CLASSIFIER_NAME
