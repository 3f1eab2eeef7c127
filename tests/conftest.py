"""Shared fixtures: generated images whose class is predictable, a tiny trained bundle, the real data.

`tiny_bundle` is a real bundle trained by `train` (the project's own pipeline) on generated photos of
three colours, so prediction and app tests can load a true `model.pkl` + `report.json` in seconds:

- classes (sorted, as the model's vocab): `TINY_CLASSES` = ("blue", "green", "red");
- `make_tiny_image(label, seed=0, size=96)` draws a fresh photo of that class (a noisy field of its
  colour, in its own pattern of bands, with a darker square); the bundle predicts `label` for it. Also a
  fixture, `tiny_image`.
- images are 96 px JPEG and PNG files, 20 per class, in `tiny_dataset` (class sub-folders, so
  `python -m classifier evaluate --model DIR tiny_dataset` works too); the bundle's size is 64.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from pathlib import Path

# Sleeping, not spinning, OpenMP threads: on these shared cores spinning made a 3-second training run
# take a minute. Must be set before torch is first imported (conftest loads before the test modules).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pytest
from PIL import Image

from benchmarks.page_cache import drop_cached_libraries


def pytest_configure(config: pytest.Config) -> None:
    """Before any test maps them, the environment's libraries are dropped from the page cache: just after
    `pip install` (a fresh clone's first `make test`) this kernel holds them in large folios that a fault
    maps whole, and the app's memory in tests/test_hosting.py read 909-995 MiB against 776-860 once they
    are read again (benchmarks/page_cache.py)."""
    drop_cached_libraries(Path(sys.prefix))


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TINY_COLOURS = {"blue": (30, 60, 220), "green": (40, 190, 50), "red": (220, 40, 30)}
TINY_CLASSES = tuple(sorted(TINY_COLOURS))
TINY_PER_CLASS = 20
TINY_SIZE = 64


def make_tiny_image(label: str, seed: int = 0, size: int = 96) -> Image.Image:
    """A generated RGB photo of class `label` (one of TINY_CLASSES); any seed gives another one."""
    rng = np.random.default_rng([seed, TINY_CLASSES.index(label)])
    pixels = np.array(TINY_COLOURS[label], dtype=np.float64) * rng.uniform(0.8, 1.1)
    canvas = np.broadcast_to(pixels, (size, size, 3)) + rng.normal(0, 18, (size, size, 3))
    x, y = rng.integers(0, size // 2, 2)
    side = int(rng.integers(size // 6, size // 3))
    canvas[y : y + side, x : x + side] *= 0.55
    return Image.fromarray(np.clip(canvas * _stripes(label, size), 0, 255).astype(np.uint8), mode="RGB")


def _stripes(label: str, size: int) -> np.ndarray:
    """Each class's own pattern of darker bands (blue: rows, green: columns, red: checks), 1/8 of the side.

    Colour alone is not enough: ImageNet backbones are trained to look past hue, and on plain colour
    fields the frozen MobileNetV2's features of two classes lay barely apart (between/within-class
    distance 1.5), so a five-epoch run landed anywhere from 0.73 to 0.93 by seed. With the bands: 4.2.
    """
    rows, columns = np.mgrid[0:size, 0:size] // max(1, size // 8)
    band = {"blue": rows, "green": columns, "red": rows + columns}[label] % 2
    return np.where(band, 1.0, 0.6)[..., None]


def png(image: Image.Image) -> bytes:
    """A PIL image as PNG bytes (lossless: prediction sees its very pixels), for `Predictor.predict_photo`."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, *, extra: bytes = b"", idat: bytes | None = None) -> bytes:
    """A small PNG whose header claims `width` x `height` RGB pixels (a decompression bomb when huge).

    `extra` chunks go before the pixel data; `idat` is that data, zlib-compressed (default: a few zeros).
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64) if idat is None else idat
    body = png_chunk(b"IHDR", header) + extra + png_chunk(b"IDAT", pixels) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def write_tiny_dataset(root: Path, per_class: int = TINY_PER_CLASS) -> Path:
    """Class sub-folders of generated photos under `root` (JPEG, every third one PNG)."""
    for label in TINY_CLASSES:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            suffix = "png" if i % 3 == 2 else "jpg"
            make_tiny_image(label, seed=i + 1000).save(root / label / f"{label}_{i:02d}.{suffix}")
    return root


def tiny_config(data: Path, out_dir: Path, **changes):
    """The fast recipe the tiny bundle is trained with (64 px, 4 frozen + 1 unfrozen epoch)."""
    from train.recipe import TrainConfig

    options = {
        "data": data,
        "name": "tiny",
        "title": "Tiny colours",
        "out_dir": out_dir / "models",
        "runs_dir": out_dir / "runs",
        "backbone": "mobilenet_v2",
        "sizes": (TINY_SIZE,),
        "frozen_epochs": 4,
        "unfrozen_epochs": 1,
        # Measured over seeds 0-11 and 1-2 torch threads: with these three settings every run reached
        # 1.0 on its 15 held-out photos and on 60 fresh ones. With the ones before (lr 1e-2, dropout 0.5,
        # batch-norm statistics re-estimated from 8-photo batches) the same code gave 0.73-0.93 by seed,
        # so a library update, which changes the random stream, failed the bundle on a fresh machine.
        "lr": 1e-3,
        "dropout": 0.0,
        "freeze_bn": True,
        "lr_find_iters": 12,
        "batch_size": 8,
        "workers": 0,
        "valid_pct": 0.25,
        "patience": 0,
        "lr_mult": 100.0,
        **changes,
    }
    return TrainConfig(**options)


def write_tiny_species_notes(root: Path) -> Path:
    """`root/tiny.yaml`: notes for red and green (green names red as a look-alike), none for blue."""
    import yaml

    red = {
        "kind": "habitat",
        "common_name": "Red field",
        "description": "A field that is mostly red.",
        "wildlife": "Ladybirds.",
        "threats": "Fading.",
        "conservation": "Shade.",
        "sources": [{"title": "Red", "url": "https://en.wikipedia.org/wiki/Red"}],
    }
    green = {
        **red,
        "common_name": "Green field",
        "look_alikes": [{"species": "red", "how_to_tell": "Colour."}],
    }
    book = {"bundle": "tiny", "title": "Tiny colours", "species": {"red": red, "green": green}}
    (root / "tiny.yaml").write_text(yaml.safe_dump(book), encoding="utf-8")
    return root


def write_tiny_examples(bundle: Path) -> Path:
    """`bundle/examples/`: one generated example photo per tiny class, credited as generated."""
    from classifier.models.bundle_photos import example_jpeg, write_examples

    chosen = {
        label: (example_jpeg(make_tiny_image(label, seed=500, size=160)), f"{label}/generated.jpg", None)
        for label in TINY_CLASSES
    }
    return write_examples(bundle / "examples", chosen, "generated test photos", "CC0-1.0")


@pytest.fixture(scope="session", autouse=True)
def runtime_cache() -> Path:
    """Compiled networks and kept embeddings (classifier/models/runtimes/) go to the tests' own cache,
    for every process the run starts too, not to the user's: entries are named by the content they were
    compiled from, so a second run reads them instead of compiling again. (The variable's name is
    written here: importing the runtimes would import torch for every test.)"""
    folder = cache_folder() / "runtime"
    os.environ["WILDLIFE_CACHE_DIR"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder dataset of generated photos: one sub-folder per class in TINY_CLASSES."""
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(scope="session")
def tiny_training(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    """The `TrainResult` of the tiny run (bundle path, report, timings): trained once per content of the
    code and the recipe (`cache_folder()` / "tiny-<key>"), then read back, as any bundle is."""
    return cached_training("tiny", tiny_dataset, tmp_path_factory)


def cached_training(name: str, data: Path, tmp_path_factory: pytest.TempPathFactory, **changes):
    """A tiny run's `TrainResult`, trained when the cache has none for this code and recipe (its bundle
    copied to this session's temporary folder, so a test may write beside it). The photos are generated
    alike every run: the report names this run's copy of them, as if trained on it."""
    import json
    import shutil

    from train import train
    from train.pipeline import TrainResult

    cached = cache_folder() / f"{name}-{_code_key(sorted(changes.items()))}"
    if not (cached / "result.json").is_file():
        result = train(
            tiny_config(data, tmp_path_factory.mktemp(f"{name}_run"), name=name, **changes), quiet=True
        )
        shutil.rmtree(cached, ignore_errors=True)
        shutil.copytree(result.bundle, cached / name)
        timing = {"seconds": result.seconds, "rate": result.train_images_per_second, "data": str(data)}
        (cached / "result.json").write_text(json.dumps(timing), encoding="utf-8")
    bundle = tmp_path_factory.mktemp(f"{name}_bundle") / name
    shutil.copytree(cached / name, bundle)
    timing = json.loads((cached / "result.json").read_text(encoding="utf-8"))
    text = (bundle / "report.json").read_text(encoding="utf-8")
    (bundle / "report.json").write_text(
        text.replace(json.dumps(timing["data"])[1:-1], json.dumps(str(data))[1:-1])
    )
    report = json.loads((bundle / "report.json").read_text(encoding="utf-8"))
    return TrainResult(bundle, report, timing["seconds"], timing["rate"])


def examples(count: int) -> int:
    """Hypothesis examples for a property: `count`, or a tenth of it (at least 10) for `make test-fast`
    (HYPOTHESIS_FAST=1), the inner loop."""
    return max(10, count // 10) if os.environ.get("HYPOTHESIS_FAST") else count


def cache_folder() -> Path:
    """Where the test run keeps what only its code changes (trained tiny bundles, compiled networks):
    `$WILDLIFE_TEST_CACHE`, else the user's cache folder. A fresh machine fills it on its first run."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(os.environ.get("WILDLIFE_TEST_CACHE") or Path(base) / "wildlife-classifier-tests")


def _code_key(extra: object) -> str:
    """A hash of everything a trained tiny bundle depends on: the library's and the training's code, this
    file (the recipe and the generated photos), and the versions of the libraries that train it."""
    import hashlib
    from importlib.metadata import version

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(repr(extra).encode())
    for path in sorted([*root.glob("classifier/**/*.py"), *root.glob("train/**/*.py"), Path(__file__)]):
        digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    for package in ("torch", "fastai", "timm", "numpy", "pillow"):
        digest.update(version(package).encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def tiny_bundle(tiny_training) -> Path:
    """Path of a bundle folder (model.pkl + report.json) trained on `tiny_dataset`; see the module doc."""
    return tiny_training.bundle


@pytest.fixture(scope="session")
def tiny_image():
    """`make_tiny_image`: label -> a generated photo the tiny bundle classifies as that label."""
    return make_tiny_image


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the project, or skip the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the real images in {SHARED_DATA}")
    return SHARED_DATA
