"""Dataset readers, filters and splits on small fixtures written in the real formats (plus the real data)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier.intake.datasets import (
    Dataset,
    DatasetError,
    ImageReader,
    Record,
    check_images,
    drop_empty,
    drop_small_classes,
    first_frames,
    guess_format,
    keep_classes,
    keep_top_classes,
    read_dataset,
    split_dataset,
)
from conftest import examples, make_tiny_image

SERENGETI_COCO = (
    "camera_traps/_coco_camera_traps_fixtures/tf_models_snapshot_serengeti_context_rcnn_demo_metadata.json"
)


def write_image(path: Path, label: str = "red", seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    make_tiny_image(label, seed=seed, size=40).save(path)
    return path


def coco_camera_traps(root: Path, *, with_files: bool = True) -> Path:
    """A LILA-style COCO Camera Traps file: 2 locations, 3 sequences, one two-species image, one empty."""
    images, annotations = [], []
    layout = [  # (file, seq, frame, location, category ids)
        ("loc1/s1_0.jpg", "s1", 0, "L1", [1]),
        ("loc1/s1_1.jpg", "s1", 1, "L1", [1, 1]),  # two zebras: still one species
        ("loc1/s2_0.jpg", "s2", 0, "L1", [0]),
        ("loc2/s3_0.jpg", "s3", 0, "L2", [1, 2]),  # zebra and wildebeest
        ("loc2/s3_1.jpg", "s3", 1, "L2", [2]),
        ("loc2/s3_2.jpg", "s3", 2, "L2", [2]),
    ]
    for index, (file, seq, frame, location, categories) in enumerate(layout):
        images.append(
            {
                "id": f"img{index}",
                "file_name": file,
                "seq_id": seq,
                "frame_num": frame,
                "seq_num_frames": 3,
                "location": location,
                "datetime": "2010-08-07 01:04:14",
                "width": 40,
                "height": 40,
            }
        )
        annotations += [
            {"id": f"a{index}_{k}", "image_id": f"img{index}", "category_id": c}
            for k, c in enumerate(categories)
        ]
        if with_files:
            write_image(root / file, seed=index)
    data = {
        "info": {"version": "1.0"},
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": 0, "name": "empty"},
            {"id": 1, "name": "zebra"},
            {"id": 2, "name": "wildebeest"},
        ],
    }
    path = root / "metadata.json"
    path.write_text(json.dumps(data))
    return path


def inat_file(root: Path) -> Path:
    """iNaturalist 2018 style: categories with supercategory (and taxonomy), images, annotations."""
    categories = [
        {"id": 0, "name": "Ursus arctos", "supercategory": "Mammalia", "kingdom": "Animalia"},
        {"id": 1, "name": "Pica pica", "supercategory": "Aves", "kingdom": "Animalia"},
        {"id": 2, "name": "Quercus robur", "supercategory": "Plantae", "kingdom": "Plantae"},
    ]
    images, annotations = [], []
    for index, category in enumerate([0, 0, 0, 1, 1, 2]):
        file = f"train_val2018/{categories[category]['supercategory']}/{category}/{index}.jpg"
        write_image(root / file, seed=index)
        images.append({"id": index, "file_name": file, "width": 40, "height": 40, "license": 1})
        annotations.append({"id": index, "image_id": index, "category_id": category})
    path = root / "train2018.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


# ------------------------------------------------------------------------------------------------ readers


def test_folder_reader_one_subfolder_per_class(tmp_path: Path) -> None:
    for label in ("otter", "seal"):
        for i in range(3):
            write_image(tmp_path / label / f"{i}.jpg", seed=i)
    (tmp_path / "_meta").mkdir()
    (tmp_path / "_meta" / "urls.txt").write_text("not a class")
    (tmp_path / "labels.csv").write_text("path,label\n")  # files at the root are not images of a class
    dataset = read_dataset(tmp_path)
    assert dataset.format == "folder" and dataset.classes == ["otter", "seal"]
    assert dataset.records[0] == Record("otter/0.jpg", "otter")
    assert split_dataset(dataset, valid_pct=0.34).method == "random"


def test_folder_reader_uses_train_valid_and_kaggle_seg_folders_as_the_split(tmp_path: Path) -> None:
    for split, n in (("seg_train", 3), ("seg_test", 1)):
        for label in ("forest", "sea"):
            for i in range(n):  # Kaggle nests seg_train/seg_train/<class>
                write_image(tmp_path / split / split / label / f"{i}.jpg", seed=i)
    dataset = read_dataset(tmp_path)
    split = split_dataset(dataset)
    assert split.method == "folders"
    assert (len(split.train), len(split.valid)) == (6, 2)
    assert split.valid[0].file == "seg_test/seg_test/forest/0.jpg"


def test_csv_reader_with_split_and_group_columns(tmp_path: Path) -> None:
    rows = [
        ("a/1.jpg", "lion", "train", "g1"),
        ("a/2.jpg", "lion", "valid", "g2"),
        ("b/1.png", "zebra", "train", "g1"),
        ("b/2.png", "zebra", "val", "g2"),
    ]
    with (tmp_path / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split", "group"])
        for row in rows:
            writer.writerow(row)
            write_image(tmp_path / row[0])
    dataset = read_dataset(tmp_path / "labels.csv")
    assert dataset.format == "csv" and dataset.root == tmp_path
    assert dataset.records[1] == Record("a/2.jpg", "lion", split="valid", group="g2")
    split = split_dataset(dataset)
    assert split.method == "csv" and [r.file for r in split.valid] == ["a/2.jpg", "b/2.png"]
    by_group = split_dataset(dataset, "location", valid_pct=0.5)
    assert {r.group for r in by_group.train}.isdisjoint({r.group for r in by_group.valid})


def test_coco_camera_traps_reader_keeps_sequences_locations_and_frames(tmp_path: Path) -> None:
    path = coco_camera_traps(tmp_path)
    assert guess_format(path) == "coco"
    dataset = read_dataset(path)
    assert dataset.format == "coco" and dataset.classes == ["empty", "wildebeest", "zebra"]
    assert dataset.records[1] == Record("loc1/s1_1.jpg", "zebra", location="L1", sequence="s1", frame=1)
    assert dataset.skipped == [
        {"file": "loc2/s3_0.jpg", "reason": "several species (zebra; wildebeest); --multi-label skip"}
    ]
    assert split_dataset(dataset).method == "sequence"


@pytest.mark.parametrize(
    ("option", "labels"), [("first", ["zebra"]), ("all", ["zebra", "wildebeest"]), ("skip", [])]
)
def test_coco_images_with_several_species_follow_the_option(
    tmp_path: Path, option: str, labels: list
) -> None:
    dataset = read_dataset(coco_camera_traps(tmp_path), multi_label=option)
    assert [r.label for r in dataset.records if r.file == "loc2/s3_0.jpg"] == labels


def test_inat_reader_selects_supercategories(tmp_path: Path) -> None:
    path = inat_file(tmp_path)
    assert guess_format(path) == "inat"
    dataset = read_dataset(path)
    assert dataset.format == "inat" and dataset.counts() == {
        "Ursus arctos": 3,
        "Pica pica": 2,
        "Quercus robur": 1,
    }
    animals = read_dataset(path, supercategories=["Mammalia", "aves"])
    assert animals.classes == ["Pica pica", "Ursus arctos"]
    assert keep_top_classes(dataset, 1).classes == ["Ursus arctos"]
    assert check_images(dataset).skipped == []


@pytest.mark.shared
def test_real_coco_camera_traps_file(shared_data: Path) -> None:
    dataset = read_dataset(shared_data / SERENGETI_COCO)  # its images are not shipped, only the metadata
    assert dataset.format == "coco" and len(dataset.records) == 4
    assert {r.label for r in dataset.records} == {"hippopotamus"}
    assert {r.sequence for r in dataset.records} == {"ASG0003041", "ASG0003042"}
    assert [r.file for r in first_frames(dataset).records] == [
        "models/research/object_detection/test_images/snapshot_serengeti/S1_E03_R3_PICT0038.jpeg",
        "models/research/object_detection/test_images/snapshot_serengeti/S1_E03_R3_PICT0040.jpeg",
    ]
    with pytest.raises(DatasetError, match=r"none of the 4 images could be used .* --image-root"):
        check_images(dataset)


@pytest.mark.shared
def test_real_folders_and_csv(shared_data: Path) -> None:
    intel = read_dataset(shared_data / "intel")
    split = split_dataset(intel)
    assert (split.method, len(split.train), len(split.valid)) == ("folders", 1500, 600)
    otters = read_dataset(shared_data / "otters")  # _meta/ is not a class
    assert otters.classes == ["river_otter", "sea_otter"]
    traps = read_dataset(shared_data / "camera_traps" / "labels.csv")
    broken = [r for r in traps.records if r.file.startswith("speciesnet_test_data/")]
    checked = check_images(traps.with_records(broken))
    assert {s["file"] for s in checked.skipped} == {
        "speciesnet_test_data/african_elephants_truncated_file.jpg"
    }
    assert "truncated" in checked.skipped[0]["reason"]


# -------------------------------------------------------------------------------------------- bad input


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file or folder"):
        read_dataset(tmp_path / "nowhere")


def test_empty_class_folder(tmp_path: Path) -> None:
    write_image(tmp_path / "lion" / "1.jpg")
    (tmp_path / "zebra").mkdir()
    with pytest.raises(DatasetError, match="class 'zebra' has no images"):
        read_dataset(tmp_path)


def test_unknown_and_unguessable_formats(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(DatasetError, match="unknown dataset format 'parquet'"):
        read_dataset(tmp_path, format="parquet")
    with pytest.raises(DatasetError, match=r"cannot tell the dataset format .* --format"):
        read_dataset(tmp_path / "data.txt")


def test_json_entry_whose_file_is_missing_is_skipped_with_its_reason(tmp_path: Path) -> None:
    path = coco_camera_traps(tmp_path)
    (tmp_path / "loc1" / "s2_0.jpg").unlink()
    checked = check_images(read_dataset(path))
    assert {"file": "loc1/s2_0.jpg", "reason": "file not found"} in checked.skipped
    assert "loc1/s2_0.jpg" not in {r.file for r in checked.records}


def test_unreadable_images_are_skipped_and_training_data_goes_on(tmp_path: Path) -> None:
    for i in range(2):
        write_image(tmp_path / "lion" / f"{i}.jpg")
    (tmp_path / "lion" / "empty.jpg").write_bytes(b"")
    (tmp_path / "lion" / "text.jpg").write_text("not a photo")
    checked = check_images(read_dataset(tmp_path))
    reasons = {s["file"]: s["reason"] for s in checked.skipped}
    assert set(reasons) == {"lion/empty.jpg", "lion/text.jpg"}
    assert "empty" in reasons["lion/empty.jpg"] and "not an image" in reasons["lion/text.jpg"]
    assert len(checked.records) == 2


def test_malformed_files_name_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"broken\.json: not a readable JSON"):
        read_dataset(tmp_path / "broken.json", format="coco")
    (tmp_path / "nokeys.json").write_text(json.dumps({"images": []}))
    with pytest.raises(DatasetError, match="no annotations, categories list"):
        read_dataset(tmp_path / "nokeys.json", format="coco")
    data = {
        "images": [{"id": 1, "file_name": "a.jpg"}],
        "categories": [{"id": 0, "name": "x"}],
        "annotations": [{"image_id": 1, "category_id": 9}],
    }
    (tmp_path / "badcat.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="annotations\\[0\\] names unknown category 9"):
        read_dataset(tmp_path / "badcat.json", format="coco")
    (tmp_path / "labels.csv").write_text("file_path,species\na.jpg,lion\n")
    with pytest.raises(DatasetError, match=r"labels\.csv: no 'path' column \(found: file_path, species\)"):
        read_dataset(tmp_path / "labels.csv")
    (tmp_path / "gaps.csv").write_text("path,label\na.jpg,lion\nb.jpg,\n")
    with pytest.raises(DatasetError, match=r"gaps\.csv: line 3 has an empty label"):
        read_dataset(tmp_path / "gaps.csv")


def test_unknown_filter_values_are_refused(tmp_path: Path) -> None:
    dataset = read_dataset(coco_camera_traps(tmp_path, with_files=False))
    with pytest.raises(DatasetError, match="no class 'zebr'"):
        keep_classes(dataset, ["zebr"])
    with pytest.raises(DatasetError, match="no supercategory reptilia"):
        read_dataset(inat_file(tmp_path / "inat"), supercategories=["Reptilia"])
    with pytest.raises(DatasetError, match="unknown --split 'station'"):
        split_dataset(dataset, "station")
    with pytest.raises(DatasetError, match="--split folders needs train/ and valid/ folders"):
        split_dataset(dataset, "folders")
    with pytest.raises(DatasetError, match=r"--valid-pct 1\.5"):
        split_dataset(dataset, "random", valid_pct=1.5)


# ---------------------------------------------------------------------------------------------- filters


def _dataset(records: list[Record]) -> Dataset:
    return Dataset(root=Path("/data"), format="coco", source="test", records=records)


def test_drop_empty_drops_that_fraction_of_empty_frames_only() -> None:
    records = [Record(f"e{i}.jpg", "empty") for i in range(100)] + [
        Record(f"z{i}.jpg", "zebra") for i in range(7)
    ]
    kept = drop_empty(_dataset(records), 0.9, seed=1)
    assert kept.counts() == {"empty": 10, "zebra": 7}
    assert drop_empty(_dataset(records), 0.9, seed=1).records == kept.records  # repeatable
    assert drop_empty(_dataset(records), 0.0).counts()["empty"] == 100
    with pytest.raises(DatasetError, match="between 0 and 1"):
        drop_empty(_dataset(records), 90)


def test_first_frame_keeps_the_lowest_frame_of_each_sequence(tmp_path: Path) -> None:
    dataset = read_dataset(coco_camera_traps(tmp_path, with_files=False), multi_label="all")
    kept = first_frames(dataset)
    assert [(r.file, r.label) for r in kept.records] == [
        ("loc1/s1_0.jpg", "zebra"),
        ("loc1/s2_0.jpg", "empty"),
        ("loc2/s3_0.jpg", "zebra"),
        ("loc2/s3_0.jpg", "wildebeest"),
    ]
    loose = _dataset(
        [
            Record("a.jpg", "x"),
            Record("b.jpg", "x", sequence="s", frame=3),
            Record("c.jpg", "x", sequence="s", frame=2),
        ]
    )
    assert [r.file for r in first_frames(loose).records] == ["a.jpg", "c.jpg"]


def test_small_classes_are_dropped() -> None:
    records = [Record(f"a{i}", "common") for i in range(5)] + [Record("b", "rare")]
    assert drop_small_classes(_dataset(records), 2).classes == ["common"]


# ----------------------------------------------------------------------------------------------- splits


@st.composite
def grouped_records(draw: st.DrawFn) -> list[Record]:
    n = draw(st.integers(2, 60))
    locations = draw(st.lists(st.sampled_from("ABCDEFG"), min_size=n, max_size=n))
    sequences = draw(st.lists(st.integers(0, 12), min_size=n, max_size=n))
    labels = draw(st.lists(st.sampled_from(["lion", "zebra", "empty"]), min_size=n, max_size=n))
    return [
        Record(f"{i}.jpg", label, location=loc, sequence=f"{loc}-{seq}")
        for i, (loc, seq, label) in enumerate(zip(locations, sequences, labels, strict=True))
    ]


@settings(max_examples=examples(150), deadline=None)
@given(
    records=grouped_records(),
    how=st.sampled_from(["location", "sequence"]),
    valid_pct=st.floats(0.05, 0.95),
    seed=st.integers(0, 10_000),
)
def test_grouped_splits_never_leak(records: list[Record], how: str, valid_pct: float, seed: int) -> None:
    dataset = _dataset(records)
    key = (lambda r: r.location) if how == "location" else (lambda r: r.sequence)
    if len({key(r) for r in records}) < 2:
        with pytest.raises(DatasetError, match="a grouped split needs two or more"):
            split_dataset(dataset, how, valid_pct, seed)
        return
    split = split_dataset(dataset, how, valid_pct, seed)
    assert {key(r) for r in split.train}.isdisjoint({key(r) for r in split.valid})
    assert sorted(split.train + split.valid, key=lambda r: int(r.file[:-4])) == records
    assert split.train and split.valid
    assert split_dataset(dataset, how, valid_pct, seed) == split  # same seed, same split


@settings(max_examples=examples(60), deadline=None)
@given(labels=st.lists(st.sampled_from(["a", "b", "c"]), min_size=2, max_size=80), seed=st.integers(0, 999))
def test_random_split_is_stratified_and_keeps_every_image_once(labels: list[str], seed: int) -> None:
    dataset = _dataset([Record(f"{i}.jpg", label) for i, label in enumerate(labels)])
    if len(labels) < 2 or all(labels.count(x) < 2 for x in set(labels)):
        return
    split = split_dataset(dataset, "random", 0.25, seed)
    assert len(split.train) + len(split.valid) == len(labels)
    for label in set(labels):
        n = labels.count(label)
        in_valid = sum(r.label == label for r in split.valid)
        assert in_valid == (0 if n == 1 else min(max(round(n * 0.25), 1), n - 1))


def test_random_split_keeps_the_labels_of_one_file_together(tmp_path: Path) -> None:
    dataset = read_dataset(coco_camera_traps(tmp_path, with_files=False), multi_label="all")
    for seed in range(20):
        split = split_dataset(dataset, "random", 0.5, seed)
        assert {r.file for r in split.train}.isdisjoint({r.file for r in split.valid})


def test_image_reader_applies_exif_orientation_and_converts_to_rgb(tmp_path: Path) -> None:
    from PIL import Image

    image = Image.new("L", (60, 20), 128)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    loaded = ImageReader(16)(tmp_path / "rotated.jpg")
    assert loaded.mode == "RGB" and loaded.size == (20, 60)
    assert type(loaded).__name__ == "PILImage"
