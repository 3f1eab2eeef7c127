"""Rows and photos for the review tests: a camera-trap batch as `python -m classifier predict` writes it.

`batch_rows(n)` makes `n` rows of one camera in folder `trap/`, in sequences of four frames a minute
apart (`seq00001`, ...), with the tiny bundle's classes: in each sequence, frame 0 is sure (`ok`), frame 1
not sure, frame 2 a blank frame in the sequence of animals (`uncertain`, no box), frame 3 sure with a
detector box; row 5 is unreadable and row 7 holds a person's box. `photo_zip(rows)` holds generated
photos for them (with the EXIF date Camtrap DP needs) under the same paths, except the unreadable one.
"""

from __future__ import annotations

import io
import zipfile
from datetime import datetime, timedelta

from PIL import Image

from classifier.schema.predictions_file import CsvRows, JsonRows
from classifier.schema.rows import Detection, Row
from conftest import TINY_CLASSES, make_tiny_image

START = datetime(2024, 3, 1, 6, 0, 0)
PERSON_BOX = (0.5, 0.1, 0.3, 0.8)
ANIMAL_BOX = (0.1, 0.2, 0.3, 0.4)


def batch_rows(n: int = 20, folder: str = "trap") -> list[Row]:
    rows = []
    for i in range(n):
        label = TINY_CLASSES[(i // 4) % len(TINY_CLASSES)]
        other = TINY_CLASSES[(i // 4 + 1) % len(TINY_CLASSES)]
        row = Row(
            f"{folder}/IMG_{i:04d}.JPG",
            label,
            0.93,
            "ok",
            top_k=((label, 0.93), (other, 0.05)),
            datetime=START + timedelta(minutes=i // 4 * 10, seconds=i % 4 * 20),
            camera="",
            sequence_id=f"seq{i // 4 + 1:05d}",
            observation_type="animal",
            count=1,
            detections=(Detection(ANIMAL_BOX, 0.9, label, 0.93, ((label, 0.93),), "species", "ok"),),
            rank="species",
            classification_method="machine",
            classified_by="tiny",
        )
        frame = i % 4
        if frame == 1:
            row.confidence, row.status = 0.41, "uncertain"
            row.top_k = ((label, 0.41), (other, 0.38))
            row.detections = (Detection(ANIMAL_BOX, 0.6, label, 0.41, row.top_k, "species", "uncertain"),)
        elif frame == 2:
            row.label, row.confidence, row.status, row.top_k = "blank", 0.7, "uncertain", ()
            row.observation_type, row.count, row.detections, row.rank = "blank", 0, (), ""
        rows.append(row)
    if n > 5:
        rows[5] = Row(rows[5].path, error="IMG_0005.JPG: the file is truncated; copy it again.")
    if n > 7:
        person = Detection(PERSON_BOX, 0.8, "human", 0.9, (("human", 0.9),), "", "ok")
        rows[7].detections = (*rows[7].detections, person)
    return rows


def csv_text(rows: list[Row]) -> str:
    buffer = io.StringIO()
    writer = CsvRows(buffer, False)
    for row in rows:
        writer.write(row)
    writer.close()
    return buffer.getvalue()


def json_text(rows: list[Row]) -> str:
    buffer = io.StringIO()
    writer = JsonRows(buffer, False)
    for row in rows:
        writer.write(row)
    writer.close()
    return buffer.getvalue()


def photo_bytes(label: str, seed: int, taken: datetime | None = None, size: int = 96) -> bytes:
    """A generated JPEG of the tiny class `label`, with `taken` as its EXIF date."""
    image: Image.Image = make_tiny_image(label, seed=seed, size=size)
    exif = Image.Exif()
    if taken is not None:
        exif[0x0132] = taken.strftime("%Y:%m:%d %H:%M:%S")  # DateTime
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def photo_zip(rows: list[Row], strip: str = "") -> bytes:
    """A zip of the rows' photos under their paths (less the prefix `strip`); error rows have none."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, row in enumerate(rows):
            if row.status != "error":
                label = row.label if row.label in TINY_CLASSES else TINY_CLASSES[0]
                archive.writestr(row.path.removeprefix(strip), photo_bytes(label, i, row.datetime))
    return buffer.getvalue()
