"""Many visitors at once: browser sessions against one `streamlit run`, each classifying its own photos at
the same time; then one session classifying photo after photo while the server's memory is read.

    .venv/bin/python benchmarks/load_test.py                          # habitat: 8 x 10 at once, 300 in a row
    .venv/bin/python benchmarks/load_test.py --sessions 12 --rounds 5 --series 0

Every result is checked against the label and confidence the same model gives the same photo in this
process, so a session shown another session's result (or an error) counts as wrong. Reports the round
trip (photo set in the page's file input -> its result on the page) p50/p95 and the server's resident
memory (VmRSS in /proc) along the series. Photos: ../shared/data/intel/valid (or --photos DIR).
Prints the figures and writes them to benchmarks/results/load_test-<time>.json.
tests/test_load.py runs the same code with the tiny test bundle and fewer photos.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = REPO.parent / "shared/data/intel/valid"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# True in the page once its script run is over (Streamlit marks the app element for its own tests).
SCRIPT_DONE = "document.querySelector('[data-testid=stApp]').dataset.testScriptState === 'notRunning'"
WAIT_SECONDS = 120  # for any one result: bounds a run whose server stopped answering
SETTLE_SECONDS = 0.5  # a result that stays this long is the run's last
# A new result is on the page: the shown photo changed, its bars are drawn, the script run is over and no
# element of the previous run is left (short runs end before the "Running" widget ever shows, and the
# old bars stay on the page, marked stale, until the new ones replace them). The run's state is read too:
# with 8 sessions at once the new photo once showed above the previous photo's bars, before either sign.
NEW_RESULT = """before => {
    const img = document.querySelector('[data-testid=stImage] img');
    return img && img.src !== before && document.querySelector('[data-testid=stProgress]')
        && !document.querySelector('[data-testid=stElementContainer][data-stale=true]')
        && !document.querySelector('[data-testid=stStatusWidget] *')
        && document.querySelector('[data-testid=stApp]').dataset.testScriptState === 'notRunning';
}"""
ERRORS = "[data-testid=stException], [data-testid=stAlertContentError]"
BAR = re.compile(r"(?P<name>.+) · (?P<percent>[\d.]+)%")


@dataclass(frozen=True)
class Expected:
    """What the page must show for a photo: its top class's name and confidence."""

    name: str
    confidence: float

    def matches(self, bar: str) -> bool:
        shown = BAR.fullmatch(bar.strip())
        # Torch on another thread count can move the last digit, hence the tolerance; another photo's
        # result nearly always differs by more, and the tests' neighbouring photos differ in the name.
        return (
            bool(shown)
            and shown["name"] == self.name
            and abs(float(shown["percent"]) - 100 * self.confidence) < 0.2
        )


@dataclass(frozen=True)
class Trip:
    seconds: float
    bar: str
    right: bool


async def open_session(browser, url: str):
    """A new visitor (own browser context, so own Streamlit session) on the classify page."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(url, timeout=WAIT_SECONDS * 1000)
    await page.locator("input[type=file]").first.wait_for(state="attached", timeout=WAIT_SECONDS * 1000)
    return page


async def classify(page, photo: Path, expected: Expected) -> Trip:
    shown = page.locator("[data-testid=stImage] img")
    before = await shown.first.get_attribute("src") if await shown.count() else None
    started = time.perf_counter()
    await page.locator("input[type=file]").first.set_input_files(str(photo))
    await page.wait_for_function(NEW_RESULT, arg=before, timeout=WAIT_SECONDS * 1000)
    seconds = time.perf_counter() - started
    bar = await page.locator("[data-testid=stProgress]").first.inner_text()
    # A run stopped early for a rerun can leave the new photo above the old bars with no run going for a
    # moment (eight sessions at once on 2 cores: twice in fresh clones). The result counts once it holds.
    deadline = started + WAIT_SECONDS
    while time.perf_counter() < deadline:
        await asyncio.sleep(SETTLE_SECONDS)
        again = await page.locator("[data-testid=stProgress]").first.inner_text()
        if again == bar and await page.evaluate(f"({NEW_RESULT})", before):
            break
        await page.wait_for_function(NEW_RESULT, arg=before, timeout=WAIT_SECONDS * 1000)
        bar = await page.locator("[data-testid=stProgress]").first.inner_text()
    return Trip(seconds, bar, expected.matches(bar))


async def errors_on(page) -> int:
    return await page.locator(ERRORS).count()


async def concurrent_sessions(
    url: str, plans: list[list[tuple[Path, Expected]]]
) -> tuple[list[list[Trip]], list[int]]:
    """Open one session per plan, then let all of them classify their photos at the same time.

    Returns each session's trips and the error elements left on its page.
    """
    async with launched() as browser:
        pages = await asyncio.gather(*(open_session(browser, url) for _ in plans))

        async def run(page, plan: list[tuple[Path, Expected]]) -> list[Trip]:
            return [await classify(page, photo, expected) for photo, expected in plan]

        trips = await asyncio.gather(*(run(page, plan) for page, plan in zip(pages, plans, strict=True)))
        errors = await asyncio.gather(*(errors_on(page) for page in pages))
    return list(trips), list(errors)


async def series(
    url: str, plan: list[tuple[Path, Expected]], pid: int, every: int = 10
) -> tuple[list[Trip], list[tuple[int, float]]]:
    """One session classifying `plan` in a row; the server's resident MiB after every `every` photos."""
    async with launched() as browser:
        page = await open_session(browser, url)
        trips, memory = [], [(0, resident_mib(pid))]
        for done, (photo, expected) in enumerate(plan, start=1):
            trips.append(await classify(page, photo, expected))
            if done % every == 0:
                memory.append((done, resident_mib(pid)))
    return trips, memory


@asynccontextmanager
async def launched() -> AsyncIterator:
    """Debian's Chromium through Playwright's async API, closed on the way out."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # the kernel writes kB
    raise ValueError(f"no VmRSS for process {pid}")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def expectations(bundle_dir: Path, photos: list[Path], names: dict[str, str]) -> list[Expected]:
    """What the app must show for each photo: the model's answer here, by the page's own code path."""
    sys.path.insert(0, str(REPO))
    from classifier.intake.images import load_photo
    from classifier.models.bundles import read_bundle
    from classifier.models.predict import Predictor
    from classifier.models.runtimes import load_model

    predictor = Predictor(load_model(read_bundle(bundle_dir)), top_k=1)
    results = [predictor.predict_image(load_photo(photo).image) for photo in photos]
    return [Expected(names.get(r.label, r.label), r.confidence) for r in results]


# --- the benchmark ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    photos = sorted(args.photos.rglob("*.jpg"))
    needed = args.sessions * args.rounds + args.series
    if len(photos) < needed:
        print(
            f"error: {args.photos} has {len(photos)} photos, {needed} needed; pass --photos", file=sys.stderr
        )
        return 2
    figures = measure(args, photos[:needed])
    print(
        f"{args.sessions} sessions x {args.rounds} photos at once: p50 {figures['concurrent_p50_s']:.2f} s, "
        f"p95 {figures['concurrent_p95_s']:.2f} s, {figures['concurrent_wrong']} wrong, "
        f"{figures['concurrent_errors']} errors"
    )
    if args.series:
        memory = figures["series_rss_mib"]
        print(
            f"{args.series} photos in one session: p50 {figures['series_p50_s']:.2f} s, "
            f"{figures['series_wrong']} wrong; server RSS "
            + ", ".join(f"{mib:.0f} MiB after {done}" for done, mib in memory[:: max(1, len(memory) // 6)])
        )
    from record import write_results  # benchmarks/ is on the path when this runs as a script

    write_results("load_test", figures)
    return (
        0 if figures["concurrent_wrong"] + figures["concurrent_errors"] + figures["series_wrong"] == 0 else 1
    )


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    result.add_argument("--model", default="habitat", help="bundle under models/ (default: habitat)")
    result.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="folder of .jpg photos")
    result.add_argument("--sessions", type=int, default=8, help="browser sessions at once (default: 8)")
    result.add_argument("--rounds", type=int, default=10, help="photos each session classifies (default: 10)")
    result.add_argument(
        "--series", type=int, default=300, help="photos one session classifies in a row (default: 300)"
    )
    return result


def measure(args: argparse.Namespace, photos: list[Path]) -> dict:
    from app_latency import free_port, start_app, wait_for_health

    bundle_dir = REPO / "models" / args.model
    sys.path.insert(0, str(REPO))
    from classifier.knowledge.species import find_species_book

    book = find_species_book(args.model)
    names = {key: entry.common_name for key, entry in (book.entries if book else {}).items()}
    plan = list(zip(photos, expectations(bundle_dir, photos, names), strict=True))
    together = plan[: args.sessions * args.rounds]
    plans = [together[s :: args.sessions] for s in range(args.sessions)]
    port = free_port()
    url = f"http://127.0.0.1:{port}/?model={args.model}"
    server = start_app(port)
    load_average = os.getloadavg()[0]
    try:
        wait_for_health(f"http://127.0.0.1:{port}", time.perf_counter() + 120)
        asyncio.run(concurrent_sessions(url, [plan[-1:]]))  # the first visitor loads the model: not timed
        started = time.perf_counter()
        trips, errors = asyncio.run(concurrent_sessions(url, plans))
        concurrent_s = time.perf_counter() - started
        in_row, memory = (
            asyncio.run(series(url, plan[len(together) :], server.pid)) if args.series else ([], [])
        )
    finally:
        server.terminate()
        server.wait(timeout=20)
    seconds = [trip.seconds for session in trips for trip in session]
    return {
        "benchmark": "load_test",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": args.model,
        "cpus": os.cpu_count(),
        "load_average_1min": load_average,
        "sessions": args.sessions,
        "rounds": args.rounds,
        "concurrent_wall_s": round(concurrent_s, 1),
        "concurrent_p50_s": round(statistics.median(seconds), 3),
        "concurrent_p95_s": round(percentile(seconds, 0.95), 3),
        "concurrent_max_s": round(max(seconds), 3),
        "concurrent_wrong": sum(not trip.right for session in trips for trip in session),
        "concurrent_errors": sum(errors),
        "series": len(in_row),
        "series_p50_s": round(statistics.median(t.seconds for t in in_row), 3) if in_row else None,
        "series_wrong": sum(not trip.right for trip in in_row),
        "series_rss_mib": [(done, round(mib, 1)) for done, mib in memory],
    }


if __name__ == "__main__":
    sys.exit(main())
