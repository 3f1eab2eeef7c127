"""A bundle's network as prediction runs it: compiled once from the fastai learner, cached on disk.

Serving needs torch alone. The learner brings fastai, and with it pandas, matplotlib, scikit-learn, timm
and torchvision: about 250 MB of the app's memory (benchmarks/app_memory.py). So the learner is unpickled
once per model file, to trace its network with TorchScript and freeze it (weights folded in as
constants, 1.6-1.7x the eager network's photos/s on one core, measured on the serengeti bundle); the
result is cached under the model file's SHA-256, the report's image size and classes, and the torch
version, and every later load reads only that file. `isolate=True` compiles in a child process (`python -m classifier compile`),
so a process that never had fastai (the app) never gets it.

The network is compiled as two parts, run one after the other (`CompiledNetwork`): the body (RGB in
[0, 1], normalised inside -> the last feature map) and the head (feature map -> class scores). Where the
model looked (`classifier.explain`) needs the gradient of a class score with respect to that feature
map; one frozen graph of the whole network gives a gradient with respect to its input alone (freezing
inlines every layer, so no feature map is left to ask for, nor hooks to ask with). A frozen head still
takes gradients: its weights are constants, its input need not be. Measured on the serengeti bundle
(1 thread, 260 px): whole graph 72.0 ms, the two parts 71.7 ms a photo, the same answers to 1e-5; the
head's backward pass 2.3 ms; the file 2 kB larger. Both parts live in one cache file: the body is the
saved module, the head rides in it as an extra file (`HEAD_FILE`).

The cache lives in `$WILDLIFE_CACHE_DIR`, else `$XDG_CACHE_HOME/wildlife-classifier`, else
`~/.cache/wildlife-classifier`. A cache entry is written whole (a temporary file, then a rename), so two
processes compiling the same model at once leave one good file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from classifier.bundles import Bundle, BundleError, load_learner

if TYPE_CHECKING:
    from classifier.network import WildlifeNet

CACHE_VARIABLE = "WILDLIFE_CACHE_DIR"
TRACE_BATCH = 2  # any batch size runs afterwards; the image size is fixed by the bundle
LAYOUT = "body+head"  # what a cache entry holds; part of its name, so older entries are compiled again
HEAD_FILE = "head.pt"


class CompiledNetwork(nn.Module):
    """A bundle's network as two compiled parts: `body` (images -> feature map), `head` (-> logits).

    Called as one network, it answers as the learner's does; `classifier.explain` calls the parts."""

    def __init__(self, body: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images))


class _Normalised(nn.Module):
    """The backbone with the network's input normalisation in front: what `CompiledNetwork.body` runs."""

    def __init__(self, network: WildlifeNet) -> None:
        super().__init__()
        self.body = network.body
        self.register_buffer("mean", network.mean.detach().clone())
        self.register_buffer("std", network.std.detach().clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body((images - self.mean) / self.std)


def cache_root() -> Path:
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wildlife-classifier"


def compiled_path(bundle: Bundle, sha256: str) -> Path:
    """The cache entry of the model file with this hash, read as this report reads it (image size and
    classes: the checks a compile makes against the report hold only for that report)."""
    version = torch.__version__.replace("+", "-")
    reading = hashlib.sha256(
        json.dumps([LAYOUT, bundle.image_size, list(bundle.classes)]).encode()
    ).hexdigest()
    return cache_root() / "networks" / f"{sha256}-{reading[:12]}-torch{version}.pt"


def compile_bundle(bundle: Bundle, force: bool = False) -> Path:
    """Unpickle the learner (hash checked), trace and freeze its network, write the cache entry; an
    entry already there is kept unless `force`."""
    target = compiled_path(bundle, bundle.model_sha256 or "")
    if force or not target.is_file():
        save_traced(load_learner(bundle).model, bundle.image_size, target)
    return target


def save_traced(network: WildlifeNet, image_size: int, target: Path) -> None:
    """Trace and freeze the network's body (with its normalisation) and head; write both to `target`."""
    network = network.eval().to(memory_format=torch.channels_last)
    example = torch.zeros(TRACE_BATCH, 3, image_size, image_size).contiguous(
        memory_format=torch.channels_last
    )
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice (torch 2.14)
        body = torch.jit.freeze(torch.jit.trace(_Normalised(network).eval(), example, check_trace=False))
        maps = body(example)
        head = torch.jit.freeze(torch.jit.trace(network.head.eval(), maps, check_trace=False))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".tmp", delete=False) as handle:
        partial = Path(handle.name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            head_bytes = io.BytesIO()
            torch.jit.save(head, head_bytes)
            torch.jit.save(body, str(partial), _extra_files={HEAD_FILE: head_bytes.getvalue()})
        partial.chmod(0o644)  # a cache shared by the users of one machine, as pip's is
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def load_network(
    bundle: Bundle, sha256: str, device: torch.device, *, isolate: bool = False
) -> torch.nn.Module:
    """The compiled network of the model file whose hash is `sha256`, compiled first when not cached."""
    path = compiled_path(bundle, sha256)
    if not path.is_file():
        if isolate:
            _compile_in_child(bundle)
        else:
            save_traced(load_learner(bundle, verify=False).model, bundle.image_size, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            extra = {HEAD_FILE: ""}
            body = torch.jit.load(str(path), map_location=device, _extra_files=extra)
            if not extra[HEAD_FILE]:
                raise RuntimeError(f"no {HEAD_FILE} inside")
            head = torch.jit.load(io.BytesIO(extra[HEAD_FILE]), map_location=device)
        return CompiledNetwork(body, head).eval()
    except RuntimeError as exc:  # a damaged cache entry: compile it again next time
        path.unlink(missing_ok=True)
        raise BundleError(f"{path}: the compiled network could not be read ({exc}); try again.") from None


def _compile_in_child(bundle: Bundle) -> None:
    command = [sys.executable, "-m", "classifier", "compile", "--model", str(bundle.directory)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1].split("error: ", 1)[-1] if lines else f"exit status {done.returncode}"
        raise BundleError(reason)
