"""Where a compiled network is kept, and under what key.

A bundle's learner is unpickled once per model file to compile it; the result is cached under the model
file's SHA-256, the report's image size and classes, the precision and the version of the library that
wrote the file (torch for the traced and exported networks, onnxruntime too for an int8 one), and every
later load reads only that file. The detector's network (`classifier.models.yolox`, no fastai) is cached under
its weights' SHA-256 and input size.

The cache lives in `$WILDLIFE_CACHE_DIR`, else `$XDG_CACHE_HOME/wildlife-classifier`, else
`~/.cache/wildlife-classifier`. A cache entry is written whole (a temporary file, then a rename), so two
processes compiling the same model at once leave one good file. OpenVINO keeps its own compiled form of
each file there too (`openvino/`), so a process start need not compile the ONNX file again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from classifier.models.bundles import Bundle
from classifier.models.runtimes.choices import FP32, INT8, TORCH

CACHE_VARIABLE = "WILDLIFE_CACHE_DIR"
# What the quantizer is asked for, in the cache key: another recipe is another file. The classifier: every
# op; the detector: the layers with weights only (QUANTIZED_OPS, see compiling.save_int8).
INT8_RECIPE, DETECTOR_INT8_RECIPE = "-all-w7", "-conv-w7"
# What a classifier's cache entry holds (torch: body and head; exported: logits and pooled features);
# part of its name, so older entries compile again.
LAYOUT = "body+head, scores+features"
HEAD_FILE = "head.pt"


def cache_root() -> Path:
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wildlife-classifier"


def _versions(runtime: str, precision: str, recipe: str = INT8_RECIPE) -> str:
    """The libraries whose version shapes the file: torch (trace or export), onnxruntime (its quantizer)."""
    text = f"torch{torch.__version__}"
    if precision == INT8:
        from importlib.metadata import version

        text += f"-ort{version('onnxruntime')}-int8{recipe}"
    return text.replace("+", "-")


def _suffix(runtime: str) -> str:
    return ".pt" if runtime == TORCH else ".onnx"


def compiled_path(bundle: Bundle, sha256: str, runtime: str = TORCH, precision: str = FP32) -> Path:
    """The cache entry of the model file with this hash, read as this report reads it (image size and
    classes: the checks a compile makes against the report hold only for that report). `bf16` is a
    setting OpenVINO compiles the float32 file with: the same entry."""
    reading = hashlib.sha256(
        json.dumps([LAYOUT, bundle.image_size, list(bundle.classes)]).encode()
    ).hexdigest()
    stored = INT8 if precision == INT8 else FP32
    name = f"{sha256}-{reading[:12]}-{_versions(runtime, stored)}{_suffix(runtime)}"
    return cache_root() / "networks" / name


def linear_head_path(bundle: Bundle, sha256: str) -> Path:
    """The cache entry of a bundle's linear head as arrays (`classifier.models.heads.LinearScores`)."""
    return compiled_path(bundle, sha256).with_suffix(".linear.npz")


def detector_path(sha256: str, input_size: int, runtime: str = TORCH, precision: str = FP32) -> Path:
    """The cache entry of the detector's weights with this hash at this input size."""
    stored = INT8 if precision == INT8 else FP32
    name = f"detector-{sha256}-{input_size}px-{_versions(runtime, stored, DETECTOR_INT8_RECIPE)}{_suffix(runtime)}"
    return cache_root() / "networks" / name


@contextmanager
def written_whole(target: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside `target`; renamed to `target` when the block ends without an error."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=suffix, delete=False) as handle:
        partial = Path(handle.name)
    try:
        yield partial
        partial.chmod(0o644)  # a cache shared by the users of one machine, as pip's is
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
