"""Object-store inputs (classifier/intake/objectstore.py) through pyarrow's real filesystems: `file://`
URIs to generated photos, since no object store is reachable from the tests."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from classifier import cli
from classifier.intake.decoding import decode_item
from classifier.intake.inputs import expand_inputs, read_item
from classifier.intake.items import INVALID, OBJECT
from classifier.intake.objectstore import ZIPS_SKIPPED
from conftest import TINY_CLASSES, make_tiny_image

pytest.importorskip("pyarrow")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def photos(tmp_path) -> Path:
    """Generated photos at the top and in nested folders, and files a folder listing leaves out."""
    folder = tmp_path / "photos"
    for index, label in enumerate(TINY_CLASSES * 2):
        path = folder / (label if index % 2 else f"{label}/deeper") / f"{index:02d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        make_tiny_image(label, seed=index, size=48).save(path)
    make_tiny_image(TINY_CLASSES[0], seed=99, size=48).save(folder / "top.png")
    (folder / "notes.txt").write_text("field notes")
    (folder / "._top.png").write_bytes(b"macOS metadata")
    (folder / "blue" / "card.zip").write_bytes(b"PK not opened")
    return folder


def test_a_folder_uri_lists_the_folders_photos_in_the_same_order(photos):
    plain = expand_inputs([photos])
    listed = expand_inputs([photos.as_uri() + "/"])

    assert [i.kind for i in listed.items] == [OBJECT] * len(plain.items) and len(plain.items) == 7
    assert [i.path for i in listed.items] == [Path(i.path).as_uri() for i in plain.items]
    assert [i.group for i in listed.items] == [Path(i.group).as_uri() for i in plain.items]
    assert read_item(listed.items[0]) == Path(plain.items[0].path).read_bytes()
    assert listed.skipped_total == plain.skipped_total == 3
    assert listed.skipped[ZIPS_SKIPPED] == 1 and listed.skipped["files without an image extension"] == 1


def test_a_single_object_uri_is_tried_whatever_its_suffix(tmp_path):
    odd = tmp_path / "frame.dat"
    make_tiny_image("red", size=48).save(odd, "JPEG")

    (item,) = expand_inputs([odd.as_uri()]).items
    decoded = decode_item(item, 32)

    assert (
        item.kind == OBJECT
        and item.path == odd.as_uri()
        and item.mtime == pytest.approx(odd.stat().st_mtime, abs=1e-5)
    )
    assert decoded.error == "" and decoded.pixels.shape == (32, 32, 3)


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("ftp://example.org/x.jpg", "cannot list (only http:// and https:// URLs and s3://, gs://"),
        ("file://relative/folder", "cannot list (check the path; file:// URIs take an absolute one"),
        ("MISSING", "not found (check the path"),
    ],
)
def test_an_input_that_cannot_be_listed_is_one_error_line(tmp_path, uri, says):
    uri = (tmp_path / "gone").as_uri() if uri == "MISSING" else uri

    (item,) = expand_inputs([uri]).items

    assert item.kind == INVALID and item.error.startswith(f"{uri}: {says}") and "\n" not in item.error


def test_an_object_gone_before_it_is_read_is_an_error_row(photos):
    items = expand_inputs([photos.as_uri()]).items
    Path(items[0].path.removeprefix("file://")).unlink()

    decoded = decode_item(items[0], 32)

    assert decoded.pixels is None and "\n" not in decoded.error
    assert decoded.error.startswith(f"{items[0].path}: cannot be read (check the path")


def test_inputs_without_a_scheme_never_import_pyarrow(photos):
    code = (
        "import sys, classifier.cli; from classifier.intake.inputs import expand_inputs; "
        f"assert expand_inputs([{str(photos)!r}]).items; print('pyarrow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def predict_rows(capsys, argv: list[str]) -> tuple[list[dict[str, str]], str]:
    code = cli.main(["predict", "--out", "-", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return [
        {k: v for k, v in row.items() if k != "classified_at"} for row in csv.DictReader(out.splitlines())
    ], err


def test_predict_labels_a_folder_uri_as_it_labels_the_folder(capsys, tiny_bundle, photos):
    plain, _ = predict_rows(capsys, ["--model", str(tiny_bundle), str(photos)])
    listed, err = predict_rows(capsys, ["--model", str(tiny_bundle), photos.as_uri(), "nope://bucket/x"])

    assert [row["path"] for row in listed[:-1]] == [Path(row["path"]).as_uri() for row in plain]
    assert [{**row, "path": ""} for row in listed[:-1]] == [{**row, "path": ""} for row in plain]
    assert plain and all(row["status"] != "error" for row in plain)  # the photos were read and labeled
    assert listed[-1]["status"] == "error" and "nope://bucket/x: cannot list" in listed[-1]["error"]
    assert "Traceback" not in err
