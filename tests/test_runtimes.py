"""The compiled network prediction runs: the learner's answers, cached per model file, no fastai needed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from classifier import runtimes
from classifier.bundles import BundleError, load_learner, load_model, read_bundle
from conftest import TINY_CLASSES, TINY_SIZE, make_tiny_image

REPO = Path(__file__).resolve().parents[1]


def batch(count: int) -> torch.Tensor:
    photos = [
        make_tiny_image(TINY_CLASSES[i % 3], seed=i).resize((TINY_SIZE, TINY_SIZE)) for i in range(count)
    ]
    pixels = np.stack([np.asarray(photo, dtype=np.float32) / 255 for photo in photos])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("count", [1, 5])
def test_compiled_network_answers_as_the_learners_network_at_any_batch_size(tiny_bundle, count):
    bundle = read_bundle(tiny_bundle)
    network = load_learner(bundle).model.eval()
    compiled = load_model(bundle).network
    images = batch(count)
    with torch.inference_mode():
        expected, found = torch.softmax(network(images), 1), torch.softmax(compiled(images), 1)
    assert torch.allclose(expected, found, atol=1e-5)


def test_a_compiled_model_loads_without_unpickling_the_learner(tiny_bundle, monkeypatch):
    bundle = read_bundle(tiny_bundle)
    load_model(bundle)  # compiled (or already cached)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("the learner was unpickled again")

    monkeypatch.setattr(runtimes, "load_learner", no_unpickling)
    assert load_model(bundle).network is not None


def test_a_new_model_file_is_compiled_again(tmp_path, tiny_bundle):
    first = runtimes.compiled_path(read_bundle(tiny_bundle), "a" * 64)
    second = runtimes.compiled_path(read_bundle(tiny_bundle), "b" * 64)
    assert first != second and first.parent == second.parent == runtimes.cache_root() / "networks"


def test_the_app_process_never_imports_fastai_and_starts_without_torch(tiny_bundle, tmp_path):
    """What keeps the server small: listing bundles needs no torch; a model compiled in a child process
    is then served with torch alone (fastai, timm, torchvision, scikit-learn stay out)."""
    copy = tmp_path / "tiny"
    shutil.copytree(tiny_bundle, copy)
    script = (
        "import sys, json\n"
        "import pages.common\n"
        "from classifier.bundles import find_bundles, load_model\n"
        "[bundle] = find_bundles(sys.argv[1])\n"
        "before = sorted(m for m in ('torch', 'fastai') if m in sys.modules)\n"
        "load_model(bundle, isolate=True)\n"
        "heavy = ('fastai', 'timm', 'torchvision', 'sklearn', 'matplotlib')\n"
        "print(json.dumps({'before': before, 'after': sorted(m for m in heavy if m in sys.modules)}))\n"
    )
    env = {**os.environ, runtimes.CACHE_VARIABLE: str(tmp_path / "cache")}  # not compiled yet
    done = subprocess.run(
        [sys.executable, "-c", script, str(copy)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {"before": [], "after": []}
    assert list((tmp_path / "cache" / "networks").glob("*.pt"))


def test_a_model_that_fails_to_compile_in_the_child_is_one_line(tmp_path, tiny_bundle):
    copy = tmp_path / "tiny"
    shutil.copytree(tiny_bundle, copy)
    report = json.loads((copy / "report.json").read_text())
    (copy / "report.json").write_text(json.dumps({**report, "classes": ["cat", "dog", "emu"]}))
    os.environ[runtimes.CACHE_VARIABLE], before = str(tmp_path / "cache"), os.environ[runtimes.CACHE_VARIABLE]
    try:
        with pytest.raises(
            BundleError, match=r"^\S+model\.pkl: its classes .* different training runs"
        ) as caught:
            load_model(read_bundle(copy), isolate=True)
    finally:
        os.environ[runtimes.CACHE_VARIABLE] = before
    assert "\n" not in str(caught.value)


def test_a_damaged_cache_entry_is_one_line_and_compiled_again_next_time(tmp_path, tiny_bundle, monkeypatch):
    monkeypatch.setenv(runtimes.CACHE_VARIABLE, str(tmp_path / "cache"))
    bundle = read_bundle(tiny_bundle)
    load_model(bundle)
    [entry] = (tmp_path / "cache" / "networks").glob("*.pt")
    entry.write_bytes(entry.read_bytes()[:1000])
    with pytest.raises(BundleError, match="compiled network could not be read"):
        load_model(bundle)
    assert not entry.exists()
    assert load_model(bundle).network is not None


def test_the_compiled_parts_give_the_feature_map_and_the_heads_gradient(tiny_bundle):
    """Where the model looked needs the class score's gradient at the body's feature map: the cached
    network keeps body and head apart, and the frozen head takes gradients as the learner's does."""
    bundle = read_bundle(tiny_bundle)
    network = load_learner(bundle).model.eval()
    compiled = load_model(bundle).network
    assert isinstance(compiled, runtimes.CompiledNetwork)
    images = batch(3)
    with torch.no_grad():
        maps = compiled.body(images)
        expected = network.body((images - network.mean) / network.std)
    assert torch.allclose(maps, expected, atol=1e-4)
    found, wanted = maps.clone().requires_grad_(True), expected.clone().requires_grad_(True)
    compiled.head(found)[:, 1].sum().backward()
    network.head(wanted)[:, 1].sum().backward()
    assert found.grad is not None and torch.allclose(found.grad, wanted.grad, atol=1e-5)
