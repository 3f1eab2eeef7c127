"""The compiled networks as loaded: torch's two parts, and the ONNX file run by ONNX Runtime or OpenVINO.

Every network loaded here is called alike: `network(batch)` with a float tensor (N, 3, H, W) as the
predictor and the detector build it (any memory format), returning a float tensor (the classifier's
logits, the detector's raw boxes). A classifier also answers `network.scores_and_features(batch)`: its
logits and the pooled backbone features they were computed from (N, C), which prediction keeps
(`classifier.models.embeddings`) so that a model adapted to a site is fitted and applied without running
the backbone again. Every runtime computes both in the one pass: the exported graphs have two outputs.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from classifier.models.runtimes.cache import cache_root
from classifier.models.runtimes.choices import BF16, FP32, INT8, ONNX, OPENVINO, default_workers

if TYPE_CHECKING:
    import numpy as np


class CompiledNetwork(nn.Module):
    """A bundle's network as two compiled parts: `body` (images -> feature map), `head` (-> logits).

    Called as one network, it answers as the learner's does; `classifier.models.explain` calls the parts
    (why two: `classifier.models.runtimes.compiling`)."""

    def __init__(self, body: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images))

    def scores_and_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.body(images)
        return self.head(maps), maps.mean(dim=(2, 3))


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
