"""A bundle's example photos (small, credited, one per class) and its held-out photos on disk."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier.models.bundle_photos import (
    MANIFEST,
    MAX_EXAMPLE_BYTES,
    bundle_examples,
    example_jpeg,
    example_picture,
    held_out_photos,
    pick_example,
    showcase,
    thumbnail,
    write_examples,
)
from classifier.models.bundles import BundleError, read_bundle
from classifier.schema.rows import Detection
from conftest import make_tiny_image
from tools import bundle_examples as tool

ROOT = Path(__file__).resolve().parents[1]


def noisy(width: int, height: int, seed: int = 0) -> Image.Image:
    """The hardest picture to compress: noise."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def bundle_dir(root: Path, classes: list[str], **report: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    fields = {"name": root.name, "classes": classes, "image_size": 64, **report}
    (root / "report.json").write_text(json.dumps(fields))
    return root


def test_an_example_is_a_small_jpeg_even_from_a_big_noisy_photo() -> None:
    jpeg = example_jpeg(noisy(2000, 1200))
    assert len(jpeg) <= MAX_EXAMPLE_BYTES
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.format == "JPEG" and max(image.size) <= 360


def test_the_clearest_photo_is_a_whole_animal_not_one_too_close_nor_one_without_a_box() -> None:
    close_up = [Detection((0.0, 0.0, 1.0, 0.9), 0.7)]  # fills the frame: cut off by its edges
    whole = [Detection((0.2, 0.3, 0.5, 0.6), 0.8), Detection((0.8, 0.8, 0.1, 0.1), 0.9)]
    name, box = pick_example([("none.jpg", []), ("close.jpg", close_up), ("whole.jpg", whole)])
    assert name == "whole.jpg" and box == whole[0]
    assert pick_example([("a.jpg", []), ("b.jpg", [])]) == ("a.jpg", None)


def test_the_example_keeps_the_animal_with_some_of_its_place_in_a_card_shape() -> None:
    frame = Image.new("RGB", (800, 400))
    long_animal = example_picture(frame, Detection((0.3, 0.45, 0.4, 0.1), 0.9))  # 320 x 40 px
    assert long_animal.width > 320 and long_animal.width <= 16 / 9 * long_animal.height + 1
    tall_animal = example_picture(frame, Detection((0.5, 0.1, 0.02, 0.5), 0.9))
    assert tall_animal.height <= 400 and tall_animal.width >= 3 / 4 * tall_animal.height - 1
    assert example_picture(frame, None).size == (800, 400)


def test_examples_written_are_read_back_by_class_with_their_credit(tmp_path: Path) -> None:
    bundle = read_bundle(bundle_dir(tmp_path / "b", ["red", "green", "blue"]))
    photo = example_jpeg(make_tiny_image("red"))
    folder = bundle.directory / "examples"
    write_examples(
        folder, {"red": (photo, "red/red_01.jpg", None), "old": (photo, "x.jpg", None)}, "Tiny set", "CC0"
    )
    write_examples(
        folder, {"red": (photo, "red/red_01.jpg", Detection((0.1, 0.1, 0.5, 0.5), 0.9))}, "Tiny set", "CC0"
    )
    assert not (folder / "old.jpg").exists()  # a class no longer chosen loses its photo
    examples = bundle_examples(bundle)
    assert list(examples) == ["red"]
    assert examples["red"].path.read_bytes() == photo
    assert examples["red"].credit == "Photo: Tiny set, red/red_01.jpg · CC0"


def test_a_bundle_without_examples_has_none(tmp_path: Path) -> None:
    assert bundle_examples(read_bundle(bundle_dir(tmp_path / "b", ["a", "b"]))) == {}


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        ("{not json", "cannot be read as JSON"),
        ('{"source": "S", "licence": "L"}', "needs an 'examples' object"),
        ('{"source": "S", "examples": {}}', "needs its photos' 'licence'"),
        (
            '{"source": "S", "licence": "L", "examples": {"a": {"file": "../../a.jpg"}}}',
            "must be a .jpg file in",
        ),
    ],
)
def test_a_broken_manifest_is_one_line_naming_its_file(tmp_path: Path, manifest: str, problem: str) -> None:
    bundle = read_bundle(bundle_dir(tmp_path / "b", ["a", "b"]))
    (bundle.directory / "examples").mkdir()
    (bundle.directory / "examples" / MANIFEST).write_text(manifest)
    with pytest.raises(BundleError, match=re.escape(problem)) as error:
        bundle_examples(bundle)
    assert "examples.json" in str(error.value) and "\n" not in str(error.value)


def test_held_out_photos_follow_the_reports_split(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for side in ("train", "valid"):
        for label in ("a", "b"):
            (data / side / label).mkdir(parents=True)
            make_tiny_image("red").save(data / side / label / f"{side}_{label}.jpg")
    split = bundle_dir(
        tmp_path / "split", ["a", "b"], data={"root": str(data), "format": "folder", "split": "folders"}
    )
    assert sorted((p.name, label) for p, label in held_out_photos(read_bundle(split))) == [
        ("valid_a.jpg", "a"),
        ("valid_b.jpg", "b"),
    ]
    crossed = bundle_dir(
        tmp_path / "cv",
        ["a"],
        data={"root": str(data / "train"), "format": "folder", "split": "3-fold cross-validation"},
    )
    assert [(p.name, label) for p, label in held_out_photos(read_bundle(crossed))] == [("train_a.jpg", "a")]
    elsewhere = bundle_dir(
        tmp_path / "gone", ["a"], data={"root": str(tmp_path / "nowhere"), "format": "folder"}
    )
    assert held_out_photos(read_bundle(elsewhere)) == []


def test_the_tool_gives_a_bundle_its_examples_and_credits_them_in_its_readme(tmp_path: Path, capsys) -> None:
    data = tmp_path / "photos"
    for label in ("red", "green"):
        (data / label).mkdir(parents=True)
        for seed in range(2):
            make_tiny_image(label, seed=seed, size=200).save(data / label / f"{label}_{seed}.jpg")
    directory = bundle_dir(tmp_path / "tiny", ["green", "red"], data={"root": str(data), "format": "folder"})
    (directory / "README.md").write_text("# Tiny\n\nWhat it is.\n")
    arguments = ["--model", str(directory), "--source", "Generated colours", "--licence", "CC0-1.0"]
    tool.main(arguments)
    tool.main([*arguments, "--prefer", "red=red_1.jpg"])  # run again: the section is replaced, not added
    examples = bundle_examples(read_bundle(directory))
    assert list(examples) == ["green", "red"]
    assert examples["red"].source_file == "red/red_1.jpg"
    readme = (directory / "README.md").read_text()
    assert readme.startswith("# Tiny\n\nWhat it is.\n") and readme.count("## Example photos") == 1
    assert "Generated colours" in readme and "CC0-1.0" in readme and "--prefer red=red_1.jpg" in readme
    assert "wrote 2 examples" in capsys.readouterr().out


def test_the_serengeti_bundle_has_a_small_credited_photo_for_every_class() -> None:
    bundle = read_bundle(ROOT / "models" / "serengeti")
    examples = bundle_examples(bundle)
    assert list(examples) == list(bundle.classes)
    assert all(e.path.stat().st_size <= MAX_EXAMPLE_BYTES for e in examples.values())
    assert {e.licence for e in examples.values()} == {"CDLA-Permissive-1.0"}
    assert all(
        e.source_file.startswith(f"{label}/") for label, e in examples.items()
    )  # its own training photos
    readme = (bundle.directory / "README.md").read_text()
    assert "## Example photos" in readme and "CDLA-Permissive-1.0" in readme


def test_a_first_try_shows_well_named_classes_spread_through_the_list_in_one_shape(tmp_path: Path) -> None:
    classes = [f"c{i}" for i in range(10)]
    report = {"per_class": {c: {"recall": 1.0 if i % 2 else 0.5, "f1": 0.8} for i, c in enumerate(classes)}}
    bundle = read_bundle(bundle_dir(tmp_path / "b", classes))
    chosen = {c: (example_jpeg(noisy(360, 200, seed=i)), f"{c}/x.jpg", None) for i, c in enumerate(classes)}
    write_examples(bundle.directory / "examples", chosen, "Noise", "CC0-1.0")
    shown = showcase(bundle_examples(bundle), report, count=3)
    assert [e.label for e in shown] == ["c1", "c3", "c7"]  # the five named best, spread
    with Image.open(io.BytesIO(thumbnail(shown[0].path))) as small:
        assert small.size == (320, 240)
