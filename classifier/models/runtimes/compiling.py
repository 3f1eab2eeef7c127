"""Compiling a network into the cache: traced for torch, exported to ONNX for onnx and openvino, quantized
for int8.

The torch runtime compiles a bundle's network as two parts, run one after the other
(`classifier.models.runtimes.wrappers.CompiledNetwork`): the body (RGB in [0, 1], normalised inside -> the
last feature map) and the head (feature map -> class scores). Where the model looked
(`classifier.models.explain`) needs the gradient of a class score with respect to that feature map; one
frozen graph of the whole network gives a gradient with respect to its input alone (freezing inlines
every layer, so no feature map is left to ask for, nor hooks to ask with). A frozen head still takes
gradients: its weights are constants, its input need not be. Measured on the serengeti bundle (1 thread,
260 px): whole graph 72.0 ms, the two parts 71.7 ms a photo, the same answers to 1e-5; the head's
backward pass 2.3 ms; the file 2 kB larger. Both parts live in one cache file: the body is the saved
module, the head rides in it as an extra file (`HEAD_FILE`). The onnx and openvino runtimes run the whole
network as one graph (they serve prediction, not explanations).

int8 is the ONNX file quantized by ONNX Runtime's static quantizer: QDQ, per-channel int8 weights with
their range reduced to 7 bits, uint8 activations calibrated on the bundle's own training photos
(`classifier.models.runtimes.calibration`); the detector's on its layers with weights only, calibrated on
48 of them; both runtimes run that one file.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from classifier.models.bundles import Bundle, BundleError, load_learner
from classifier.models.runtimes.cache import (
    HEAD_FILE,
    compiled_path,
    detector_path,
    linear_head_path,
    written_whole,
)
from classifier.models.runtimes.calibration import _classifier_calibration, calibration_photos
from classifier.models.runtimes.choices import FP32, INT8, TORCH, check_choice

if TYPE_CHECKING:
    import numpy as np

    from classifier.models.network import WildlifeNet

TRACE_BATCH = 2  # any batch size runs afterwards; the image size is fixed by the bundle
ONNX_OPSET = 18  # OpenVINO's ONNX reader misreads opset 17's ReduceLogSumExp (the ImageNet prior's)
QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]  # the detector's int8 (DETECTOR_INT8_RECIPE): layers with weights
CLASSIFIER_OUTPUTS = ("outputs", "features")


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


def _compile_detector(
    network: nn.Module,
    sha256: str,
    input_size: int,
    runtime: str,
    precision: str,
    calibration: Callable[[], Iterable[np.ndarray]] | None,
) -> None:
    """The detector's network compiled for `runtime` at `precision`, written to its cache entry."""
    path = detector_path(sha256, input_size, runtime, precision)
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


def _save_traced_detector(network: torch.nn.Module, size: int, target: Path) -> None:
    example = torch.zeros(1, 3, size, size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frozen = torch.jit.freeze(torch.jit.trace(network.eval(), example, check_trace=False))
    with written_whole(target) as partial, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(frozen, str(partial))


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
