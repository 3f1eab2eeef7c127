"""Networks as prediction runs them: compiled once (a bundle's classifier, the animal detector), cached on disk.

Three runtimes, each compiled from the network itself and loaded without fastai:

- `torch`: the network traced with TorchScript and frozen (weights folded in as constants), as two parts
  (`CompiledNetwork`, below).
- `onnx`: the network exported to ONNX (opset 18) and run by ONNX Runtime's CPU engine.
- `openvino`: the same ONNX file, compiled by OpenVINO's CPU plugin when it is loaded.

and three precisions: `fp32` (every runtime), `int8` (`onnx` and `openvino`: the ONNX file quantized by
ONNX Runtime's static quantizer: QDQ, per-channel int8 weights with their range reduced to 7 bits,
uint8 activations calibrated on the bundle's own training photos; the detector's on its layers with
weights only, calibrated on 48 of them; both runtimes run that one file) and `bf16`
(`openvino` only: its CPU plugin's bfloat16 inference, about twice as fast on a CPU with native bf16
instructions; elsewhere it runs float32, and `precision_in_use` says so). Which precision the command
line's default (`auto`) picks for each network is `classifier.models.precision`'s.

A bundle's learner is unpickled once per model file to compile it; the result is cached under the model
file's SHA-256, the report's image size and classes, the precision and the version of the library that
wrote the file (torch for the traced and exported networks, onnxruntime too for an int8 one), and every
later load reads only that file. The detector's network (`classifier.models.yolox`, no fastai) is cached under
its weights' SHA-256 and input size. `isolate=True` compiles in a child process (`python -m classifier
compile`, which compiles the bundle's detector too), so a process that never had fastai (the app) never
gets it, nor the memory a compile leaves behind; and, for `openvino` and `onnx`, serves the traced torch
network meanwhile (`Upgrading`), so a first visitor waits no longer than for the torch runtime alone.

The torch runtime compiles a bundle's network as two parts, run one after the other (`CompiledNetwork`):
the body (RGB in [0, 1], normalised inside -> the last feature map) and the head (feature map -> class
scores). Where the model looked (`classifier.models.explain`) needs the gradient of a class score with respect
to that feature map; one frozen graph of the whole network gives a gradient with respect to its input
alone (freezing inlines every layer, so no feature map is left to ask for, nor hooks to ask with). A
frozen head still takes gradients: its weights are constants, its input need not be. Measured on the
serengeti bundle (1 thread, 260 px): whole graph 72.0 ms, the two parts 71.7 ms a photo, the same answers
to 1e-5; the head's backward pass 2.3 ms; the file 2 kB larger. Both parts live in one cache file: the
body is the saved module, the head rides in it as an extra file (`HEAD_FILE`). The onnx and openvino
runtimes run the whole network as one graph (they serve prediction, not explanations).

The cache lives in `$WILDLIFE_CACHE_DIR`, else `$XDG_CACHE_HOME/wildlife-classifier`, else
`~/.cache/wildlife-classifier`. A cache entry is written whole (a temporary file, then a rename), so two
processes compiling the same model at once leave one good file. OpenVINO keeps its own compiled form of
each file there too (`openvino/`), so a process start need not compile the ONNX file again.

Every network loaded here is called alike: `network(batch)` with a float tensor (N, 3, H, W) as the
predictor and the detector build it (any memory format), returning a float tensor (the classifier's
logits, the detector's raw boxes). A classifier also answers `network.scores_and_features(batch)`: its
logits and the pooled backbone features they were computed from (N, C), which prediction keeps
(`classifier.models.embeddings`) so that a model adapted to a site is fitted and applied without running
the backbone again. Every runtime computes both in the one pass: the exported graphs have two outputs.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from classifier.models.bundles import Bundle, BundleError, checked_model_sha256, load_learner
from classifier.models.heads import LinearScores
from classifier.models.runtimes.cache import (
    CACHE_VARIABLE,
    DETECTOR_INT8_RECIPE,
    HEAD_FILE,
    INT8_RECIPE,
    cache_root,
    compiled_path,
    detector_path,
    linear_head_path,
    written_whole,
)
from classifier.models.runtimes.calibration import (
    CALIBRATION_FRAMES,
    CALIBRATION_PHOTOS,
    VALIDATION_PHOTOS,
    _classifier_calibration,
    calibration_photos,
    validation_photos,
)
from classifier.models.runtimes.choices import (
    APP_RUNTIME,
    BF16,
    DEFAULT_RUNTIME,
    FP32,
    INT8,
    LIBRARY,
    ONNX,
    OPENVINO,
    PRECISIONS,
    RUNTIME_VARIABLE,
    RUNTIMES,
    SUPPORTED,
    TORCH,
    available,
    check_choice,
    default_runtime,
    default_workers,
)

if TYPE_CHECKING:
    import numpy as np

    from classifier.models.network import WildlifeNet

__all__ = [
    "APP_RUNTIME",
    "BF16",
    "CACHE_VARIABLE",
    "CALIBRATION_FRAMES",
    "CALIBRATION_PHOTOS",
    "DEFAULT_RUNTIME",
    "DETECTOR_INT8_RECIPE",
    "FP32",
    "INT8",
    "INT8_RECIPE",
    "LIBRARY",
    "ONNX",
    "OPENVINO",
    "PRECISIONS",
    "RUNTIMES",
    "RUNTIME_VARIABLE",
    "SUPPORTED",
    "TORCH",
    "VALIDATION_PHOTOS",
    "CompiledNetwork",
    "LoadedModel",
    "OnnxRuntimeNetwork",
    "OpenVinoNetwork",
    "Upgrading",
    "available",
    "cache_root",
    "calibration_photos",
    "check_choice",
    "compile_bundle",
    "compiled_path",
    "default_runtime",
    "default_workers",
    "detector_path",
    "linear_head_path",
    "load_detector_network",
    "load_linear_head",
    "load_model",
    "load_network",
    "openvino_core",
    "save_int8",
    "save_onnx",
    "save_traced",
    "validation_photos",
    "written_whole",
]

TRACE_BATCH = 2  # any batch size runs afterwards; the image size is fixed by the bundle
ONNX_OPSET = 18  # OpenVINO's ONNX reader misreads opset 17's ReduceLogSumExp (the ImageNet prior's)
QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]
CLASSIFIER_OUTPUTS = ("outputs", "features")


class CompiledNetwork(nn.Module):
    """A bundle's network as two compiled parts: `body` (images -> feature map), `head` (-> logits).

    Called as one network, it answers as the learner's does; `classifier.models.explain` calls the parts."""

    def __init__(self, body: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images))

    def scores_and_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.body(images)
        return self.head(maps), maps.mean(dim=(2, 3))


class _ScoresAndFeatures(nn.Module):
    """A bundle's network for export: its logits and the pooled backbone features, two outputs."""

    def __init__(self, network: WildlifeNet) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.network.body((images - self.network.mean) / self.network.std)
        return self.network.head(maps), maps.mean(dim=(2, 3))


class _Normalised(nn.Module):
    """The backbone with the network's input normalisation in front: what `CompiledNetwork.body` runs."""

    def __init__(self, network: WildlifeNet) -> None:
        super().__init__()
        self.body = network.body
        self.register_buffer("mean", network.mean.detach().clone())
        self.register_buffer("std", network.std.detach().clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body((images - self.mean) / self.std)


# ------------------------------------------------------------------------------------------- compiling


def compile_bundle(bundle: Bundle, force: bool = False, runtime: str = TORCH, precision: str = FP32) -> Path:
    """Unpickle the learner (hash checked), compile its network for `runtime` at `precision`, write the
    cache entry; an entry already there is kept unless `force`."""
    check_choice(runtime, precision)
    target = compiled_path(bundle, bundle.model_sha256 or "", runtime, precision)
    if force or not target.is_file():
        _compile_classifier(load_learner(bundle).model, bundle, bundle.model_sha256 or "", runtime, precision)
    return target


def _compile_classifier(
    network: torch.nn.Module, bundle: Bundle, sha256: str, runtime: str, precision: str
) -> None:
    size = bundle.image_size
    target = compiled_path(bundle, sha256, runtime, precision)
    scores = getattr(network.head, "scores", None)  # a LinearHead: what a site's model is fitted from
    if scores is not None:
        with written_whole(linear_head_path(bundle, sha256)) as partial:
            partial.write_bytes(scores().to_bytes())
    if runtime == TORCH:
        save_traced(network, size, target)
    elif precision == INT8:
        fp32 = compiled_path(bundle, sha256, runtime, FP32)
        if not fp32.is_file():
            save_onnx(_ScoresAndFeatures(network), size, fp32, channels_last=True, outputs=CLASSIFIER_OUTPUTS)
        photos = calibration_photos(bundle)
        save_int8(fp32, target, _classifier_calibration(photos, size))
    else:
        save_onnx(_ScoresAndFeatures(network), size, target, channels_last=True, outputs=CLASSIFIER_OUTPUTS)


def save_traced(network: WildlifeNet, image_size: int, target: Path) -> None:
    """Trace and freeze the network's body (with its normalisation) and head; write both to `target`."""
    network = network.eval().to(memory_format=torch.channels_last)
    example = torch.zeros(TRACE_BATCH, 3, image_size, image_size).contiguous(
        memory_format=torch.channels_last
    )
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notice (torch 2.14), tracer warnings
        body = torch.jit.freeze(torch.jit.trace(_Normalised(network).eval(), example, check_trace=False))
        maps = body(example)
        head = torch.jit.freeze(torch.jit.trace(network.head.eval(), maps, check_trace=False))
    with written_whole(target) as partial, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        head_bytes = io.BytesIO()
        torch.jit.save(head, head_bytes)
        torch.jit.save(body, str(partial), _extra_files={HEAD_FILE: head_bytes.getvalue()})


def _channels_last(network: torch.nn.Module) -> torch.nn.Module:
    """The network for export, taking (N, H, W, 3): what a channels-last tensor already is in memory, so
    the runtimes read the predictor's batches without a copy."""

    class ChannelsLast(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.network(images.permute(0, 3, 1, 2))

    return ChannelsLast()


def save_onnx(
    network: torch.nn.Module,
    image_size: int,
    target: Path,
    *,
    channels_last: bool,
    outputs: tuple[str, ...] = ("outputs",),
) -> None:
    """Export to ONNX with a free batch size: input (N, H, W, 3) with `channels_last`, else (N, 3, H, W);
    one output per name in `outputs`."""
    network = network.eval()
    shape = (
        (TRACE_BATCH, image_size, image_size, 3)
        if channels_last
        else (TRACE_BATCH, 3, image_size, image_size)
    )
    module = _channels_last(network) if channels_last else network
    with written_whole(target, ".onnx") as partial, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notice
        torch.onnx.export(
            module,
            (torch.zeros(shape),),
            str(partial),
            input_names=["images"],
            output_names=list(outputs),
            dynamic_axes={"images": {0: "batch"}} | {name: {0: "batch"} for name in outputs},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


def save_int8(fp32: Path, target: Path, batches: Iterable[np.ndarray], *, weights_only: bool = False) -> None:
    """Quantize the float32 ONNX file: QDQ, int8 weights per channel, uint8 activations, calibrated on
    `batches` (what the network is fed). Weights keep 7 bits (`reduce_range`): on CPUs without VNNI
    instructions the 8-bit products saturate (measured on serengeti's 162 photos, top-1 agreement with
    float32 0.957 without, 0.994 with). `weights_only` quantizes the layers with weights alone, on the
    graph `quant_pre_process` folded: OpenVINO cannot compile the detector with its box decoding (Exp,
    the grid's Add and Mul, Concat) quantized too, and those cost little; the classifier keeps every op,
    as that recipe cost it accuracy (serengeti's 160 calibration photos: top-1 agreement 0.950, against
    0.994)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = iter(batches)

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, Any] | None:
            batch = next(batches, None)
            return None if batch is None else {"images": batch}

    with tempfile.TemporaryDirectory(dir=target.parent) as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source, partial = fp32, Path(scratch) / "int8.onnx"
        if weights_only:
            source = Path(scratch) / "prepared.onnx"
            quant_pre_process(str(fp32), str(source), skip_symbolic_shape=True)  # shapes known, graph folded
        quantize_static(
            str(source),
            str(partial),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            op_types_to_quantize=QUANTIZED_OPS if weights_only else None,
        )
        with written_whole(target, ".onnx") as whole:
            os.replace(partial, whole)


# --------------------------------------------------------------------------------------------- loading


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
        network = build()
        if runtime == TORCH:
            _save_traced_detector(network, input_size, path)
        else:
            fp32 = detector_path(sha256, input_size, runtime, FP32)
            if not fp32.is_file():
                save_onnx(network, input_size, fp32, channels_last=False)
            if precision == INT8:
                if calibration is None:
                    raise BundleError("int8 detection needs calibration frames; use --precision fp32.")
                save_int8(fp32, path, calibration(), weights_only=True)
    return _read(path, device, runtime, precision, parts=False)


def _save_traced_detector(network: torch.nn.Module, size: int, target: Path) -> None:
    example = torch.zeros(1, 3, size, size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frozen = torch.jit.freeze(torch.jit.trace(network.eval(), example, check_trace=False))
    with written_whole(target) as partial, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(frozen, str(partial))


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


def _numpy_input(batch: Any, channels_last: bool) -> np.ndarray:
    """What the exported network takes, from the predictor's tensor (or an array already so)."""
    import numpy as np

    if isinstance(batch, torch.Tensor):
        batch = batch.detach().float().cpu()
        if channels_last:
            batch = batch.permute(0, 2, 3, 1)  # a view of a channels-last tensor: no copy
        return np.ascontiguousarray(batch.numpy())
    return np.ascontiguousarray(batch, dtype=np.float32)


class _Exported:
    runtime = ""
    training = False  # as a torch module in eval mode

    def __init__(self, path: Path, precision: str) -> None:
        self.path, self.precision = path, precision

    def eval(self) -> _Exported:  # as a torch module's; the predictor calls it
        return self

    @property
    def channels_last(self) -> bool:
        return not self.path.name.startswith("detector-")


class OnnxRuntimeNetwork(_Exported):
    """An ONNX file run by ONNX Runtime on the CPU, one thread a call: the predictor runs one batch on
    each core at once (concurrent calls to one session are safe)."""

    runtime = ONNX

    def __init__(self, path: Path, precision: str, threads: int = 1) -> None:
        super().__init__(path, precision)
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.precision_in_use = precision

    def __call__(self, batch: Any) -> torch.Tensor:
        return self.scores_and_features(batch)[0]

    def scores_and_features(self, batch: Any) -> tuple[torch.Tensor, ...]:
        outputs = self.session.run(None, {self.input: _numpy_input(batch, self.channels_last)})
        return tuple(torch.from_numpy(output) for output in outputs)


_CORE: Any = None
_CORE_LOCK = threading.Lock()
# A thread's first call to any OpenVINO network runs alone. pyopenvino (2026.4.1) fills function-local
# statics on it that take the GIL inside their initialiser, so two threads' first calls at once could
# deadlock: one holding the GIL at the static's guard, the other inside the initialiser waiting for the
# GIL (seen with gdb in a `predict` that hung, 1 of a benchmark's 14 runs; two threads' first calls to the
# detector and the classifier hung 5 of 42 fresh processes, and none of 60 with this lock).
_FIRST_CALLS = threading.Lock()


def openvino_core() -> Any:
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            import openvino

            _CORE = openvino.Core()
        return _CORE


class OpenVinoNetwork(_Exported):
    """An ONNX file compiled by OpenVINO for this CPU: one stream of one thread per core (as the
    predictor runs one batch per core), an inference request per calling thread, no thread pinning (the
    cores are shared)."""

    runtime = OPENVINO

    def __init__(self, path: Path, precision: str, streams: int | None = None) -> None:
        super().__init__(path, precision)
        streams = streams or default_workers()
        config = {
            "NUM_STREAMS": streams,
            "INFERENCE_NUM_THREADS": streams,
            "ENABLE_CPU_PINNING": False,
            "INFERENCE_PRECISION_HINT": "bf16" if precision == BF16 else "f32",
            # OpenVINO's own compiled blob (keyed by the file, this config and its version): a process
            # start reads it instead of compiling the ONNX file again (serengeti, loaded 2-core machine:
            # 8-12 s compiling, 2-3 s reading).
            "CACHE_DIR": str(cache_root() / "openvino"),
        }
        self.compiled = openvino_core().compile_model(str(path), "CPU", config)
        # The hint OpenVINO settled on: <Type: 'bfloat16'> where the CPU runs bf16, else float32.
        hint = str(self.compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
        self.precision_in_use = (
            BF16 if "bfloat16" in hint or "bf16" in hint else INT8 if precision == INT8 else FP32
        )
        self._local = threading.local()

    def __call__(self, batch: Any) -> torch.Tensor:
        return self.scores_and_features(batch)[0]

    def scores_and_features(self, batch: Any) -> tuple[torch.Tensor, ...]:
        request = getattr(self._local, "request", None)
        if request is None:
            with _FIRST_CALLS:
                request = self._local.request = self.compiled.create_infer_request()
                return self._infer(request, batch)
        return self._infer(request, batch)

    def _infer(self, request: Any, batch: Any) -> tuple[torch.Tensor, ...]:
        # share_inputs: the request reads the array in place. Copying it into the request's own tensor
        # (OpenVINO's default) deadlocked two threads' first calls to the detector here (2026.4.1).
        outputs = request.infer({0: _numpy_input(batch, self.channels_last)}, share_inputs=True)
        # the request's buffers are reused by its next call
        return tuple(torch.from_numpy(outputs[i].copy()) for i in range(len(outputs)))


class Upgrading:
    """Serves one network while a child process compiles another, then switches to that one at the next
    call after the child succeeded (a child that fails leaves the first network serving)."""

    training = False

    def __init__(self, current: Any, child: subprocess.Popen, load: Callable[[], Any]) -> None:
        self.current, self.child, self.load = current, child, load
        self._lock = threading.Lock()

    @property
    def runtime(self) -> str:
        return getattr(self.current, "runtime", TORCH)

    @property
    def precision(self) -> str:
        return getattr(self.current, "precision", FP32)

    def eval(self) -> Upgrading:
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the child; True once the compiled network serves."""
        with suppress(subprocess.TimeoutExpired):
            self.child.wait(timeout)
        self._switch()
        return self.child is None

    def _switch(self) -> None:
        if self.child is None or self.child.poll() is None:
            return
        with self._lock:
            if self.child is None:
                return
            if self.child.returncode == 0:
                with suppress(BundleError):
                    self.current = self.load()
            self.child = None

    def __call__(self, batch: Any) -> Any:
        self._switch()
        return self.current(batch)

    def scores_and_features(self, batch: Any) -> tuple[torch.Tensor, ...]:
        self._switch()
        return self.current.scores_and_features(batch)


def _child_command(bundle: Bundle, runtime: str, precision: str) -> list[str]:
    # The bundle's detector too (when it has one): traced in the server instead, it left about 80 MiB
    # more resident there for good (measured), on a host whose cache starts empty.
    return [
        sys.executable,
        "-m",
        "classifier",
        "compile",
        "--model",
        str(bundle.directory),
        "--runtime",
        runtime,
        "--precision",
        precision,
    ]


def _start_child(bundle: Bundle, runtime: str, precision: str) -> subprocess.Popen:
    return subprocess.Popen(
        _child_command(bundle, runtime, precision),
        cwd=Path(__file__).resolve().parents[3],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _compile_in_child(bundle: Bundle, runtime: str, precision: str) -> None:
    done = subprocess.run(
        _child_command(bundle, runtime, precision),
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1].split("error: ", 1)[-1] if lines else f"exit status {done.returncode}"
        raise BundleError(reason)
