"""Measure the running app's memory as a host counts it: the resident set of the `streamlit run` process.

    .venv/bin/python benchmarks/app_memory.py                        # the project's bundles
    .venv/bin/python benchmarks/app_memory.py --env MALLOC_ARENA_MAX=2 --python OTHER_VENV/bin/python

Starts the app and, in Debian's Chromium, classifies a photo on the default bundle and turns on "Show
where the model looked" (the heatmap, once), then classifies on every other bundle (`?model=NAME`, a new
visitor each), then on the default bundle again; after each step it reads
/proc/PID/status and /proc/PID/smaps; then it opens the batch, species, performance and about pages
with each bundle. The environment's libraries are first dropped from the page cache
(`drop_cached_libraries`: how pip wrote them otherwise adds up to 130 MiB). Streamlit keeps a visitor's
session (uploads included) for two minutes after they leave, so each step also holds the visitors before
it, as a busy host does.

Streamlit Community Cloud gives an app about 1 GB: the target is a resident set under `LIMIT_MIB` (900) at
every step with the CPU-only PyTorch a host installs. A CUDA build of PyTorch maps a few hundred MB of
GPU libraries that a CPU-only one does not have, so their pages are counted apart (`gpu_libraries`).
Prints the figures and writes them to benchmarks/results/app_memory-<time>.json. The photo is a
generated 12-megapixel JPEG unless --photo names one.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from load_test import CHROMIUM, CHROMIUM_FLAGS, SCRIPT_DONE
from page_cache import drop_cached_libraries
from PIL import Image

from app_latency import free_port, start_app, wait_for_health

REPO = Path(__file__).resolve().parents[1]
LIMIT_MIB = 900
# /proc/PID/status: anonymous memory has to stay resident; file pages (the mapped libraries) can be
# dropped and read again under pressure. VmHWM is the peak resident set since the start.
STATUS_FIELDS = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file", "VmHWM": "peak_rss"}
PAGES = ("batch", "species", "performance", "about")
GPU_LIBRARY = re.compile(
    r"/nvidia/|/triton/|_cuda|cudnn|cublas|cufft|curand|cusolver|cusparse|nccl|nvrtc|nvJitLink"
)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    sys.path.insert(0, str(REPO))  # classifier/, for the list of bundles
    figures = measure(args.models, args.photo, python=args.python, env=dict(args.env))
    for step in figures["steps"]:
        print(
            f"{step['step']}: RSS {step['rss']:.0f} MiB (anonymous {step['anon']:.0f}, files {step['file']:.0f}, "
            f"of which GPU libraries {step['gpu_libraries']:.0f}), peak RSS so far {step['peak_rss']:.0f} MiB"
        )
    print(
        f"peak RSS {figures['peak_rss_mib']:.0f} MiB, {figures['peak_rss_without_gpu_libraries_mib']:.0f} MiB "
        f"without GPU libraries (target under {LIMIT_MIB} MiB); torch {figures['torch']}"
    )
    from record import write_results  # benchmarks/ is on the path when this runs as a script

    write_results("app_memory", figures)
    return 0


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    result.add_argument("--models", type=Path, default=REPO / "models", help="folder of bundles to serve")
    result.add_argument("--photo", type=Path, default=None, help="photo to classify (default: generated)")
    result.add_argument(
        "--python", default=sys.executable, help="interpreter that runs the app (another venv's python)"
    )
    result.add_argument(
        "--env",
        type=lambda text: tuple(text.split("=", 1)),
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment variable for the app, e.g. MALLOC_ARENA_MAX=2 (repeatable)",
    )
    return result


def measure(
    models: Path, photo: Path | None = None, python: str = sys.executable, env: dict[str, str] | None = None
) -> dict:
    """Serve the bundles in `models`, classify `photo` with each, and return the memory after every step."""
    from classifier.models.bundles import find_bundles

    names = [bundle.name for bundle in find_bundles(models) if bundle.ok]
    if not names:
        raise ValueError(f"no usable bundle in {models}")
    drop_cached_libraries(Path(python).parents[1])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_app(port, python, {"WILDLIFE_MODELS_DIR": str(models), **(env or {})})
    try:
        wait_for_health(url, time.perf_counter() + 120)
        steps = [{"step": "started, no visitor yet", **memory(server.pid)}]
        with tempfile.TemporaryDirectory(prefix="app_memory-") as scratch:
            photo_path = photo or generated_photo(Path(scratch) / "photo.jpg")
            steps += visit_every_bundle(server.pid, url, names, photo_path)
    finally:
        server.terminate()
        server.wait(timeout=20)
    peak = max(step["peak_rss"] for step in steps)
    return {
        "benchmark": "app_memory",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch_version(python),
        "env": env or {},
        "bundles": names,
        "photo": str(photo or "generated 4000x3000 JPEG"),
        "limit_mib": LIMIT_MIB,
        "peak_rss_mib": peak,
        "peak_rss_without_gpu_libraries_mib": peak - max(step["gpu_libraries"] for step in steps),
        "steps": steps,
    }


def visit_every_bundle(pid: int, url: str, names: list[str], photo: Path) -> list[dict]:
    """A visitor per step classifies `photo`: the default bundle, every other one, the default again;
    then a visitor per bundle opens every other page."""
    from playwright.sync_api import sync_playwright

    visits = [("default bundle", url)] + [(f"bundle {name}", f"{url}/?model={name}") for name in names[1:]]
    if len(names) > 1:
        visits.append(("default bundle again", url))
    steps = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            for label, address in visits:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(address, timeout=60_000)
                page.locator("input[type=file]").first.set_input_files(str(photo), timeout=60_000)
                answered = page.locator("[data-testid=stProgress]").or_(page.get_by_text("No animal found"))
                answered.first.wait_for(timeout=120_000)  # bars, or a blank frame's answer
                steps.append({"step": f"{label}, a photo classified", **memory(pid)})
                if label == "default bundle":  # the heatmap, once: where the model looked
                    page.wait_for_function(SCRIPT_DONE, timeout=120_000)  # every widget drawn
                    anyway = page.get_by_role("button", name="Classify the whole frame anyway")
                    if anyway.count():  # a blank frame: its whole frame has the heatmap
                        anyway.click(timeout=60_000)
                        page.locator("[data-testid=stProgress]").first.wait_for(timeout=120_000)
                    page.get_by_text("Show where the model looked").click(timeout=60_000)
                    page.get_by_text("Where the model looked for").first.wait_for(timeout=120_000)
                    steps.append({"step": f"{label}, its heatmap shown", **memory(pid)})
                page.close()
            for name in names:  # then every other page, once per bundle
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                for path in PAGES:
                    page.goto(f"{url}/{path}?model={name}", timeout=60_000)
                    page.locator("[data-testid=stMainBlockContainer]").first.wait_for(timeout=60_000)
                    page.wait_for_timeout(1500)  # the page's charts and tables render after the frame
                steps.append({"step": f"bundle {name}: {', '.join(PAGES)} pages", **memory(pid)})
                page.close()
        finally:
            browser.close()
    return steps


def memory(pid: int) -> dict[str, float]:
    """The process's resident memory in MiB: all, anonymous, file-backed, GPU libraries' pages, peak."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in STATUS_FIELDS:
            figures[STATUS_FIELDS[key]] = _mib(value)
    return figures | {"gpu_libraries": gpu_library_pages(pid)}


def gpu_library_pages(pid: int) -> float:
    """Resident MiB of the files CUDA builds of PyTorch map (CUDA, cuDNN, Triton libraries)."""
    total, counted = 0.0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", fields[0]):  # a mapping's header: address range ... path
            counted = len(fields) == 6 and bool(GPU_LIBRARY.search(fields[5]))
        elif counted and fields[0] == "Rss:":
            total += _mib(fields[1])
    return round(total, 1)


def _mib(kilobytes: str) -> float:
    return round(int(kilobytes.split()[0]) / 1024, 1)  # the kernel writes kB


def generated_photo(path: Path, size: tuple[int, int] = (4000, 3000)) -> Path:
    """A 12-megapixel JPEG with texture (a camera-trap frame's size), so no real photo is needed."""
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, size[0])[None, :, None]
    y = np.linspace(0, 1, size[1])[:, None, None]
    colour = np.array([0.4, 0.8, 0.3])
    canvas = 255 * (0.3 + 0.4 * x * y + 0.2 * colour) + rng.normal(0, 12, (size[1], 1, 3))
    Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def torch_version(python: str) -> str:
    command = [python, "-c", "import torch; print(torch.__version__)"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
