"""Training: the tiny end-to-end run, the exported learner in a fresh process, resume, the command line."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from classifier.results.report import read_report
from conftest import TINY_CLASSES, TINY_SIZE, make_tiny_image, tiny_config, write_tiny_dataset

REPO = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter where `train` cannot be imported: the bundle must need only `classifier`.
FRESH_LOAD = """
import json, pickle, sys, types
sys.modules["train"] = None
import numpy as np, torch
from fastai.learner import load_learner
from PIL import Image
sys.path.insert(0, sys.argv[3])
from conftest import make_tiny_image

modules = set()
class Recording(pickle.Unpickler):
    def find_class(self, module, name):
        modules.add(f"{module}:{name}")
        return super().find_class(module, name)
torch.load(sys.argv[1], map_location="cpu", weights_only=False,
           pickle_module=types.SimpleNamespace(Unpickler=Recording, load=pickle.load, __name__="pickle"))

learn = load_learner(sys.argv[1])
model = learn.model.eval()
size = int(sys.argv[2])
answers = {}
for label in ("blue", "green", "red"):
    image = make_tiny_image(label, seed=777).resize((size, size), Image.BILINEAR)
    batch = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.inference_mode():
        answers[label] = str(learn.dls.vocab[int(model(batch).argmax())])
print(json.dumps({"answers": answers, "vocab": list(learn.dls.vocab), "modules": sorted(modules),
                  "model": type(model).__module__ + "." + type(model).__name__}))
"""


def test_tiny_bundle_has_model_and_complete_report(tiny_bundle: Path, tiny_dataset: Path) -> None:
    report = read_report(tiny_bundle / "report.json")  # validates the whole schema
    assert report["classes"] == list(TINY_CLASSES)
    assert report["image_size"] == TINY_SIZE
    assert report["model_sha256"] == hashlib.sha256((tiny_bundle / "model.pkl").read_bytes()).hexdigest()
    assert report["recipe"]["backbone"] == "mobilenet_v2"
    assert report["data"] | {"n_train": 45, "n_valid": 15} == report["data"]
    assert [row["stage"] for row in report["history"]] == ["frozen"] * 4 + ["unfrozen"]
    assert all(row["seconds"] > 0 for row in report["history"])
    assert report["metrics"]["accuracy"] >= 0.9
    for loss in report["top_losses"]:  # named by their path in the dataset, never copied
        assert (tiny_dataset / loss["file"]).is_file()
    assert sorted(p.name for p in tiny_bundle.iterdir()) == ["model.pkl", "report.json"]


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "threads"), [(1, 1), (5, 2)])
def test_tiny_recipe_separates_the_colours_whatever_the_seed_and_thread_count(
    tmp_path: Path, seed: int, threads: int
) -> None:
    """A library update changes the random stream as a new seed does: the fixture must not hang on one."""
    import torch

    from classifier.models.bundles import read_bundle
    from classifier.models.predict import Predictor
    from classifier.models.runtimes import load_model
    from train import train

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        data = write_tiny_dataset(tmp_path / "data")
        result = train(tiny_config(data, tmp_path, seed=seed), quiet=True)
    finally:
        torch.set_num_threads(before)
    assert result.report["metrics"]["accuracy"] == 1.0
    predictor = Predictor(load_model(read_bundle(result.bundle)))
    for label in TINY_CLASSES:
        for photo in range(5):
            prediction = predictor.predict_image(make_tiny_image(label, seed=photo))
            assert prediction.label == label and prediction.confidence >= 0.5, (label, photo, prediction)


@pytest.mark.slow
def test_exported_learner_loads_and_predicts_in_a_fresh_process(tiny_bundle: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH_LOAD,
            str(tiny_bundle / "model.pkl"),
            str(TINY_SIZE),
            str(REPO / "tests"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["answers"] == {label: label for label in TINY_CLASSES}
    assert result["vocab"] == list(TINY_CLASSES)
    assert result["model"] == "classifier.models.network.WildlifeNet"
    # cloudpickle's _builtin_type rebuilds types.MethodType (fastai's own bound methods); any other
    # cloudpickle helper means a function or class was pickled by value (a lambda, a local function).
    foreign = [
        m
        for m in result["modules"]
        if m.split(".")[0] in {"train", "__main__", "conftest"}
        or (m.startswith("cloudpickle") and not m.endswith(":_builtin_type"))
    ]
    assert not foreign, f"the pickle needs {foreign}"


def test_exported_pickle_carries_no_path_of_the_training_data(tiny_bundle: Path) -> None:
    with zipfile.ZipFile(tiny_bundle / "model.pkl") as archive:
        pickled = b"".join(archive.read(name) for name in archive.namelist() if name.endswith(".pkl"))
    trained_on = json.loads((tiny_bundle / "report.json").read_text())["data"]["root"]  # the run's own folder
    assert trained_on.encode() not in pickled
    assert b"ImageReader" in pickled  # images load through classifier.intake.datasets, as in training


def test_resume_continues_after_the_last_finished_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from train import train
    from train.checkpoint import EpochRecorder

    data = write_tiny_dataset(tmp_path / "data", per_class=8)
    config = tiny_config(data, tmp_path, frozen_epochs=2, unfrozen_epochs=1, lr=None, name="resumable")
    original = EpochRecorder.after_epoch

    def interrupted(self: EpochRecorder) -> None:
        original(self)
        if len(self.run.history) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(EpochRecorder, "after_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config, quiet=True)
    progress = json.loads((tmp_path / "runs" / "resumable" / "progress.json").read_text())
    assert (progress["stage"], progress["epochs_done"], len(progress["history"])) == (0, 2, 2)
    assert progress["lr_find"]["valley"] or progress["lr_find"]["fallback"]
    assert not (tmp_path / "models" / "resumable").exists()

    monkeypatch.setattr(EpochRecorder, "after_epoch", original)
    result = train(dataclasses.replace(config, resume=True), quiet=True)
    history = result.report["history"]
    assert history[:2] == progress["history"]  # not trained again
    assert [row["stage"] for row in history] == ["frozen", "frozen", "unfrozen"]
    assert result.report["lr_find"] == progress["lr_find"]  # the finder did not run again
    assert (result.bundle / "model.pkl").is_file()


def test_resume_refuses_a_changed_recipe(tmp_path: Path) -> None:
    from train.checkpoint import ResumeError, RunState, start_run

    RunState(tmp_path, {"sizes": [64], "workers": 0}, ["a", "b"]).save()
    with pytest.raises(ResumeError, match="other options \\(sizes\\)"):
        start_run(tmp_path, {"sizes": [96], "workers": 0}, ["a", "b"], resume=True)
    assert start_run(tmp_path, {"sizes": [64], "workers": 4}, ["a", "b"], resume=True).classes == ["a", "b"]
    with pytest.raises(ResumeError, match="nothing to resume"):
        start_run(tmp_path / "elsewhere", {}, [], resume=True)


def test_command_line_options_are_the_dataclass_fields_with_their_defaults() -> None:
    from train.command_line import config_from_args
    from train.recipe import TrainConfig, build_parser

    parser = build_parser()
    help_text = " ".join(parser.format_help().split())
    assert "(default: 224)" in help_text and "--no-augment" in help_text
    assert "--balance {none,weighted,oversample}" in help_text
    config = config_from_args(["--data", "x"])
    defaults = TrainConfig(data=Path("x"))
    assert config == defaults
    parsed = config_from_args(
        ["--data", "x", "--sizes", "128,192", "--classes", "zebra, lion", "--no-augment"]
    )
    assert parsed.sizes == (128, 192) and parsed.classes == ("zebra", "lion") and parsed.augment is False
    for spec in dataclasses.fields(TrainConfig):
        assert "--" + spec.name.replace("_", "-") in help_text


def test_bad_data_is_one_line_on_stderr_and_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from train.__main__ import main

    assert main(["--data", str(tmp_path / "nowhere"), "--out-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "no such file or folder" in error and "\n" not in error


def test_recipe_refuses_impossible_values() -> None:
    from train.recipe import RecipeError, TrainConfig, check

    with pytest.raises(RecipeError, match="--sizes"):
        check(TrainConfig(data=Path("x"), sizes=(16,)))
    with pytest.raises(RecipeError, match="not both 0"):
        check(TrainConfig(data=Path("x"), frozen_epochs=0, unfrozen_epochs=0))


def test_summary_names_metrics_files_and_time(tiny_training) -> None:
    from train.__main__ import summary

    text = summary(tiny_training)
    assert "accuracy" in text and "macro-F1" in text and "model.pkl" in text and "images/s" in text


def test_weighted_loss_oversampling_and_no_augmentation_train(tmp_path: Path) -> None:
    from train import train

    data = write_tiny_dataset(tmp_path / "data", per_class=6)
    for balance in ("weighted", "oversample"):
        config = tiny_config(
            data,
            tmp_path,
            name=balance,
            balance=balance,
            augment=False,
            label_smoothing=0.0,
            frozen_epochs=1,
            unfrozen_epochs=1,
            patience=1,
        )
        result = train(config, quiet=True)
        assert result.report["recipe"]["balance"] == balance
        assert len(result.report["history"]) == 2
