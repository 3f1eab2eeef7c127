"""`--precision auto`: bfloat16 where the CPU runs it natively and it keeps float32's answers, else fp32.

Chosen for each network apart, the bundle's classifier and its animal detector:

1. a runtime without bf16 (torch, onnx) runs fp32; so does a CPU without native bfloat16 instructions
   (AVX512-BF16, or AMX's): there OpenVINO would convert to bf16 and back for nothing;
2. otherwise bf16 is kept only when it agreed with fp32 on the bundle's held-out photos: the
   classifier's top-1 on at least 99% of the inputs prediction gives it (each photo's detector crops
   and the whole frame), the detector's count of animals (boxes at or over the bundle's detector
   threshold) on at least 97% of the photos;
3. where that agreement comes from: measured on this machine (`python -m classifier compile`, recorded in
   the runtime cache), else the figures the bundle ships (`precision.json`, measured by whoever released
   the bundle, keyed by the network's SHA-256 and the runtime's version, for hosts without the photos);
   neither: fp32.

bf16 keeps float32's range with an 8-bit mantissa, so it moves probabilities by about 1e-2 and can flip
a near tie or an answer at a cut-off. Measured (benchmarks/bf16_speed.py; docs/benchmarks.md, "bfloat16") on a 2-core
AMD EPYC with AVX512-BF16, serengeti with its detector: each network 1.7-1.9x faster, `predict` 1.72x the
frames/s; the same label on 95.0% of 443 frames (98.8% of the bundle's held-out photos), every
change a near tie between weak guesses, an answer at the cut-off, or one box dropped.

The agreement is measured by `classifier.models.agreement`.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, fields
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from classifier.models.bundles import Bundle, detector_settings
from classifier.models.detect import DEFAULT_INPUT_SIZE
from classifier.models.runtimes import (
    BF16,
    FP32,
    LIBRARY,
    PRECISIONS,
    SUPPORTED,
    cache_root,
    openvino_core,
    written_whole,
)

AUTO = "auto"
CHOICES = (AUTO, *PRECISIONS)
CLASSIFIER, DETECTOR = "classifier", "detector"
NETWORKS = (CLASSIFIER, DETECTOR)
# bf16 is kept at or over these shares of agreement with fp32 (issue 30).
REQUIRED = {CLASSIFIER: 0.99, DETECTOR: 0.97}
COMPARED = {CLASSIFIER: "top-1", DETECTOR: "animal count"}
SHIPPED_FILE = "precision.json"  # in a bundle's folder
CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # Linux's names for the instructions bf16 runs natively on


@dataclass(frozen=True)
class Agreement:
    """How often bf16 gave a network's fp32 answer, measured on a bundle's held-out photos."""

    network: str  # CLASSIFIER or DETECTOR
    sha256: str  # the model file's (classifier) or the weights' (detector)
    input_size: int
    runtime: str
    runtime_version: str
    agreed: float  # share of `compared` with the same answer
    compared: int  # classifier: inputs (crops and frames); detector: photos
    photos: int
    measured: str  # date, ISO 8601
    cpu: str

    @property
    def kept(self) -> bool:
        return self.agreed >= REQUIRED[self.network]

    @property
    def key(self) -> tuple[str, str, int, str, str]:
        """Which network, runtime and runtime version the figures hold for."""
        return (self.network, self.sha256, self.input_size, self.runtime, self.runtime_version)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "precision": BF16 if self.kept else FP32}

    @classmethod
    def from_json(cls, data: Any) -> Agreement | None:
        """The entry, or None for one this version cannot read (missing or mistyped fields)."""
        if not isinstance(data, dict) or data.get("network") not in NETWORKS:
            return None
        try:
            entry = cls(**{f.name: data[f.name] for f in fields(cls)})
        except KeyError:
            return None
        numbers = (entry.agreed, entry.compared, entry.photos, entry.input_size)
        if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers):
            return None
        return entry


@dataclass(frozen=True)
class Choice:
    """The precision `auto` gives one network here, and why, in one line."""

    network: str
    precision: str
    reason: str

    @property
    def line(self) -> str:
        return f"{self.network} {self.precision}: {self.reason}"


# ------------------------------------------------------------------------------------------------ the CPU


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bfloat16 natively: Linux's CPU flags, else (macOS, Windows) what OpenVINO's
    CPU plugin reports, else no."""
    described = _cpuinfo()
    if described is None:
        return _openvino_has_bf16()
    return any(flag in described[1] for flag in BF16_FLAGS)


def cpu_name() -> str:
    """The CPU's model name and its bfloat16 flags, for the record: "AMD EPYC (avx512_bf16)"."""
    described = _cpuinfo()
    if described is None:
        return platform.processor() or platform.machine() or "unknown CPU"
    name, flags = described
    native = ", ".join(flag for flag in BF16_FLAGS if flag in flags) or "no bf16 flags"
    return f"{name or platform.machine()} ({native})"


def _cpuinfo() -> tuple[str, set[str]] | None:
    """The CPU's model name and flags from Linux's /proc/cpuinfo; None where there is no such file."""
    try:
        lines = CPUINFO.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    return name, {word for line in lines if line.startswith("flags") for word in line.split()}


def _openvino_has_bf16() -> bool:
    try:
        return "BF16" in openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # no OpenVINO, or a plugin that cannot say: treat as no bf16
        return False


def runtime_version(runtime: str) -> str:
    try:
        return version(LIBRARY[runtime])
    except (KeyError, PackageNotFoundError):
        return ""


# ---------------------------------------------------------------------------------------------- choosing


def resolve(bundle: Bundle, runtime: str, precision: str) -> tuple[str, str]:
    """The precisions the classifier and the detector run at: `precision` itself unless it is `auto`."""
    if precision != AUTO:
        return precision, precision
    return choose(bundle, runtime, CLASSIFIER).precision, choose(bundle, runtime, DETECTOR).precision


def choices(bundle: Bundle, runtime: str) -> list[Choice]:
    """What `auto` gives each network the bundle has, and why (`python -m classifier models` prints them)."""
    return [choose(bundle, runtime, n) for n in NETWORKS if _network_key(bundle, n, runtime) is not None]


def can_run_bf16(runtime: str) -> bool:
    """Whether bf16 could be chosen here: a runtime that runs it on a CPU with native bfloat16."""
    return BF16 in SUPPORTED.get(runtime, ()) and cpu_has_bf16()


def measured_here(bundle: Bundle, runtime: str) -> bool:
    """Whether every network of the bundle has its agreement recorded on this machine for this runtime."""
    keys = [_network_key(bundle, network, runtime) for network in NETWORKS]
    return all(recorded(key) is not None for key in keys if key is not None)


def choose(bundle: Bundle, runtime: str, network: str) -> Choice:
    """What `auto` runs this network of the bundle at, on this machine with this runtime."""
    if BF16 not in SUPPORTED.get(runtime, ()):
        return Choice(network, FP32, f"the {runtime} runtime runs fp32 only (bf16 needs --runtime openvino)")
    if not cpu_has_bf16():
        return Choice(network, FP32, "this CPU has no native bfloat16 (AVX512-BF16 or AMX instructions)")
    key = _network_key(bundle, network, runtime)
    if key is None:
        return Choice(network, FP32, f"no {network} here (the bundle has none, or it is not installed)")
    here = recorded(key)
    found = here or next((a for a in shipped(bundle) if a.key == key), None)
    if found is None:
        return Choice(
            network,
            FP32,
            f"bf16's agreement with fp32 is not measured for {LIBRARY[runtime]} {key[-1]}; "
            f"`python -m classifier compile --model {bundle.name}` measures it where the bundle's held-out "
            "photos are",
        )
    what = COMPARED[network]
    where = (
        f"measured here {found.measured}"
        if here
        else f"{SHIPPED_FILE}: measured on {found.cpu} {found.measured}"
    )
    share, needed = f"{found.agreed:.1%} of {found.compared}", f"{REQUIRED[network]:.0%}"
    if found.compared != found.photos:  # a detector's bundle: the classifier sees crops and frames
        share += f" inputs (the crops and frames of {found.photos} held-out photos; "
    else:
        share += " held-out photos ("
    if found.kept:
        return Choice(network, BF16, f"{what} agreed with fp32's on {share}kept at >= {needed}), {where}")
    return Choice(
        network, FP32, f"bf16's {what} agreed with fp32's on only {share}needs >= {needed}), {where}"
    )


def _network_key(bundle: Bundle, network: str, runtime: str) -> tuple[str, str, int, str, str] | None:
    """(network, SHA-256, input size, runtime, its version) of the bundle's network; None when it has none
    (a detector not installed counts as none)."""
    if network == CLASSIFIER:
        sha256, size = bundle.model_sha256, bundle.image_size
    else:
        settings = detector_settings(bundle)
        if settings is None:
            return None
        sha256, size = detector_sha256(), int(settings.get("input_size", DEFAULT_INPUT_SIZE))
    return None if not sha256 else (network, sha256, size, runtime, runtime_version(runtime))


def detector_sha256() -> str | None:
    """The SHA-256 the detector's package pins (its weights are checked against it when loaded)."""
    try:
        import megadetector_lite
    except ImportError:
        return None
    return megadetector_lite.WEIGHTS_SHA256


# --------------------------------------------------------------------------------- where figures are kept


def _record_path(key: tuple[str, str, int, str, str]) -> Path:
    network, sha256, size, runtime, runtime_release = key
    return cache_root() / "precision" / f"{network}-{sha256}-{size}px-{runtime}{runtime_release}.json"


def recorded(key: tuple[str, str, int, str, str]) -> Agreement | None:
    """The agreement measured on this machine for that network and runtime version, if any."""
    try:
        entry = Agreement.from_json(json.loads(_record_path(key).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None
    return entry if entry is not None and entry.key == key else None


def record(agreement: Agreement) -> Path:
    """Keep a measured agreement in the runtime cache (written whole: a temporary file, then a rename)."""
    target = _record_path(agreement.key)
    with written_whole(target) as partial:
        partial.write_text(json.dumps(agreement.as_json(), indent=1) + "\n", encoding="utf-8")
    return target


def shipped(bundle: Bundle) -> list[Agreement]:
    """The agreements the bundle ships (`precision.json`); none when it has no such file or it is unusable."""
    try:
        data = json.loads((bundle.directory / SHIPPED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    entries = data.get("agreements") if isinstance(data, dict) else None
    found = [Agreement.from_json(entry) for entry in entries or ()] if isinstance(entries, list) else []
    return [entry for entry in found if entry is not None]


def ship(bundle: Bundle, agreements: list[Agreement]) -> Path:
    """Write `agreements` into the bundle's `precision.json`, replacing older figures for the same network,
    runtime and version and keeping the rest, for machines where the held-out photos are not."""
    keys = {a.key for a in agreements}
    kept = [a for a in shipped(bundle) if a.key not in keys] + list(agreements)
    target = bundle.directory / SHIPPED_FILE
    document = {
        "about": "bf16 against fp32 on this bundle's held-out photos, by `python -m classifier compile "
        "--ship-agreement` (classifier/models/precision.py); read by --precision auto where they are not on disk",
        "agreements": [a.as_json() for a in sorted(kept, key=lambda a: a.key)],
    }
    with written_whole(target) as partial:
        partial.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return target
