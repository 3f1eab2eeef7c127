"""Fuzzing what strangers' files reach first: zip reading, damaged real camera-trap frames, and atheris.

Every input must end in a photo or in the reader's own one-line refusal (`ImageError`, `InputError`,
`SpeciesInfoError`, `FetchError`); anything else, or a multi-line message, fails. Hypothesis tests for
arbitrary image bytes, pasted URLs and species YAML live beside their modules' other tests
(test_images.py, test_urlfetch.py, test_species.py); atheris fuzzes all four readers here, guided by
coverage, in a subprocess (libFuzzer ends its process when done).
"""

from __future__ import annotations

import functools
import importlib.util
import io
import os
import resource
import stat
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from classifier.intake.images import ImageError, load_photo
from classifier.intake.inputs import close_archives, expand_inputs, read_item
from classifier.intake.items import INVALID, ZIP_ENTRY, InputError
from conftest import SHARED_DATA, examples, make_tiny_image

ROOT = Path(__file__).resolve().parents[1]
SPECIESNET = SHARED_DATA / "camera_traps" / "speciesnet_test_data"
REAL_FILES = sorted(SPECIESNET.iterdir()) if SPECIESNET.is_dir() else []


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


JPEG = encode(make_tiny_image("red", size=32), "JPEG")
PNG = encode(make_tiny_image("blue", size=32), "PNG")
COMPRESSIONS = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]


def assert_one_line(error: Exception | str) -> None:
    text = str(error)
    assert text and "\n" not in text and "\r" not in text, repr(text)


def decode_or_refuse(source: bytes | Path, name: str) -> None:
    """Decode like the prediction pipeline does; only a one-line `ImageError` may come out."""
    try:
        assert load_photo(source, name=name, target_size=64).image.mode == "RGB"
    except ImageError as error:
        assert_one_line(error)


def read_every_item(archive: Path) -> list:
    """Expand `archive` and read and decode every photo in it, the way `predict` does."""
    items = expand_inputs([archive]).items
    try:
        for item in items:
            if item.kind == INVALID:
                assert_one_line(item.error)
                continue
            try:
                decode_or_refuse(read_item(item), item.name)
            except InputError as error:
                assert_one_line(error)
    finally:
        close_archives()
    return items


# --- zip archives built by hypothesis ----------------------------------------------------------------

ENTRY_NAMES = st.one_of(
    st.sampled_from(
        [
            "DCIM/IMG_0001.JPG",
            "../up.jpg",
            "a/../../b.jpg",
            "/etc/abs.jpg",
            "C:\\win.jpg",
            "..\\win.jpg",
            "__MACOSX/DCIM/._IMG_0001.JPG",
            "inner.zip",
            "notes.txt",
            "DCIM/",
        ]
    ),
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=16).map(lambda t: t + ".jpg"),
)
ENTRIES = st.lists(
    st.tuples(
        ENTRY_NAMES,
        st.one_of(st.sampled_from([JPEG, PNG, b"", b"field notes"]), st.binary(max_size=200)),
        st.sampled_from(COMPRESSIONS),
        st.booleans(),  # a symbolic link entry
    ),
    min_size=1,
    max_size=6,
)


def write_zip(path: Path, entries: list) -> None:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as zf:
        warnings.simplefilter("ignore")  # "Duplicate name": hypothesis may pick one twice, on purpose
        for name, data, compression, link in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            if link:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, data)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=ENTRIES)
def test_any_zip_gives_photos_or_one_line_refusals_and_nothing_escapes(entries: list) -> None:
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "card.zip"
        write_zip(archive, entries)
        items = read_every_item(archive)
        assert os.listdir(folder) == ["card.zip"]  # read in place: nothing was extracted
    for item in items:
        if item.kind == ZIP_ENTRY:  # only safe names are ever opened
            member = (item.member or "").replace("\\", "/")
            assert member and not member.startswith("/") and ".." not in PurePosixPath(member).parts
            assert not item.member.startswith(("\\", "C:"))


def sample_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for index, compression in enumerate(COMPRESSIONS):
            zf.writestr(zipfile.ZipInfo(f"DCIM/{index}.jpg"), JPEG, compress_type=compression)
        zf.writestr("site/b.png", PNG, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


SAMPLE_ZIP = sample_zip()


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=examples(300), deadline=None)
@given(
    damage=st.lists(
        st.tuples(st.integers(0, len(SAMPLE_ZIP) - 1), st.binary(min_size=1, max_size=8)),
        min_size=1,
        max_size=6,
    ),
    cut=st.one_of(st.none(), st.integers(0, len(SAMPLE_ZIP))),
)
def test_damaged_zip_bytes_give_rows_never_a_crash(damage: list, cut: int | None) -> None:
    data = bytearray(SAMPLE_ZIP)
    for position, junk in damage:
        data[position : position + len(junk)] = junk
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "card.zip"
        archive.write_bytes(bytes(data[:cut]))
        read_every_item(archive)


# --- the real broken camera-trap files --------------------------------------------------------------

needs_speciesnet = pytest.mark.skipif(not REAL_FILES, reason=f"needs the real images in {SPECIESNET}")


@functools.cache
def real_bytes(path: Path) -> bytes:
    return path.read_bytes()


@needs_speciesnet
@pytest.mark.shared
def test_every_real_test_file_decodes_or_is_refused_in_one_line() -> None:
    refused = {}
    for path in REAL_FILES:
        try:
            load_photo(path, target_size=224)
        except ImageError as error:
            assert_one_line(error)
            refused[path.name] = str(error)
    assert refused == {
        "NOTES.txt": "NOTES.txt: not an image this app reads; use a JPEG, PNG, WebP, GIF, BMP or TIFF photo.",
        "SOURCE_README.md": "SOURCE_README.md: not an image this app reads; use a JPEG, PNG, WebP, GIF, BMP or TIFF photo.",
        "african_elephants_truncated_file.jpg": "african_elephants_truncated_file.jpg: the file is truncated "
        "(an incomplete download or copy); copy it again.",
    }


@needs_speciesnet
@pytest.mark.shared
@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about each damaged EXIF tag
@settings(max_examples=examples(300), deadline=None)
@given(
    path=st.sampled_from([p for p in REAL_FILES if p.suffix == ".jpg"] or [Path("none")]),
    # Headers and EXIF sit in the first few KB: aim most damage there, some anywhere.
    position=st.one_of(st.integers(0, 4096), st.integers(0, 2_000_000)),
    junk=st.binary(min_size=1, max_size=32),
    cut=st.one_of(st.none(), st.integers(0, 2_000_000)),
)
def test_damaged_real_frames_decode_or_are_refused_in_one_line(
    path: Path, position: int, junk: bytes, cut: int | None
) -> None:
    data = bytearray(real_bytes(path))
    data[position : position + len(junk)] = junk
    decode_or_refuse(bytes(data[:cut]), path.name)


# --- atheris: coverage-guided, every reader -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed")
@pytest.mark.parametrize("target", ["image", "zip", "yaml", "url"])
def test_atheris_finds_no_crash_or_hang(target: str, tmp_path: Path) -> None:
    # A few seconds each here; a crash prints the input and its traceback. Longer runs: see the script.
    # libFuzzer's memory limit is on the peak RSS getrusage reports, and Linux folds the parent's peak
    # into a child's at exec: past 2 GB of pytest, every target failed at once. 2 GB on top of that.
    inherited = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    command = [sys.executable, str(ROOT / "tests" / "atheris_fuzz.py"), target]
    command += ["-max_total_time=5", "-timeout=10", f"-rss_limit_mb={2048 + inherited}"]
    command += [f"-artifact_prefix={tmp_path}/"]
    result = subprocess.run([*command, str(tmp_path / "corpus")], capture_output=True, text=True, timeout=100)
    report = result.stderr
    assert result.returncode == 0, report[max(report.find("=== Uncaught"), 0) :][-6000:]  # traceback, input
    assert "Done " in report and " runs in " in report
