"""Files made to hurt: decompression bombs, zip bombs, odd entries, non-files and formats nobody photographs in.

Each case checks what a user is told (the one-line reason) and that nothing ran long or read more than
it should. Cases already covered elsewhere: `../`, absolute and symlink entries and nested zips
(test_inputs.py), the 50000x50000 PNG and text named .jpg (test_images.py), hostile URLs
(test_urlfetch.py), the 200 MB upload (test_load.py).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import struct
import time
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageOps
from streamlit.testing.v1 import AppTest

from classifier import cli
from classifier.intake.images import ImageError, load_photo
from classifier.intake.inputs import close_archives, expand_inputs, read_item
from classifier.intake.items import INVALID, ZIP_ENTRY, InputError
from conftest import make_tiny_image, png_chunk, png_declaring

ROOT = Path(__file__).resolve().parents[1]
MiB = 2**20
# Each case takes milliseconds; the bound only tells a hang (or a bomb going off) from a busy machine.
HANG = 10
LIMIT = "the 64,000,000-pixel limit"


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def declaring(fmt: str, width: int, height: int) -> bytes:
    """A small valid file of `fmt` whose header is then patched to claim `width` x `height` pixels."""
    data = bytearray(encode(Image.new("RGB", (16, 16), (90, 140, 60)), fmt))
    if fmt == "GIF":
        data[6:10] = struct.pack("<HH", width, height)  # logical screen
        start = data.index(b"\x2c")  # image descriptor: left, top, width, height
        data[start + 5 : start + 9] = struct.pack("<HH", width, height)
    elif fmt == "BMP":
        data[18:26] = struct.pack("<ii", width, height)
    elif fmt == "JPEG":
        start = data.index(b"\xff\xc0")  # baseline frame header: precision, height, width
        data[start + 5 : start + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def compressed_zeros(size: int) -> bytes:
    """zlib data that inflates to `size` zero bytes, made without holding them in memory."""
    packer = zlib.compressobj(9)
    return b"".join(packer.compress(bytes(MiB)) for _ in range(size // MiB)) + packer.flush()


def timed(call, *args, **kwargs):
    start = time.monotonic()
    try:
        return call(*args, **kwargs), time.monotonic() - start
    except Exception as error:
        return error, time.monotonic() - start


# --- images ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("bomb.png", png_declaring(50_000, 50_000), f"declares far more pixels than {LIMIT}"),
        ("bomb.gif", declaring("GIF", 65_535, 65_535), f"declares far more pixels than {LIMIT}"),
        ("bomb.bmp", declaring("BMP", 60_000, 60_000), f"declares far more pixels than {LIMIT}"),
        ("bomb.jpg", declaring("JPEG", 65_000, 65_000), f"declares far more pixels than {LIMIT}"),
        ("big.jpg", declaring("JPEG", 8_001, 8_001), f"8001x8001 pixels is more than {LIMIT}"),
    ],
    ids=["png", "gif", "bmp", "jpeg", "jpeg-64MP"],
)
def test_decompression_bombs_are_refused_from_their_header(name: str, data: bytes, message: str) -> None:
    error, seconds = timed(load_photo, data, name=name)
    assert isinstance(error, ImageError) and len(data) < 2048
    assert str(error).startswith(f"{name}: ") and message in str(error)
    assert str(error).endswith("downscale the photo first.") and "\n" not in str(error)
    assert seconds < HANG


def test_png_data_that_inflates_past_its_declared_size_is_cut_at_that_size() -> None:
    # 100x100 declared, 256 MiB of zeros packed in 250 KB: Pillow inflates only what 100x100 needs.
    data = png_declaring(100, 100, idat=compressed_zeros(256 * MiB))
    photo, seconds = timed(load_photo, data, name="inflating.png")
    assert photo.image.size == (100, 100) and seconds < HANG


@pytest.mark.parametrize("kind", [b"zTXt", b"iCCP"])
def test_compressed_text_and_profile_bombs_are_refused(kind: bytes) -> None:
    chunk = png_chunk(kind, b"name\x00\x00" + compressed_zeros(64 * MiB))
    error, seconds = timed(load_photo, png_declaring(10, 10, extra=chunk), name="chunky.png")
    assert isinstance(error, ImageError) and seconds < HANG
    assert str(error) == (
        "chunky.png: not a readable image (Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK); "
        "use another copy."
    )


def test_formats_no_camera_writes_are_not_tried() -> None:
    # Pillow would hand EPS to Ghostscript and let BLP's NotImplementedError escape: neither is reached.
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    blp = bytearray(encode(Image.new("P", (8, 8)), "BLP"))
    blp[8] = 0x7F  # an unknown compression: Pillow raises NotImplementedError when decoding
    for name, data in (
        ("page.jpg", eps),
        ("texture.png", bytes(blp)),
        ("scan.png", encode(Image.new("RGB", (8, 8)), "TGA")),
    ):
        with pytest.raises(ImageError) as caught:
            load_photo(data, name=name)
        assert str(caught.value) == (
            f"{name}: not an image this app reads; use a JPEG, PNG, WebP, GIF, BMP or TIFF photo."
        )


def test_a_plugin_failing_in_an_unforeseen_way_is_still_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(image: Image.Image) -> Image.Image:
        raise KeyError("orientation tag 274")

    monkeypatch.setattr(ImageOps, "exif_transpose", broken)
    with pytest.raises(ImageError) as caught:
        load_photo(encode(make_tiny_image("red"), "JPEG"), name="odd.jpg")
    assert (
        str(caught.value) == "odd.jpg: the image data is damaged ('orientation tag 274'); use another copy."
    )


def test_names_with_line_breaks_give_one_line_reasons() -> None:
    with pytest.raises(ImageError) as caught:
        load_photo(b"", name="two\nlines\r.jpg")
    assert str(caught.value) == "two?lines?.jpg: the file is empty (0 bytes); copy it again from its source."


# --- things on disk that are not photo files ----------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "camera.jpg"
    os.mkfifo(path)
    return path


@pytest.mark.timeout(60)
def test_a_pipe_a_device_and_a_huge_file_are_refused_without_reading_them(fifo: Path, tmp_path: Path) -> None:
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as handle:
        handle.truncate(257 * MiB)  # sparse: takes no disk, but a reader would get 257 MiB of zeros
    cases = {
        fifo: "camera.jpg: not a regular file (a device, pipe or socket); name a photo file.",
        Path("/dev/zero"): "zero: not a regular file (a device, pipe or socket); name a photo file.",
        huge: "huge.jpg: larger than 256 MB, more than any photo file; save the photo as a JPEG first.",
    }
    for path, message in cases.items():
        error, seconds = timed(load_photo, path)  # a pipe would block forever, /dev/zero fill the memory
        assert isinstance(error, ImageError) and str(error) == message and seconds < HANG


# --- zip archives -----------------------------------------------------------------------------------------


def zip_bytes(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def patched(data: bytes, signature: bytes, offset: int, value: bytes) -> bytes:
    """`data` with `value` written at `offset` into the first record starting with `signature`."""
    start = data.index(signature) + offset
    return data[:start] + value + data[start + len(value) :]


CENTRAL, LOCAL = b"PK\x01\x02", b"PK\x03\x04"


def only_item(tmp_path: Path, data: bytes):
    archive = tmp_path / "card.zip"
    archive.write_bytes(data)
    (item,) = expand_inputs([archive]).items
    return item


def read_error(item) -> str:
    try:
        read_item(item)
    except InputError as error:
        return str(error)
    finally:
        close_archives()
    raise AssertionError(f"{item.path} was read")


def test_a_highly_compressed_entry_under_the_size_cap_is_refused_as_a_bomb(tmp_path: Path) -> None:
    archive = tmp_path / "card.zip"
    with (
        zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf,
        zf.open("IMG_0001.JPG", "w") as entry,
    ):
        for _ in range(64):
            entry.write(bytes(MiB))
    (item,) = expand_inputs([archive]).items
    assert item.kind == INVALID
    assert re.fullmatch(
        r"IMG_0001\.JPG: refused: [\d.]+ KiB unpacks to 64\.0 MiB, more than 100 times its size, "
        r"which no photo does \(a zip bomb\)\.",
        item.error,
    )


def test_an_entry_that_understates_its_size_is_cut_at_the_size_it_declares(tmp_path: Path) -> None:
    honest = zip_bytes({"IMG_0001.JPG": bytes(64 * MiB)})
    lying = patched(patched(honest, CENTRAL, 24, struct.pack("<I", 1000)), LOCAL, 22, struct.pack("<I", 1000))
    item = only_item(tmp_path, lying)
    assert item.kind == ZIP_ENTRY  # 1000 bytes declared: nothing to refuse before reading
    # The CRC fails because only the declared 1000 bytes were inflated: all 64 MiB would have matched it.
    assert (
        read_error(item) == "IMG_0001.JPG: damaged inside the archive (Bad CRC-32 for file 'IMG_0001.JPG')."
    )


def test_a_zip_declaring_a_million_entries_is_refused_before_its_directory_is_read(tmp_path: Path) -> None:
    # An empty directory behind a zip64 end record that claims 1,000,000 entries (the default limit: 200,000).
    end64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, 10**6, 10**6, 0, 0)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, 0, 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    item = only_item(tmp_path, end64 + locator + end)
    assert item.kind == INVALID
    assert item.error == "card.zip: 1,000,000 entries is more than the 200,000-entry limit; split it."


def test_a_zip_needing_an_unknown_zip_version_is_one_error_row(tmp_path: Path) -> None:
    # zipfile raises NotImplementedError for it, which used to end the whole run.
    data = patched(zip_bytes({"a.jpg": b"x"}), CENTRAL, 6, struct.pack("<H", 255))
    item = only_item(tmp_path, data)
    assert item.error == "card.zip: not a readable zip archive (zip file version 25.5); copy it again."


def test_an_entry_without_a_name_is_refused(tmp_path: Path) -> None:
    # The one-letter name becomes the entry's comment: zipfile then lists an entry named "".
    data = zip_bytes({"E": b"x"})
    data = patched(patched(data, CENTRAL, 28, struct.pack("<H", 0)), CENTRAL, 32, struct.pack("<H", 1))
    item = only_item(tmp_path, data)
    assert item.kind == INVALID
    assert item.error == "card.zip: refused: an entry without a name (a malicious or broken zip)."


@pytest.mark.parametrize(
    ("compression", "damage", "reason"),
    [
        (zipfile.ZIP_DEFLATED, b"\x07", "Error -3 while decompressing data: invalid block type"),
        (zipfile.ZIP_LZMA, b"\xff" * 5, "Invalid or unsupported options"),
    ],
    ids=["deflate", "lzma"],
)
def test_damaged_compressed_data_is_a_damaged_entry(
    tmp_path: Path, compression: int, damage: bytes, reason: str
) -> None:
    data = zip_bytes({"a.jpg": encode(make_tiny_image("red"), "JPEG")}, compression)
    start = 30 + len("a.jpg")  # the entry's data follows its local header and name
    offset = 4 if compression == zipfile.ZIP_LZMA else 0  # LZMA data opens with a version and size
    data = data[: start + offset] + damage + data[start + offset + len(damage) :]
    assert read_error(only_item(tmp_path, data)) == f"a.jpg: damaged inside the archive ({reason})."


def test_control_characters_in_entry_names_stay_on_one_line(tmp_path: Path) -> None:
    data = zip_bytes({"DCIM/bad\nname.jpg": b"", "../up\r.jpg": b"x"})
    archive = tmp_path / "card.zip"
    archive.write_bytes(data)
    errors = [item.error for item in expand_inputs([archive]).items]
    assert (
        errors[0]
        == "up?.jpg: refused: a '../' path inside the archive points outside it (a malicious or broken zip)."
    )
    item = expand_inputs([archive]).items[1]
    photo_error, _ = timed(load_photo, read_item(item), name=item.name)
    close_archives()
    assert str(photo_error) == "bad?name.jpg: the file is empty (0 bytes); copy it again from its source."


# --- all of it through the command line ---------------------------------------------------------------


def evil_card(path: Path) -> Path:
    """A memory card's zip with one good photo and one of every kind of entry that must be refused."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("DCIM/good.jpg", encode(make_tiny_image("green", seed=3), "JPEG"))
        zf.writestr("DCIM/empty.jpg", b"")
        zf.writestr("DCIM/notes.jpg", b"counted 3 zebras at dawn")
        zf.writestr("../escape.jpg", b"x")
        zf.writestr("/etc/absolute.jpg", b"x")
        link = zipfile.ZipInfo("DCIM/link.jpg")
        link.external_attr = (0o120777) << 16  # a symbolic link to /etc/passwd
        zf.writestr(link, "/etc/passwd")
        zf.writestr("DCIM/inner.zip", zip_bytes({"a.jpg": b"x"}))
        zf.writestr("DCIM/bomb.jpg", bytes(8 * MiB))
    return path


@pytest.mark.timeout(120)
def test_hostile_inputs_through_the_cli_each_give_one_row_with_its_reason(
    capsys: pytest.CaptureFixture, tiny_bundle: Path, fifo: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    make_tiny_image("red", seed=4).save(folder / "red.jpg")
    (folder / "bomb.png").write_bytes(png_declaring(50_000, 50_000))
    (folder / "text.jpg").write_text("not a photo")
    card = evil_card(tmp_path / "card.zip")
    (tmp_path / "empty.zip").write_bytes(b"")
    (tmp_path / "future.zip").write_bytes(patched(zip_bytes({"a.jpg": b"x"}), CENTRAL, 6, b"\xff\x00"))
    out = tmp_path / "labels.csv"
    inputs = [folder, card, tmp_path / "empty.zip", tmp_path / "future.zip", fifo, "/dev/zero"]

    code = cli.main(["predict", "--model", str(tiny_bundle), "--out", str(out), *map(str, inputs)])

    stderr = capsys.readouterr().err
    with open(out, newline="", encoding="utf-8") as handle:
        rows = {Path(row["path"]).name: row for row in csv.DictReader(handle)}
    assert code == 0 and re.search(r"^14 photos: \d ok, \d uncertain, 12 error;", stderr, re.M)
    assert "Skipped 1 files: 1 archives inside archives (not opened)." in stderr
    assert {name: row["label"] for name, row in rows.items() if row["status"] != "error"} == {
        "red.jpg": "red",
        "good.jpg": "green",
    }
    errors = {name: row["error"] for name, row in rows.items() if row["status"] == "error"}
    assert errors == {
        "bomb.png": f"bomb.png: the image declares far more pixels than {LIMIT} (a decompression bomb, or a damaged header); downscale the photo first.",
        "text.jpg": "text.jpg: not an image this app reads; use a JPEG, PNG, WebP, GIF, BMP or TIFF photo.",
        "absolute.jpg": "absolute.jpg: refused: an absolute path inside the archive (a malicious or broken zip).",
        "escape.jpg": "escape.jpg: refused: a '../' path inside the archive points outside it (a malicious or broken zip).",
        "bomb.jpg": errors["bomb.jpg"],  # the packed size varies with zlib; its wording is tested above
        "empty.jpg": "empty.jpg: the file is empty (0 bytes); copy it again from its source.",
        "link.jpg": "link.jpg: refused: a symbolic link inside the archive.",
        "notes.jpg": "notes.jpg: not an image this app reads; use a JPEG, PNG, WebP, GIF, BMP or TIFF photo.",
        "empty.zip": "empty.zip: not a readable zip archive (no end-of-archive record); copy it again.",
        "future.zip": "future.zip: not a readable zip archive (zip file version 25.5); copy it again.",
        "camera.jpg": "camera.jpg: not a regular file (a device, pipe or socket); name a photo file.",
        "zero": "zero: not a regular file (a device, pipe or socket); name a photo file.",
    }
    assert errors["bomb.jpg"].endswith("(a zip bomb).")
    assert not (tmp_path / "escape.jpg").exists()  # nothing was extracted


def test_a_tampered_model_file_is_refused_on_the_page_saying_why(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_bundle, bundle)
    with open(bundle / "model.pkl", "ab") as handle:
        handle.write(b"\x00")  # one byte more: no longer the file its training run wrote
    monkeypatch.setenv("WILDLIFE_MODELS_DIR", str(bundle.parent))
    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    photo = encode(make_tiny_image("red"), "JPEG")
    app.file_uploader(key="classify_upload").upload("red.jpg", photo, "image/jpeg").run()
    assert not app.exception and not app.get("progress")  # nothing was predicted
    (error,) = [element.value for element in app.error]
    assert f"{bundle / 'model.pkl'}: SHA-256 " in error and "differs from report.json's" in error
    assert "unpickling runs code, so only model files written by a training run you trust are loaded" in error
    assert "\n" not in error
