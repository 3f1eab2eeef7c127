"""Build step: fetch zamba's pinned wheel, check it, and package MegadetectorLite's weights and licence.

Runs inside pip's (or uv's) isolated build with nothing but setuptools, so it uses urllib only. Every
file is checked against the SHA-256 pinned in src/megadetector_lite/_pins.py; on any mismatch the build
stops with a message saying so, and nothing is packaged.

MEGADETECTOR_LITE_ZAMBA_WHEEL=/path/to/zamba-2.7.2-py3-none-any.whl builds offline from a local copy
(checked the same way). A downloaded wheel is kept in ~/.cache/wildlife-megadetector-lite (or under
$XDG_CACHE_HOME) so that a reinstall does not fetch 41 MB again; a cached copy is checked before use.
"""

from __future__ import annotations

import hashlib
import os
import runpy
import shutil
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PINS = runpy.run_path(str(HERE / "src" / "megadetector_lite" / "_pins.py"))
WHEEL_NAME = PINS["ZAMBA_WHEEL_URL"].rsplit("/", 1)[1]
CHUNK = 1 << 20


class HashMismatch(RuntimeError):
    pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def refuse(what: str, got: str, want: str) -> None:
    raise HashMismatch(
        f"megadetector-lite: REFUSED {what}: its SHA-256 is {got}, but {want} is pinned. The file is not "
        "the one this package was made for (a damaged download, or a changed upload); nothing was installed."
    )


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "wildlife-megadetector-lite"


def download(url: str, target: Path, attempts: int = 3) -> None:
    """Stream `url` into `target`, refusing more bytes than the pinned wheel has."""
    limit = PINS["ZAMBA_WHEEL_BYTES"]
    for attempt in range(1, attempts + 1):
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "wildlife-megadetector-lite-build"})
            with urllib.request.urlopen(request, timeout=60) as response, open(target, "wb") as out:
                size = 0
                while block := response.read(CHUNK):
                    size += len(block)
                    if size > limit:
                        raise HashMismatch(f"megadetector-lite: REFUSED {url}: more than {limit:,} bytes")
                    out.write(block)
            return
        except HashMismatch:
            raise
        except OSError as exc:
            if attempt == attempts:
                raise RuntimeError(
                    f"megadetector-lite: could not download {url} ({exc}); check the connection to "
                    "files.pythonhosted.org, or set MEGADETECTOR_LITE_ZAMBA_WHEEL to a local copy of the wheel."
                ) from exc
            print(f"megadetector-lite: download failed ({exc}); trying again", file=sys.stderr)
            time.sleep(2 * attempt)


def zamba_wheel(scratch: Path) -> Path:
    """A checked copy of zamba's wheel: the local one named by the environment, the cached one, or a download."""
    want = PINS["ZAMBA_WHEEL_SHA256"]
    local = os.environ.get("MEGADETECTOR_LITE_ZAMBA_WHEEL")
    if local:
        path = Path(local)
        got = sha256_of(path)
        if got != want:
            refuse(f"{path} (MEGADETECTOR_LITE_ZAMBA_WHEEL)", got, want)
        return path
    cached = cache_dir() / WHEEL_NAME
    if cached.is_file():
        if sha256_of(cached) == want:
            print(f"megadetector-lite: using the checked copy in {cached}", file=sys.stderr)
            return cached
        cached.unlink(missing_ok=True)  # a damaged cache entry is fetched again, never used
    fetched = scratch / WHEEL_NAME
    print(f"megadetector-lite: downloading {PINS['ZAMBA_WHEEL_URL']}", file=sys.stderr)
    download(PINS["ZAMBA_WHEEL_URL"], fetched)
    got = sha256_of(fetched)
    if got != want:
        refuse(PINS["ZAMBA_WHEEL_URL"], got, want)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fetched, cached)
    except OSError:
        pass  # a read-only home only costs the next build a download
    return fetched


def extract(wheel: Path, member: str, target: Path, want: str | None) -> None:
    """Copy one member of the wheel to `target`, checking its SHA-256 when one is pinned."""
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as source, open(partial, "wb") as out:
        while block := source.read(CHUNK):
            digest.update(block)
            out.write(block)
    if want is not None and digest.hexdigest() != want:
        partial.unlink()
        refuse(f"{member} inside {wheel.name}", digest.hexdigest(), want)
    os.replace(partial, target)


def fetch_assets(package_dir: Path) -> list[Path]:
    """Put the checked weights and zamba's licence into `package_dir`; reuse a checked earlier copy."""
    package_dir.mkdir(parents=True, exist_ok=True)
    weights = package_dir / PINS["WEIGHTS_FILE"]
    licence = package_dir / PINS["LICENSE_FILE"]
    if weights.is_file() and licence.is_file() and sha256_of(weights) == PINS["WEIGHTS_SHA256"]:
        return [weights, licence]
    with tempfile.TemporaryDirectory(prefix="megadetector-lite-") as scratch:
        wheel = zamba_wheel(Path(scratch))
        extract(wheel, PINS["WEIGHTS_MEMBER"], weights, PINS["WEIGHTS_SHA256"])
        extract(wheel, PINS["LICENSE_MEMBER"], licence, None)
    print(f"megadetector-lite: packaged {weights.name} (SHA-256 checked) and {licence.name}", file=sys.stderr)
    return [weights, licence]


class BuildWithWeights(build_py):
    """build_py, then the weights and licence next to the module (in the source tree for editable installs)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            self._assets = fetch_assets(HERE / "src" / "megadetector_lite")
        else:
            self._assets = fetch_assets(Path(self.build_lib) / "megadetector_lite")

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), *map(str, getattr(self, "_assets", []))]


setup(cmdclass={"build_py": BuildWithWeights})
