"""JPEG decoders side by side on full-size camera-trap frames: speed on one core and the pixels they give.

    .venv/bin/python benchmarks/decoders.py            # every frame of >= 1.5 MP in ../shared/data/camera_traps
    .venv/bin/python benchmarks/decoders.py --passes 3

For each target side (260 px: the serengeti classifier; 640 px: the detector's input), each decoder reads
the file's bytes and returns RGB pixels at the reduced scale libjpeg's DCT-domain scaling gives (the
largest 1/1, 1/2, 1/4 or 1/8 that keeps both sides at least the target, as Pillow's draft mode picks):

- `pil_draft`: Pillow, `Image.draft` then `load` (what `classifier.intake.images.load_photo` does today);
- `simplejpeg`: libjpeg-turbo's TurboJPEG API through simplejpeg, at the same scale;
- `simplejpeg_fast`: the same with `fastdct` and `fastupsample` (faster, other pixels);
- `pyturbojpeg`: the TurboJPEG API through PyTurboJPEG, when it and the system's libturbojpeg are there;
- `torchvision`: `torchvision.io.decode_jpeg`, which has no reduced-scale decoding (full size).

Also `load_photo` itself (header checks, EXIF, orientation, then the decode) with the decoder it uses.
Times are the median over passes of the mean per frame, in one thread, interleaved decoder by decoder so
load from other processes falls on all alike; pixels are compared with Pillow's at the same size (max
and mean absolute difference). Prints a table and writes benchmarks/results/decoders-<time>.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from record import write_results  # noqa: E402

CAMERA_TRAPS = REPO.parent / "shared" / "data" / "camera_traps"
MIN_PIXELS = 1_500_000


def frames(root: Path) -> list[Path]:
    from PIL import Image

    found = []
    for path in sorted(root.rglob("*.jpg")):
        if "truncated" in path.name or "cmyk" in path.name:
            continue
        with Image.open(path) as im:
            if im.width * im.height >= MIN_PIXELS and im.mode == "RGB":
                found.append(path)
    return found


def pil_scale(size: tuple[int, int], target: int) -> int:
    """The reduction Pillow's draft mode picks: the largest of 8, 4, 2, 1 keeping both sides >= target."""
    ratio = min(size[0] // target, size[1] // target)
    return next((s for s in (8, 4, 2) if s <= ratio), 1)


def decoders(target: int) -> dict[str, Callable[[bytes], np.ndarray]]:
    """The decoders installed here, by name; the ones outside the project's dependencies (simplejpeg,
    PyTurboJPEG) are skipped with a line on standard error when missing."""
    import io

    from PIL import Image

    def pil(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (target, target))
            return np.asarray(im.convert("RGB"))

    found = {"pil_draft": pil}
    try:
        import simplejpeg

        def simple(data: bytes, fast: bool = False) -> np.ndarray:
            height, width, _, _ = simplejpeg.decode_jpeg_header(data)
            scale = pil_scale((width, height), target)
            return simplejpeg.decode_jpeg(
                data,
                colorspace="RGB",
                fastdct=fast,
                fastupsample=fast,
                min_height=-(-height // scale),
                min_width=-(-width // scale),
                min_factor=scale,
            )

        found["simplejpeg"] = simple
        found["simplejpeg_fast"] = lambda data: simple(data, True)
    except ImportError as exc:
        print(f"simplejpeg: not measured ({exc})", file=sys.stderr)
    try:
        from turbojpeg import TurboJPEG

        turbo = TurboJPEG()

        def pyturbo(data: bytes) -> np.ndarray:
            width, height, _, _ = turbo.decode_header(data)
            scale = pil_scale((width, height), target)
            return turbo.decode(data, pixel_format=0, scaling_factor=(1, scale))  # TJPF_RGB

        found["pyturbojpeg"] = pyturbo
    except Exception as exc:  # not installed, or the system library is missing
        print(f"pyturbojpeg: not measured ({type(exc).__name__}: {exc})", file=sys.stderr)
    try:
        import torch
        from torchvision.io import decode_jpeg

        torch.set_num_threads(1)

        def vision(data: bytes) -> np.ndarray:
            return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8)).permute(1, 2, 0).numpy()

        found["torchvision_full_size"] = vision
    except ImportError:
        pass
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--targets", type=int, nargs="+", default=[260, 640])
    args = parser.parse_args(argv)
    paths = frames(CAMERA_TRAPS)
    if not paths:
        print(f"error: no full-size frames under {CAMERA_TRAPS}", file=sys.stderr)
        return 2
    data = [p.read_bytes() for p in paths]
    from classifier.intake import images

    results: dict = {
        "benchmark": "decoders",
        "frames": len(paths),
        "megapixels_median": statistics.median(_megapixels(p) for p in paths),
        "load_average_at_start": os.getloadavg(),
        "load_photo_decoder": "pil_draft",  # what classifier.intake.images.load_photo decodes with
        "targets": {},
    }
    print(f"{len(paths)} frames of >= {MIN_PIXELS / 1e6:.1f} MP; load average {os.getloadavg()}")
    for target in args.targets:
        found = decoders(target)
        found["load_photo"] = lambda d, target=target: np.asarray(
            images.load_photo(d, target_size=target).image
        )
        reference = [found["pil_draft"](d) for d in data]
        pixels = {}
        for name, decode in found.items():
            decoded = [decode(d) for d in data]
            same_size = [a.shape == b.shape for a, b in zip(decoded, reference, strict=True)]
            differences = [
                np.abs(a.astype(np.int16) - b.astype(np.int16))
                for a, b, same in zip(decoded, reference, same_size, strict=True)
                if same
            ]
            pixels[name] = {
                "same_size": f"{sum(same_size)}/{len(same_size)}",
                "max_abs_difference": int(max((d.max() for d in differences), default=-1)),
                "mean_abs_difference": round(float(np.mean([d.mean() for d in differences])), 4)
                if differences
                else None,
            }
        times: dict[str, list[float]] = {name: [] for name in found}
        for _ in range(args.passes):
            for name, decode in found.items():
                start = time.perf_counter()
                for d in data:
                    decode(d)
                times[name].append((time.perf_counter() - start) * 1000 / len(data))
        base = statistics.median(times["pil_draft"])
        table = {}
        print(f"\ntarget {target} px: decoder, median ms a frame (one core), vs Pillow, pixels vs Pillow's")
        for name in found:
            ms = statistics.median(times[name])
            table[name] = {"ms": round(ms, 2), "speed_vs_pil": round(base / ms, 3), **pixels[name]}
            print(
                f"  {name:22s} {ms:7.2f} ms  {base / ms:5.2f}x  same size {pixels[name]['same_size']}, "
                f"max |diff| {pixels[name]['max_abs_difference']}, mean {pixels[name]['mean_abs_difference']}"
            )
        results["targets"][str(target)] = table
    results["load_average_at_end"] = os.getloadavg()
    print(f"load average at the end {os.getloadavg()}")
    write_results("decoders", results)
    return 0


def _megapixels(path: Path) -> float:
    from PIL import Image

    with Image.open(path) as im:
        return im.width * im.height / 1e6


if __name__ == "__main__":
    sys.exit(main())
