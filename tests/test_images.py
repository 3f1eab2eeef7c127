"""Decoding photos: every mode to RGB, EXIF orientation, EXIF facts, and one-line errors for bad files."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from classifier.intake.images import (
    ImageError,
    has_image_extension,
    load_photo,
    open_image,
    thumbnail_data_url,
)
from conftest import examples, png_declaring

SPECIESNET = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camera_traps" / "speciesnet_test_data"
)


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def left_red_right_blue(width: int = 80, height: int = 40) -> Image.Image:
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, : width // 2] = (220, 20, 20)
    pixels[:, width // 2 :] = (20, 20, 220)
    return Image.fromarray(pixels)


def test_jpeg_from_bytes_and_from_path_decode_to_the_same_rgb(tmp_path: Path) -> None:
    data = encode(left_red_right_blue())
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    from_bytes, from_path = open_image(data), open_image(path)
    assert from_bytes.mode == from_path.mode == "RGB"
    assert from_bytes.size == (80, 40)
    assert np.array_equal(np.asarray(from_bytes), np.asarray(from_path))


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: the camera was turned 90 degrees clockwise
    photo = open_image(encode(left_red_right_blue(), exif=exif.tobytes()))
    assert photo.size == (40, 80)
    top, bottom = np.asarray(photo)[5, 20], np.asarray(photo)[-5, 20]
    assert top[0] > 150 and bottom[2] > 150  # red (was left) now on top, blue at the bottom


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("L", "PNG"),
        ("CMYK", "JPEG"),
        ("CMYK", "TIFF"),
        ("P", "PNG"),
        ("RGBA", "PNG"),
        ("LA", "PNG"),
        ("1", "BMP"),
    ],
)
def test_every_mode_becomes_rgb(mode: str, fmt: str) -> None:
    image = left_red_right_blue().convert(mode)
    assert open_image(encode(image, fmt)).mode == "RGB"


def test_transparent_areas_become_white_not_black() -> None:
    image = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    assert tuple(np.asarray(open_image(encode(image, "PNG")))[10, 10]) == (255, 255, 255)


def test_sixteen_bit_greyscale_keeps_its_tones() -> None:
    ramp = (np.linspace(0, 65535, 64 * 16).reshape(16, 64)).astype(np.uint16)
    rgb = np.asarray(open_image(encode(Image.fromarray(ramp), "PNG")))
    assert rgb[0, 0, 0] < 10 and rgb[-1, -1, 0] > 245
    assert 100 < rgb[8, 32, 0] < 160  # mid-grey stays mid-grey instead of clipping to white


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((250, 0, 0), (0, 250, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert np.asarray(open_image(data))[8, 8, 0] > 200


def test_exif_date_and_camera_are_read() -> None:
    exif = Image.Exif()
    exif[0x010F] = "Reconyx"
    exif[0x0110] = "HC500"
    exif.get_ifd(0x8769)[0x9003] = "2024:06:01 05:43:21"
    photo = load_photo(encode(left_red_right_blue(), exif=exif.tobytes()))
    assert photo.taken == datetime(2024, 6, 1, 5, 43, 21)
    assert photo.camera == "Reconyx HC500"


def test_photo_without_exif_has_no_date_or_camera() -> None:
    photo = load_photo(encode(left_red_right_blue(), "PNG"))
    assert photo.taken is None and photo.camera is None


def test_large_jpeg_decodes_at_reduced_size_but_never_below_the_target() -> None:
    big = left_red_right_blue(2048, 1536)
    photo = load_photo(encode(big), target_size=224)
    assert photo.original_size == (2048, 1536)
    assert min(photo.image.size) >= 224 and photo.image.size[0] <= 512


def test_truncated_jpeg_is_a_one_line_error(tmp_path: Path) -> None:
    data = encode(left_red_right_blue(400, 300), quality=95)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"^cut\.jpg: the file is truncated") as error:
        open_image(path)
    assert "\n" not in str(error.value)


def test_text_with_an_image_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("these are field notes, not a photo")
    with pytest.raises(ImageError, match=r"notes\.jpg: not an image"):
        open_image(path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.png: the file is empty"):
        open_image(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="file not found"):
        open_image(tmp_path / "nowhere.jpg")


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageError, match="pixels"):
        open_image(png_declaring(50_000, 50_000), name="bomb.png")


def test_pixel_limit_can_be_tightened() -> None:
    with pytest.raises(ImageError, match="limit"):
        open_image(encode(left_red_right_blue()), max_pixels=1000)


def test_image_extensions() -> None:
    assert has_image_extension("a/B.JPG") and has_image_extension("x.tiff")
    assert not has_image_extension("notes.txt") and not has_image_extension("jpg")


@settings(max_examples=examples(200), deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_decode_or_give_an_image_error(data: bytes) -> None:
    try:
        assert open_image(data).mode == "RGB"
    except ImageError as error:
        assert "\n" not in str(error)


@settings(max_examples=examples(100), deadline=None)
@given(st.integers(min_value=0, max_value=2000), st.binary(min_size=1, max_size=64))
def test_damaged_jpegs_decode_or_give_an_image_error(cut: int, junk: bytes) -> None:
    data = encode(left_red_right_blue(64, 48))
    damaged = data[:cut] + junk + data[cut + len(junk) :]
    try:
        assert open_image(damaged).mode == "RGB"
    except ImageError as error:
        assert "\n" not in str(error)


needs_speciesnet = pytest.mark.skipif(not SPECIESNET.is_dir(), reason="../shared/data is not here")


@needs_speciesnet
def test_real_broken_copies_of_a_camera_trap_frame() -> None:
    original = open_image(SPECIESNET / "african_elephants.jpg")
    for copy in ("african_elephants_bw.jpg", "african_elephants_cmyk.jpg"):
        assert open_image(SPECIESNET / copy).size == original.size
    rotated = open_image(SPECIESNET / "african_elephants_with_exif_orientation.jpg")
    assert rotated.mode == "RGB" and rotated.size in (original.size, original.size[::-1])
    with pytest.raises(ImageError, match="truncated"):
        open_image(SPECIESNET / "african_elephants_truncated_file.jpg")


@needs_speciesnet
def test_real_text_files_are_not_images() -> None:
    with pytest.raises(ImageError, match="not an image"):
        open_image(SPECIESNET / "NOTES.txt")


def test_thumbnail_is_a_small_jpeg_data_url_and_none_for_a_broken_file() -> None:
    import base64

    url = thumbnail_data_url(encode(left_red_right_blue(800, 400)), size=64)
    assert url is not None and url.startswith("data:image/jpeg;base64,")
    thumb = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert max(thumb.size) == 64
    assert thumbnail_data_url(b"not a photo") is None
