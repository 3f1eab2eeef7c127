"""Finding and loading model bundles: a broken bundle is a one-line message naming its file, never a traceback."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from classifier.models.bundles import (
    DEFAULT_BUNDLE,
    RENAMED_MODULES,
    BundleError,
    find_bundles,
    load_learner,
    read_bundle,
    resolve_bundle,
)
from classifier.models.network import WildlifeNet
from classifier.models.runtimes import load_model


def copy_bundle(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def edit_report(bundle: Path, **changes: object) -> None:
    report = json.loads((bundle / "report.json").read_text())
    report.update(changes)
    (bundle / "report.json").write_text(json.dumps(report))


def rehash(bundle: Path) -> None:
    """Make report.json's model_sha256 agree with model.pkl, as if the damage happened before export."""
    edit_report(bundle, model_sha256=hashlib.sha256((bundle / "model.pkl").read_bytes()).hexdigest())


def write_report_only(directory: Path, name: str, **fields: object) -> Path:
    directory.mkdir(parents=True)
    report = {
        "name": name,
        "title": name.title(),
        "classes": ["a", "b"],
        "image_size": 64,
        "threshold": {"value": 0.5},
        "metrics": {"accuracy": 0.5},
        **fields,
    }
    (directory / "report.json").write_text(json.dumps(report))
    return directory


def test_tiny_bundle_loads_with_its_classes(tiny_bundle):
    bundle = read_bundle(tiny_bundle)
    loaded = load_model(bundle)
    assert bundle.classes == ("blue", "green", "red")
    assert bundle.image_size == 64
    assert not loaded.network.training
    assert str(loaded.device) == "cpu"
    assert isinstance(load_learner(bundle).model, WildlifeNet)


def test_find_bundles_lists_default_first_then_by_name_and_broken_ones(tmp_path):
    write_report_only(tmp_path / "zebras", "zebras")
    write_report_only(tmp_path / "apes", "apes")
    write_report_only(tmp_path / DEFAULT_BUNDLE, DEFAULT_BUNDLE)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "report.json").write_text("{not json")
    (tmp_path / "no_report").mkdir()
    (tmp_path / "no_report" / "model.pkl").write_bytes(b"x")
    (tmp_path / "notes").mkdir()  # neither file: not a bundle at all

    bundles = find_bundles(tmp_path)

    assert [b.name for b in bundles] == [DEFAULT_BUNDLE, "apes", "broken", "no_report", "zebras"]
    broken = {b.name: b.error for b in bundles if not b.ok}
    assert "not valid JSON" in broken["broken"] and "report.json" in broken["broken"]
    assert "not found" in broken["no_report"]
    assert find_bundles(tmp_path / "missing") == []


def test_a_root_that_is_itself_a_bundle_is_found(tiny_bundle):
    assert [b.name for b in find_bundles(tiny_bundle)] == ["tiny"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"classes": []}, "'classes' must be a non-empty list"),
        ({"classes": ["a", "a"]}, "duplicate"),
        ({"image_size": "224"}, "'image_size'"),
        ({"threshold": {"value": 1.5}}, "'threshold.value'"),
    ],
)
def test_report_problems_name_the_file_and_field(tmp_path, fields, message):
    directory = write_report_only(tmp_path / "m", "m", **fields)
    with pytest.raises(BundleError, match=message) as caught:
        read_bundle(directory)
    assert str(directory / "report.json") in str(caught.value)


def test_resolve_bundle_by_name_folder_or_default(tmp_path, tiny_bundle):
    write_report_only(tmp_path / "apes", "apes")
    assert resolve_bundle("apes", tmp_path).name == "apes"
    assert resolve_bundle(None, tmp_path).name == "apes"
    assert resolve_bundle(str(tiny_bundle), tmp_path).name == "tiny"
    with pytest.raises(BundleError, match=r"no model named 'zebra' \(available: apes\)"):
        resolve_bundle("zebra", tmp_path)
    with pytest.raises(BundleError, match="no model bundle found"):
        resolve_bundle(None, tmp_path / "empty")


def test_missing_model_file_is_named(tmp_path, tiny_bundle):
    bundle = copy_bundle(tiny_bundle, tmp_path / "tiny")
    (bundle / "model.pkl").unlink()
    with pytest.raises(BundleError, match="model file not found") as caught:
        load_model(read_bundle(bundle))
    assert str(bundle / "model.pkl") in str(caught.value)


def test_truncated_model_fails_the_hash_check_before_unpickling(tmp_path, tiny_bundle):
    bundle = copy_bundle(tiny_bundle, tmp_path / "tiny")
    data = (bundle / "model.pkl").read_bytes()
    (bundle / "model.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError) as caught:
        load_model(read_bundle(bundle))
    message = str(caught.value)
    assert "model.pkl" in message and "differs from report.json" in message
    assert "unpickling runs code" in message and "\n" not in message


def test_a_different_model_file_is_refused(tmp_path, tiny_bundle):
    bundle = copy_bundle(tiny_bundle, tmp_path / "tiny")
    edit_report(bundle, model_sha256="0" * 64)
    with pytest.raises(
        BundleError, match=r"SHA-256 .* differs .* only model files written by a training run"
    ):
        load_model(read_bundle(bundle))


def test_a_report_without_hash_is_refused(tmp_path, tiny_bundle):
    bundle = copy_bundle(tiny_bundle, tmp_path / "tiny")
    report = json.loads((bundle / "report.json").read_text())
    del report["model_sha256"]
    (bundle / "report.json").write_text(json.dumps(report))
    with pytest.raises(BundleError, match="has no model_sha256"):
        load_model(read_bundle(bundle))


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # truncated
        lambda data: b"\x00" * 100,  # garbage
        lambda data: b"",  # empty
        lambda data: data[:1000] + bytes(200) + data[1200:],  # zip entries damaged
    ],
    ids=["truncated", "garbage", "empty", "damaged"],
)
def test_corrupt_model_file_is_a_one_line_error(tmp_path, tiny_bundle, damage):
    bundle = copy_bundle(tiny_bundle, tmp_path / "tiny")
    (bundle / "model.pkl").write_bytes(damage((bundle / "model.pkl").read_bytes()))
    rehash(bundle)
    with pytest.raises(BundleError) as caught:
        load_model(read_bundle(bundle))
    message = str(caught.value)
    assert message.startswith(str(bundle / "model.pkl")) and "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_pickle_needing_a_missing_module_names_it(tmp_path, tiny_bundle):
    bundle = copy_bundle(tiny_bundle, tmp_path / "tiny")
    # A pickle whose first object is a class from a module that does not exist (like `train.something`).
    (bundle / "model.pkl").write_bytes(b"\x80\x02cnot_a_real_module_xyz\nThing\nq\x00.")
    rehash(bundle)
    with pytest.raises(BundleError, match="needs module 'not_a_real_module_xyz'"):
        load_model(read_bundle(bundle))


def test_classes_that_differ_from_the_learner_are_refused(tmp_path, tiny_bundle):
    bundle = copy_bundle(tiny_bundle, tmp_path / "tiny")
    edit_report(bundle, classes=["cat", "dog", "emu"])
    with pytest.raises(
        BundleError, match=r"classes \[blue, green, red\] .* not report.json's \[cat, dog, emu\]"
    ):
        load_model(read_bundle(bundle))


def test_reordered_classes_are_refused_too(tmp_path, tiny_bundle):
    bundle = copy_bundle(tiny_bundle, tmp_path / "tiny")
    edit_report(bundle, classes=["red", "green", "blue"])
    with pytest.raises(BundleError, match="different training runs"):
        load_model(read_bundle(bundle))


def test_a_pickle_that_is_not_a_learner_is_refused(tmp_path, tiny_bundle):
    import torch

    bundle = copy_bundle(tiny_bundle, tmp_path / "tiny")
    torch.save({"weights": torch.zeros(2)}, bundle / "model.pkl")
    rehash(bundle)
    with pytest.raises(BundleError, match=r"not a classifier\.models\.network\.WildlifeNet"):
        load_model(read_bundle(bundle))


def test_a_bundle_exported_before_the_sub_packages_still_loads(tmp_path, tiny_bundle):
    bundle = copy_bundle(tiny_bundle, tmp_path / "tiny")
    renamed = {new.encode() + b"\n": old.encode() + b"\n" for old, new in RENAMED_MODULES.items()}
    with (
        zipfile.ZipFile(tiny_bundle / "model.pkl") as source,
        zipfile.ZipFile(bundle / "model.pkl", "w") as target,
    ):
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename.endswith("data.pkl"):
                old_names = sum(data.count(new) for new in renamed)
                for new, old in renamed.items():
                    data = data.replace(new, old)
            target.writestr(entry, data)
    rehash(bundle)
    assert old_names >= 2  # the network's class and the data's transforms named their modules' old paths
    assert isinstance(load_learner(read_bundle(bundle)).model, WildlifeNet)
