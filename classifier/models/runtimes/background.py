"""Compiling in a child process, and serving one network while another compiles.

`isolate=True` (`classifier.models.runtimes.loading`) compiles in a child process (`python -m classifier
compile`, which compiles the bundle's detector too), so a process that never had fastai (the app) never
gets it, nor the memory a compile leaves behind; and, for `openvino` and `onnx`, serves the traced torch
network meanwhile (`Upgrading`), so a first visitor waits no longer than for the torch runtime alone.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from classifier.models.bundles import Bundle, BundleError
from classifier.models.runtimes.choices import FP32, TORCH

if TYPE_CHECKING:
    import torch


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
