"""Expanding what a user names into photos: folders, zips read in place (safely), files and URLs."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from classifier.intake.inputs import ZipLimits, close_archives, expand_inputs, read_item
from classifier.intake.items import FILE, INVALID, URL, ZIP_ENTRY, InputError


def jpeg_bytes(colour=(200, 40, 30), size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG")
    return buffer.getvalue()


def symlink_entry(name: str, target: str) -> tuple[zipfile.ZipInfo, str]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target


def write_zip(path: Path, entries: list) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


@pytest.fixture
def evil_zip(tmp_path) -> Path:
    nested = io.BytesIO()
    with zipfile.ZipFile(nested, "w") as inner:
        inner.writestr("inside.jpg", jpeg_bytes())
    return write_zip(
        tmp_path / "card.zip",
        [
            ("DCIM/IMG_0002.JPG", jpeg_bytes()),
            ("DCIM/IMG_0001.JPG", jpeg_bytes()),
            ("DCIM/", b""),
            ("../evil.jpg", jpeg_bytes()),
            ("/etc/absolute.jpg", jpeg_bytes()),
            ("DCIM/..\\windows_evil.jpg", jpeg_bytes()),
            symlink_entry("DCIM/link.jpg", "/etc/passwd"),
            ("notes.txt", b"field notes"),
            ("__MACOSX/DCIM/._IMG_0001.JPG", b"\x00\x05\x16\x07"),
            ("more.zip", nested.getvalue()),
        ],
    )


def test_zip_entries_are_read_in_place_and_unsafe_ones_refused(evil_zip):
    expansion = expand_inputs([evil_zip])
    by_path = {item.path.removeprefix(f"{evil_zip}/"): item for item in expansion.items}

    good = [p for p, item in by_path.items() if item.kind == ZIP_ENTRY]
    assert good == ["DCIM/IMG_0001.JPG", "DCIM/IMG_0002.JPG"]  # sorted, directories left out
    assert read_item(by_path["DCIM/IMG_0001.JPG"])[:2] == b"\xff\xd8"
    assert by_path["DCIM/IMG_0001.JPG"].group == f"{evil_zip}/DCIM"

    assert "'../' path" in by_path["../evil.jpg"].error
    assert "absolute path" in by_path["/etc/absolute.jpg"].error
    assert "'../' path" in by_path["DCIM/..\\windows_evil.jpg"].error
    assert "symbolic link" in by_path["DCIM/link.jpg"].error
    for refused in ("../evil.jpg", "/etc/absolute.jpg", "DCIM/link.jpg"):
        assert by_path[refused].kind == INVALID
        with pytest.raises(InputError):
            read_item(by_path[refused])

    assert expansion.skipped == {
        "files without an image extension": 1,
        "macOS metadata files (._*)": 1,
        "archives inside archives (not opened)": 1,
    }
    assert not (evil_zip.parent.parent / "evil.jpg").exists()  # nothing was extracted anywhere
    close_archives()


def test_zip_size_and_count_caps(tmp_path):
    archive = write_zip(tmp_path / "big.zip", [(f"{i}.jpg", jpeg_bytes()) for i in range(5)])
    one = len(jpeg_bytes())

    refused = expand_inputs([archive], zip_limits=ZipLimits(max_entries=4)).items
    assert len(refused) == 1 and "5 entries is more than the 4-entry limit" in refused[0].error

    per_entry = expand_inputs([archive], zip_limits=ZipLimits(max_entry_bytes=one - 1)).items
    assert all(item.kind == INVALID and "limit for one photo" in item.error for item in per_entry)

    total = expand_inputs([archive], zip_limits=ZipLimits(max_total_bytes=3 * one)).items
    assert [item.kind for item in total] == [ZIP_ENTRY] * 3 + [INVALID] * 2
    assert "add up to more than" in total[-1].error


def test_zip_bomb_entry_is_refused_from_the_directory_without_decompressing(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.jpg", bytes(300 * 2**20))  # 300 MiB of zeros, ~300 KiB compressed
    assert archive.stat().st_size < 2**20
    (item,) = expand_inputs([archive]).items
    assert item.kind == INVALID and "300.0 MiB uncompressed is more than the 256.0 MiB limit" in item.error


def test_a_damaged_zip_is_one_error_row(tmp_path):
    fake = tmp_path / "photos.zip"
    fake.write_bytes(b"PK\x03\x04 this is not really a zip")
    (item,) = expand_inputs([fake]).items
    assert item.kind == INVALID and "not a readable zip archive" in item.error


def test_folders_recurse_sorted_and_skip_non_images(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("b/2.jpg", "b/1.PNG", "a/deep/3.jpeg", "a/readme.txt", "a/._3.jpg", "a/archive.zip"):
        (tmp_path / name).write_bytes(jpeg_bytes())
    os.symlink(tmp_path / "b", tmp_path / "a" / "loop")  # symlinked folders are not followed

    expansion = expand_inputs([tmp_path])

    assert [Path(i.path).relative_to(tmp_path).as_posix() for i in expansion.items] == [
        "a/deep/3.jpeg",
        "b/1.PNG",
        "b/2.jpg",
    ]
    assert all(i.kind == FILE and i.mtime for i in expansion.items)
    assert expansion.items[0].group == str(tmp_path / "a" / "deep")
    assert expansion.skipped == {
        "files without an image extension": 1,
        "macOS metadata files (._*)": 1,
        "zip archives inside folders (name them to read them)": 1,
    }
    assert "1 files without an image extension" in expansion.skipped_summary()


def test_named_files_are_always_tried_and_missing_ones_are_rows(tmp_path):
    odd = tmp_path / "photo.dat"
    odd.write_bytes(jpeg_bytes())
    items = expand_inputs([odd, tmp_path / "gone.jpg", "ftp://example.org/x.jpg"]).items
    assert [i.kind for i in items] == [FILE, INVALID, INVALID]
    assert read_item(items[0]) == odd
    assert "gone.jpg: file not found" in items[1].error
    assert "only http:// and https:// URLs" in items[2].error


def test_urls_become_items_fetched_later(tmp_path):
    (item,) = expand_inputs(["HTTPS://example.org/traps/a.jpg?size=large"]).items
    assert item.kind == URL and item.group == "HTTPS://example.org/traps" and not item.allow_loopback
    (local,) = expand_inputs(["http://127.0.0.1:1/x.jpg"], allow_loopback=True).items
    assert local.allow_loopback
