"""Loading a compiled network from the cache: a bundle's classifier (`load_model`), its linear head, the
detector's network; each compiled first where the cache lacks it (in this process, or in a child process
with `isolate`: `classifier.models.runtimes.background`). A damaged cache entry is removed and reported in
one line, so the next load compiles it again.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from classifier.models.bundles import Bundle, BundleError, checked_model_sha256, load_learner
from classifier.models.heads import LinearScores
from classifier.models.runtimes.background import Upgrading, _compile_in_child, _start_child
from classifier.models.runtimes.cache import HEAD_FILE, compiled_path, detector_path, linear_head_path
from classifier.models.runtimes.choices import FP32, ONNX, TORCH, check_choice, default_runtime
from classifier.models.runtimes.compiling import _compile_classifier, _compile_detector
from classifier.models.runtimes.wrappers import CompiledNetwork, OnnxRuntimeNetwork, OpenVinoNetwork

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class LoadedModel:
    """A bundle's compiled network on `device`, ready for `classifier.models.predict.Predictor`."""

    bundle: Bundle
    network: nn.Module  # or an OpenVINO / ONNX Runtime network called the same way
    device: torch.device
    runtime: str = "torch"
    precision: str = "fp32"

    @property
    def classes(self) -> tuple[str, ...]:
        return self.bundle.classes


def load_model(
    bundle: Bundle,
    device: str | torch.device | None = None,
    verify: bool = True,
    isolate: bool = False,
    *,
    runtime: str | None = None,
    precision: str = "fp32",
) -> LoadedModel:
    """The bundle's network, compiled for this machine, on `device` (GPU if any).

    The model file's SHA-256 is checked against the report first. `runtime`: torch, openvino or onnx
    (default: `default_runtime()`; openvino and onnx run on the CPU); `precision`: fp32, bf16
    (openvino) or int8 (openvino, onnx). `isolate`: when the network is not compiled yet, compile it in
    a child process, so this one never imports fastai (the app's memory); openvino and onnx then serve the
    torch network until theirs is compiled. `verify=False` skips the hash check; only for files you made
    yourself in this process (tests).
    """
    runtime = runtime or default_runtime()
    check_choice(runtime, precision)
    sha256 = checked_model_sha256(bundle, verify)
    if runtime != TORCH:
        target = torch.device("cpu")
    else:
        target = torch.device(device) if device is not None else _default_device()
    network = load_network(bundle, sha256, target, isolate=isolate, runtime=runtime, precision=precision)
    return LoadedModel(bundle=bundle, network=network, device=target, runtime=runtime, precision=precision)


def _default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def load_network(
    bundle: Bundle,
    sha256: str,
    device: torch.device,
    *,
    isolate: bool = False,
    runtime: str = TORCH,
    precision: str = FP32,
) -> Any:
    """The compiled network of the model file whose hash is `sha256`, compiled first when not cached.

    With `isolate`, a network not compiled yet is compiled in a child process; for `openvino` and `onnx`
    that runs in the background while the torch network serves (see `Upgrading`).
    """
    check_choice(runtime, precision)
    path = compiled_path(bundle, sha256, runtime, precision)
    if not path.is_file():
        if isolate and runtime != TORCH:
            current = load_network(bundle, sha256, device, isolate=True)
            child = _start_child(bundle, runtime, precision)
            return Upgrading(current, child, lambda: _read(path, device, runtime, precision))
        if isolate:
            _compile_in_child(bundle, TORCH, FP32)
        else:
            _compile_classifier(load_learner(bundle, verify=False).model, bundle, sha256, runtime, precision)
    return _read(path, device, runtime, precision)


def load_linear_head(bundle: Bundle, *, isolate: bool = False) -> LinearScores | None:
    """The bundle's head as arrays when it is a linear one (a linear probe's, such as serengeti's), else
    None; compiled first when not cached (in a child process with `isolate`, as the app does)."""
    recipe = bundle.report.get("recipe")
    if not isinstance(recipe, dict) or recipe.get("head") != "linear":
        return None
    path = linear_head_path(bundle, bundle.model_sha256 or "")
    if not path.is_file():
        if isolate:
            _compile_in_child(bundle, TORCH, FP32)
        else:
            _compile_classifier(load_learner(bundle).model, bundle, bundle.model_sha256 or "", TORCH, FP32)
    return LinearScores.from_bytes(path.read_bytes())


def load_detector_network(
    build: Callable[[], nn.Module],
    sha256: str,
    input_size: int,
    device: torch.device,
    *,
    runtime: str = TORCH,
    precision: str = FP32,
    calibration: Callable[[], Iterable[np.ndarray]] | None = None,
) -> Any:
    """The detector's network (`build` makes it from the weights whose SHA-256 is `sha256`), compiled for
    `runtime` at this input size and cached under that hash; `calibration` gives int8 its (1, 3, S, S)
    inputs. Needs torch only (no fastai)."""
    check_choice(runtime, precision)
    path = detector_path(sha256, input_size, runtime, precision)
    if not path.is_file():
        _compile_detector(build(), sha256, input_size, runtime, precision, calibration)
    return _read(path, device, runtime, precision, parts=False)


def _read(path: Path, device: torch.device, runtime: str, precision: str, *, parts: bool = True) -> Any:
    """The cache entry at `path`, loaded; `parts`: a torch entry holds body and head (the classifier's),
    else one graph (the detector's)."""
    try:
        if runtime == TORCH:
            return _read_torch(path, device, parts)
        if runtime == ONNX:
            return OnnxRuntimeNetwork(path, precision)
        return OpenVinoNetwork(path, precision)
    except Exception as exc:  # a damaged cache entry: compile it again next time
        if isinstance(exc, BundleError):
            raise
        path.unlink(missing_ok=True)
        text = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise BundleError(f"{path}: the compiled network could not be read ({text}); try again.") from None


def _read_torch(path: Path, device: torch.device, parts: bool) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if not parts:
            return torch.jit.load(str(path), map_location=device).eval()
        extra = {HEAD_FILE: ""}
        body = torch.jit.load(str(path), map_location=device, _extra_files=extra)
        if not extra[HEAD_FILE]:
            raise RuntimeError(f"no {HEAD_FILE} inside")
        head = torch.jit.load(io.BytesIO(extra[HEAD_FILE]), map_location=device)
    return CompiledNetwork(body, head).eval()
