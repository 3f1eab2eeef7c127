"""Sequences: a camera trap's burst is one sighting, whatever order the files come in."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from classifier.intake.inputs import expand_inputs
from classifier.models.bundles import read_bundle
from classifier.models.predict import Predictor
from classifier.models.runtimes import load_model
from classifier.results.review import Photos
from classifier.results.sequences import SequenceStream, assign_sequences, majority_label
from classifier.schema.rows import ERROR, OK, Row
from conftest import make_tiny_image
from review_rows import START, photo_bytes


def row(
    path: str,
    time: float | None,
    label: str = "zebra",
    group: str = "site1",
    camera: str = "",
    confidence: float = 0.9,
    status: str = OK,
) -> Row:
    return Row(
        path=path, label=label, confidence=confidence, status=status, group=group, camera=camera, time=time
    )


def ids(rows: list[Row]) -> list[str]:
    return [r.sequence_id for r in rows]


def test_photos_within_the_gap_chain_into_one_sequence():
    rows = [row("a", 0), row("b", 50), row("c", 100), row("d", 161), row("e", 400)]
    assign_sequences(rows, gap=60)
    assert ids(rows) == ["seq00001", "seq00001", "seq00001", "seq00002", "seq00003"]


def test_order_of_files_does_not_matter_only_time():
    rows = [row("c", 100), row("x", 5000), row("a", 0), row("b", 50)]
    assign_sequences(rows, gap=60)
    assert ids(rows) == ["seq00001", "seq00002", "seq00001", "seq00001"]


def test_folders_and_cameras_split_sequences_and_errors_get_none():
    rows = [
        row("a", 0, group="site1"),
        row("b", 1, group="site2"),
        row("c", 2, group="site1", camera="RECONYX HC600"),
        row("d", 3, group="site1", status=ERROR, label=""),
        row("e", None, group="site1"),
        row("f", None, group="site1"),
    ]
    assign_sequences(rows, gap=60)
    assert len(set(ids(rows[:3]))) == 3
    assert rows[3].sequence_id == ""
    assert rows[4].sequence_id != rows[5].sequence_id  # no time at all: each its own sighting


def test_majority_label_with_ties_broken_by_confidence():
    rows = [
        row("a", 0, "zebra", confidence=0.5),
        row("b", 1, "wildebeest", confidence=0.9),
        row("c", 2, "zebra", confidence=0.6),
        row("d", 3, "wildebeest", confidence=0.4),
    ]
    assert majority_label(rows) == "wildebeest"  # 2 votes each, 1.3 > 1.1
    assign_sequences(rows[:3], gap=10)
    assert {r.sequence_label for r in rows[:3]} == {"zebra"}
    assert majority_label([]) == ""


def test_stream_keeps_input_order_and_holds_only_open_folders():
    groups = ["A", "A", "B", "A", "C"]
    rows = [row(str(i), i * 10.0, group=g) for i, g in enumerate(groups)]
    stream = SequenceStream(groups, gap=15)
    out = stream.feed(iter(rows))
    assert next(out).path == "0"  # ...only once folder A has all its rows (index 3)
    assert [r.path for r in out] == ["1", "2", "3", "4"]
    # numbered as folders complete: B (done at index 2) before A (done at index 3)
    assert ids(rows) == ["seq00002", "seq00002", "seq00001", "seq00003", "seq00004"]


def test_stream_flush_after_an_interrupt_returns_what_was_predicted():
    groups = ["A"] * 5
    stream = SequenceStream(groups, gap=60)

    def interrupted():
        yield row("0", 0, group="A")
        yield row("1", 10, group="A")
        raise KeyboardInterrupt

    emitted = []
    with pytest.raises(KeyboardInterrupt):
        emitted.extend(stream.feed(interrupted()))
    assert emitted == []  # folder A never finished
    rest = stream.flush()
    assert [r.path for r in rest] == ["0", "1"] and ids(rest) == ["seq00001", "seq00001"]


def _trap_photo(path: Path, label: str, taken: str | None, seed: int, camera: str = "TrapCam") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = camera, "X1"
    if taken:
        exif.get_ifd(0x8769)[0x9003] = taken
    make_tiny_image(label, seed=seed).save(path, exif=exif)
    return path


def test_sequences_from_exif_times_written_by_the_test(tiny_bundle, tmp_path):
    site1, site2 = tmp_path / "site1", tmp_path / "site2"
    _trap_photo(site1 / "IMG_0001.JPG", "red", "2024:03:01 06:00:00", 1)
    _trap_photo(site1 / "IMG_0002.JPG", "red", "2024:03:01 06:00:02", 2)
    _trap_photo(site1 / "IMG_0003.JPG", "red", "2024:03:01 06:00:04", 3)
    _trap_photo(site1 / "IMG_0004.JPG", "blue", "2024:03:01 09:15:00", 4)
    _trap_photo(site1 / "IMG_0005.JPG", "blue", "2024:03:01 09:15:01", 5)
    _trap_photo(site2 / "IMG_0001.JPG", "green", "2024:03:01 06:00:01", 6)  # same time, other folder
    no_exif = site2 / "IMG_0002.JPG"
    make_tiny_image("green", seed=7).save(no_exif)
    taken = datetime(2024, 3, 1, 6, 0, 30).timestamp()
    os.utime(no_exif, (taken, taken))  # file time is the fallback; 29 s after a photo with EXIF time

    expansion = expand_inputs([tmp_path])
    predictor = Predictor(load_model(read_bundle(tiny_bundle)), batch_size=3)
    stream = SequenceStream([i.group for i in expansion.items], gap=60)
    rows = list(stream.feed(predictor.predict_many(expansion.items)))

    assert [Path(r.path).relative_to(tmp_path).as_posix() for r in rows] == [
        "site1/IMG_0001.JPG",
        "site1/IMG_0002.JPG",
        "site1/IMG_0003.JPG",
        "site1/IMG_0004.JPG",
        "site1/IMG_0005.JPG",
        "site2/IMG_0001.JPG",
        "site2/IMG_0002.JPG",
    ]
    assert ids(rows) == ["seq00001"] * 3 + ["seq00002"] * 2 + ["seq00003", "seq00004"]
    assert rows[0].datetime == datetime(2024, 3, 1, 6, 0) and rows[0].camera == "TrapCam X1"
    assert len({r.sequence_label for r in rows[:3]}) == 1 and rows[0].sequence_label in (
        "red",
        "green",
        "blue",
    )
    # the EXIF-less photo has a camera of "" and so is not chained to the TrapCam photo beside it
    assert rows[6].camera == "" and rows[6].time == pytest.approx(taken)


def test_undated_photos_uploaded_together_are_not_one_sequence(tiny_bundle):
    """An upload's file time is when the app saved it, so it is no capture time: each undated upload is a
    sequence of its own, while dated uploads still chain by their EXIF time."""
    dated = [(f"dated_{i}.jpg", photo_bytes("red", i, START + timedelta(seconds=10 * i))) for i in range(2)]
    undated = [(f"undated_{i}.jpg", photo_bytes("blue", 10 + i)) for i in range(3)]
    photos = Photos()
    items = photos.add(dated + undated).items
    rows = list(Predictor(load_model(read_bundle(tiny_bundle))).predict_many(items))
    assign_sequences(rows, gap=60)
    assert [Path(r.path).name for r in rows] == [name for name, _ in dated + undated]
    assert ids(rows) == ["seq00001"] * 2 + ["seq00002", "seq00003", "seq00004"]
    assert [r.time for r in rows[2:]] == [None] * 3
    photos.close()
