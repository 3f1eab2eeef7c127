"""A field season's batch: 1,000 photos from ten cameras, one in twenty broken, through `python -m classifier`.

Every good photo must come out labelled and every broken one listed with its reason, in input order;
a run stopped with a real Ctrl-C (SIGINT) must leave a valid CSV of exactly the rows that finished.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from classifier import cli
from classifier.schema.rows import CSV_COLUMNS
from conftest import TINY_CLASSES, make_tiny_image, png_declaring

ROOT = Path(__file__).resolve().parents[1]
PHOTOS, CAMERAS, BROKEN_EVERY = 1000, 10, 20
TRUNCATED = "the file is truncated (an incomplete download or copy); copy it again."
NOT_AN_IMAGE = "not an image this app reads; use a JPEG, PNG, WebP, GIF, BMP or TIFF photo."
BROKEN = {  # kind -> (file contents from a good JPEG's bytes, the reason its row must give)
    "truncated": (lambda good: good[: len(good) // 2], TRUNCATED),
    "text": (lambda good: b"battery low, card full", NOT_AN_IMAGE),
    "empty": (lambda good: b"", "the file is empty (0 bytes); copy it again from its source."),
    "bomb": (
        lambda good: png_declaring(50_000, 50_000),
        "the image declares far more pixels than the 64,000,000-pixel limit (a decompression bomb, "
        "or a damaged header); downscale the photo first.",
    ),
    "noise": (lambda good: bytes(range(256)) * 4, NOT_AN_IMAGE),
}

pytestmark = pytest.mark.slow


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == list(CSV_COLUMNS)
        return list(reader)


@pytest.fixture(scope="module")
def season(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Ten camera folders of 100 photos; every 20th is broken. Returns the root and path -> expectation:
    the true colour of a good photo, or the one-line reason a broken one must be given."""
    root = tmp_path_factory.mktemp("season")
    expected = {}
    kinds = list(BROKEN)
    for index in range(PHOTOS):
        folder = root / f"camera{index // (PHOTOS // CAMERAS):02d}"
        folder.mkdir(exist_ok=True)
        label = TINY_CLASSES[index % len(TINY_CLASSES)]
        path = folder / f"IMG_{index:04d}.jpg"
        make_tiny_image(label, seed=index).save(path, quality=90)
        expected[str(path)] = label
        if index % BROKEN_EVERY == BROKEN_EVERY - 1:
            make_broken, reason = BROKEN[kinds[(index // BROKEN_EVERY) % len(kinds)]]
            path.write_bytes(make_broken(path.read_bytes()))
            expected[str(path)] = f"{path.name}: {reason}"
    return root, expected


@pytest.mark.timeout(300)
def test_a_thousand_photos_with_fifty_broken_all_come_out_labelled_or_explained(
    capsys: pytest.CaptureFixture, tiny_bundle: Path, season: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root, expected = season
    out = tmp_path / "labels.csv"
    started = time.perf_counter()
    code = cli.main(["predict", "--model", str(tiny_bundle), "--out", str(out), str(root)])
    seconds = time.perf_counter() - started
    stderr = capsys.readouterr().err

    rows = read_csv(out)
    assert code == 0 and [row["path"] for row in rows] == list(expected)  # every photo, in folder order
    good = [row for row in rows if expected[row["path"]] in TINY_CLASSES]
    broken = [row for row in rows if expected[row["path"]] not in TINY_CLASSES]
    assert len(good) == 950 and len(broken) == 50
    assert all(row["status"] in ("ok", "uncertain") and row["label"] in TINY_CLASSES for row in good)
    assert all(row["error"] == "" and row["sequence_id"] for row in good)
    # Rows are the photos they name: the tiny model gets most colours right (a shuffled table would not).
    assert sum(row["label"] == expected[row["path"]] for row in good) / len(good) > 0.7
    assert {row["path"]: row["error"] for row in broken} == {
        path: reason for path, reason in expected.items() if reason not in TINY_CLASSES
    }
    assert all(row["status"] == "error" and row["label"] == "" for row in broken)
    assert "1000 photos: " in stderr and ", 50 error; written to " in stderr
    print(f"\n1,000 photos (50 broken) labelled in {seconds:.1f} s ({PHOTOS / seconds:.0f} photos/s)")


@pytest.mark.timeout(300)
def test_ctrl_c_during_a_run_leaves_a_valid_csv_of_exactly_what_finished(
    tiny_bundle: Path, season: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root, expected = season
    out = tmp_path / "labels.csv"
    # One thread, one photo per batch: slow enough that the run is surely still going at the Ctrl-C.
    command = [sys.executable, "-m", "classifier", "predict", "--model", str(tiny_bundle), "--out", str(out)]
    command += ["--workers", "1", "--batch-size", "1", str(root)]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ,
        # As in a terminal: a shell's background job (`make test &`) ignores SIGINT, and its children
        # would inherit that and never see the Ctrl-C this test sends.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while rows_written(out) < 100 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)  # what Ctrl-C in a terminal sends
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()

    rows = read_csv(out)
    assert process.returncode == 130, stderr
    assert f"Interrupted: {len(rows)} of {PHOTOS} photos" in stderr
    assert 100 <= len(rows) < PHOTOS
    assert [row["path"] for row in rows] == list(expected)[: len(rows)]  # no gap, no duplicate, no half row
    assert all(bool(row["sequence_id"]) == (row["status"] != "error") for row in rows)  # held rows too
    assert all(row["error"] == expected[row["path"]] for row in rows if row["status"] == "error")


def rows_written(path: Path) -> int:
    try:
        return max(0, path.read_text(encoding="utf-8").count("\n") - 1)
    except (FileNotFoundError, UnicodeDecodeError):
        return 0
