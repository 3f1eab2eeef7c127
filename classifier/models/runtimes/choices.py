"""Which runtime and precision a network runs with, and on how many cores.

Three precisions: `fp32` (every runtime), `int8` (`onnx` and `openvino`: one quantized ONNX file, which
both runtimes run; `classifier.models.runtimes.compiling.save_int8`) and `bf16` (`openvino` only: its CPU
plugin's bfloat16 inference, about twice as fast on a CPU with native bf16 instructions; elsewhere it runs
float32, and `precision_in_use` says so). Which precision the command line's default (`auto`) picks for
each network is `classifier.models.precision`'s.
"""

from __future__ import annotations

import os

from classifier.models.bundles import BundleError

RUNTIME_VARIABLE = "WILDLIFE_RUNTIME"  # the default runtime of this machine, e.g. for the app
TORCH, OPENVINO, ONNX = "torch", "openvino", "onnx"
RUNTIMES = (TORCH, OPENVINO, ONNX)
FP32, BF16, INT8 = "fp32", "bf16", "int8"
PRECISIONS = (FP32, BF16, INT8)
SUPPORTED = {TORCH: (FP32,), ONNX: (FP32, INT8), OPENVINO: (FP32, BF16, INT8)}
LIBRARY = {OPENVINO: "openvino", ONNX: "onnxruntime"}
# Measured with benchmarks/predict_speed.py (docs/benchmarks.md, "Runtimes"): OpenVINO at float32 runs the classifier
# and the detector fastest of the three with the same answers; int8 is an option only, and bf16 is what
# `--precision auto` runs where the CPU has it (benchmarks/bf16_speed.py).
DEFAULT_RUNTIME = OPENVINO
# The app's, where a 1 GB host's memory decides (benchmarks/app_memory.py, every bundle and page plus a
# heatmap): TorchScript 716 MiB at peak without GPU library pages, OpenVINO 917-939 MiB (its libraries,
# compiled networks, and the torch network a heatmap needs besides), target 900. A visitor's photo at a
# time gains little from OpenVINO; batches of thousands, on the command line, gain most. OpenVINO in
# bfloat16 did not fit either (2026-12-07, a CPU with AVX512-BF16, three walks each: 874, 961 and
# 1,017 MiB against TorchScript's 722, 738 and 793), so the app runs TorchScript at fp32 everywhere.
APP_RUNTIME = TORCH


def default_runtime(app: bool = False) -> str:
    """`$WILDLIFE_RUNTIME` when set, else `DEFAULT_RUNTIME` (`APP_RUNTIME` for the app); torch when that
    runtime's library is missing."""
    chosen = os.environ.get(RUNTIME_VARIABLE) or (APP_RUNTIME if app else DEFAULT_RUNTIME)
    if chosen not in RUNTIMES:
        raise BundleError(f"${RUNTIME_VARIABLE}={chosen!r}: not a runtime; use one of {', '.join(RUNTIMES)}.")
    return chosen if available(chosen) else TORCH


def available(runtime: str) -> bool:
    """Whether the runtime's library is installed (torch always is)."""
    if runtime == TORCH:
        return True
    from importlib.util import find_spec

    return find_spec(LIBRARY[runtime]) is not None and find_spec("onnx") is not None


def check_choice(runtime: str, precision: str) -> None:
    """A `BundleError` (one line) for a runtime or precision this module does not have."""
    if runtime not in RUNTIMES:
        raise BundleError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}.")
    if precision not in PRECISIONS:
        raise BundleError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}.")
    if precision not in SUPPORTED[runtime]:
        others = [r for r in RUNTIMES if precision in SUPPORTED[r]]
        raise BundleError(
            f"the {runtime} runtime runs {', '.join(SUPPORTED[runtime])} only; {precision} needs "
            f"--runtime {' or '.join(others)}."
        )
    if not available(runtime):
        raise BundleError(
            f"the {runtime} runtime needs the {LIBRARY[runtime]} and onnx packages, which are not "
            "installed; run `make install` (or pick --runtime torch)."
        )


def default_workers() -> int:
    """The cores this process may run on: one batch (and one OpenVINO stream) per core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
