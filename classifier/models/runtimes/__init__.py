"""Networks as prediction runs them: compiled once (a bundle's classifier, the animal detector), cached on disk.

Three runtimes, each compiled from the network itself and loaded without fastai:

- `torch`: the network traced with TorchScript and frozen (weights folded in as constants), as two parts
  (`CompiledNetwork`).
- `onnx`: the network exported to ONNX (opset 18) and run by ONNX Runtime's CPU engine.
- `openvino`: the same ONNX file, compiled by OpenVINO's CPU plugin when it is loaded.

and three precisions: `fp32` (every runtime), `int8` (`onnx` and `openvino`) and `bf16` (`openvino` only).

One module a job, each importing only those above it in this list:

- `choices`: the runtimes and precisions, which go together, the machine's default, its cores.
- `cache`: where a compiled network is kept and under what key; entries written whole.
- `calibration`: the bundle's own photos on this disk, for int8 calibration and bf16's agreement check.
- `compiling`: tracing, ONNX export and int8 quantization, into the cache.
- `wrappers`: the networks as loaded (`CompiledNetwork`, `OnnxRuntimeNetwork`, `OpenVinoNetwork`).
- `background`: compiling in a child process, and serving the torch network meanwhile (`Upgrading`).
- `loading`: `load_model`, the linear head and the detector's network, compiled first where not cached.
"""

from classifier.models.runtimes.background import Upgrading
from classifier.models.runtimes.cache import (
    CACHE_VARIABLE,
    DETECTOR_INT8_RECIPE,
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
from classifier.models.runtimes.compiling import _Normalised as _Normalised  # tests build a CompiledNetwork
from classifier.models.runtimes.compiling import compile_bundle, save_int8, save_onnx, save_traced
from classifier.models.runtimes.loading import (
    LoadedModel,
    load_detector_network,
    load_linear_head,
    load_model,
    load_network,
)
from classifier.models.runtimes.wrappers import (
    CompiledNetwork,
    OnnxRuntimeNetwork,
    OpenVinoNetwork,
    openvino_core,
)

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
