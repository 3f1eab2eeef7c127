"""Time the app as a visitor meets it: from `streamlit run` to the first prediction on the page, then
the classify round trip (new photo uploaded -> its label shown), in Debian's Chromium.

    .venv/bin/python benchmarks/app_latency.py                   # default bundle, 10 round trips
    .venv/bin/python benchmarks/app_latency.py --model habitat --photo PATH.jpg --trips 20

Targets on a 2-core CPU: first prediction at most 15 s after start (model load included), round trip
at most 1 s (median). Prints the figures and writes them to benchmarks/results/app_latency-<time>.json.
The photos are real ones from ../shared/data when present, re-encoded with a few pixels changed per
trip so no cache can answer.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from load_test import CHROMIUM, CHROMIUM_FLAGS
from PIL import Image

from record import write_results

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTO = REPO.parent / "shared/data/intel/valid/forest"
TARGET_FIRST_S, TARGET_TRIP_S = 15.0, 1.0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    photo = args.photo or next(iter(sorted(DEFAULT_PHOTO.glob("*.jpg"))), None)
    if photo is None:
        print(f"error: no photo given and none under {DEFAULT_PHOTO}; pass --photo", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="app_latency_") as scratch:
        photos = variants(Path(photo), args.trips + 1, Path(scratch))
        port = free_port()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            started = time.perf_counter()
            server = start_app(port)
            try:
                query = f"/?model={args.model}" if args.model else "/"
                first = first_prediction(page, f"http://127.0.0.1:{port}", query, photos[0], started)
                trips = [round_trip(page, path) for path in photos[1:]]
            finally:
                server.terminate()
                server.wait(timeout=20)
                browser.close()
    figures = {
        "benchmark": "app_latency",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": args.model or "default",
        "photo": str(photo),
        "cpus": os.cpu_count(),
        "first_prediction_s": round(first, 2),
        "round_trip_median_s": round(statistics.median(trips), 3),
        "round_trip_p90_s": round(sorted(trips)[int(0.9 * (len(trips) - 1))], 3),
        "round_trips": [round(t, 3) for t in trips],
    }
    print(
        f"first prediction {first:.1f} s after `streamlit run` (target <= {TARGET_FIRST_S:g} s); "
        f"classify round trip median {figures['round_trip_median_s']:.2f} s, p90 {figures['round_trip_p90_s']:.2f} s "
        f"over {len(trips)} photos (target <= {TARGET_TRIP_S:g} s)"
    )
    write_results("app_latency", figures)
    return 0


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    result.add_argument(
        "--model", default=None, help="bundle to open, as a ?model= link does (default: the app's default)"
    )
    result.add_argument(
        "--photo", type=Path, default=None, help=f"photo to classify (default: first in {DEFAULT_PHOTO})"
    )
    result.add_argument(
        "--trips", type=int, default=10, help="round trips after the first prediction (default: 10)"
    )
    return result


def variants(photo: Path, count: int, folder: Path) -> list[Path]:
    """`count` copies of the photo, each with one pixel changed, so every upload is a new file."""
    base = Image.open(photo).convert("RGB")
    paths = []
    for index in range(count):
        image = base.copy()
        image.putpixel((index % image.width, 0), (index % 256, 0, 0))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=92)
        path = folder / f"photo-{index:03d}.jpg"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_app(port: int, python: str = sys.executable, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`streamlit run` on 127.0.0.1:`port` with `python`, its environment updated with `env`."""
    command = [python, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port)]
    command += ["--server.headless", "true", "--server.address", "127.0.0.1"]
    return subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for_health(url: str, deadline: float) -> None:
    """Return once the server at `url` answers its health check; the server needs a moment to start."""
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1):
                return
        except OSError:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"the app at {url} did not start in time") from None
            time.sleep(0.1)


def first_prediction(page, url: str, query: str, photo: Path, started: float) -> float:
    wait_for_health(url, started + 120)
    page.goto(url + query, timeout=60_000)
    page.locator("input[type=file]").first.wait_for(state="attached", timeout=60_000)
    page.locator("input[type=file]").first.set_input_files(str(photo))
    answered = page.locator("[data-testid=stProgress]").or_(page.get_by_text("No animal found"))
    answered.first.wait_for(timeout=90_000)  # bars, or a blank frame's answer
    return time.perf_counter() - started


def round_trip(page, photo: Path) -> float:
    before = page.locator("[data-testid=stImage] img").first.get_attribute("src")
    start = time.perf_counter()
    page.locator("input[type=file]").first.set_input_files(str(photo))
    page.wait_for_function(
        """before => {
            const img = document.querySelector('[data-testid=stImage] img');
            const bars = document.querySelectorAll('[data-testid=stProgress]');
            const blank = document.body.innerText.includes('No animal found');
            return img && img.src !== before && (bars.length > 0 || blank) && !document.querySelector('[data-testid=stStatusWidget] *');
        }""",
        arg=before,
        timeout=30_000,
    )
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
