"""MegadetectorLite, an offline animal detector's weights: YOLOX-tiny (1 class, 640 px) by DrivenData.

The file was taken from zamba 2.7.2's wheel on PyPI (MIT licence, see `license_path()`) when this
package was built, and its SHA-256 checked then; `WEIGHTS_SHA256` lets a loader check it again. This
package holds no code that runs the network: the wildlife classifier's `classifier.models.yolox` does.
"""

from __future__ import annotations

from pathlib import Path

from megadetector_lite._pins import (
    LICENSE_FILE,
    WEIGHTS_FILE,
    WEIGHTS_SHA256,
    ZAMBA_VERSION,
    ZAMBA_WHEEL_SHA256,
    ZAMBA_WHEEL_URL,
)

__all__ = [
    "WEIGHTS_SHA256",
    "ZAMBA_VERSION",
    "ZAMBA_WHEEL_SHA256",
    "ZAMBA_WHEEL_URL",
    "license_path",
    "weights_path",
]

_HERE = Path(__file__).resolve().parent
_REINSTALL = "reinstall it: pip install --force-reinstall ./vendor/megadetector-lite"


def weights_path() -> Path:
    """The checkpoint file (a torch dict whose "model" entry is the YOLOX-tiny state dict)."""
    return _packaged(WEIGHTS_FILE)


def license_path() -> Path:
    """zamba's MIT licence, which covers the weights."""
    return _packaged(LICENSE_FILE)


def _packaged(name: str) -> Path:
    path = _HERE / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the megadetector-lite package; {_REINSTALL}")
    return path
