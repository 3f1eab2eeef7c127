"""Many visitors at once, one visitor for a long time, and an upload over the limit, on a real server.

Eight Chromium sessions against one `streamlit run` classify different photos at the same time; each
must be shown the result of its own photo (label and confidence, as the same model gives them in this
process) and no error. The 300-classification memory check drives the same page script through
Streamlit's AppTest in this process, not through a browser (a browser round trip costs about a second
here); `benchmarks/load_test.py` runs the 300 through Chromium against `streamlit run` and gives the
figures in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import os
import statistics
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from benchmarks.load_test import (
    Expected,
    classify,
    concurrent_sessions,
    expectations,
    launched,
    open_session,
    percentile,
    resident_mib,
)
from conftest import TINY_CLASSES, make_tiny_image
from live_app import ROOT, TINY_NAMES, needs_chromium, running_app, tiny_app_folders

SESSIONS, ROUNDS = 8, 3
UPLOAD_LIMIT = 200 * 2**20  # server.maxUploadSize in .streamlit/config.toml, in bytes
# After LEVEL_FROM classifications the resident set grows less than LEVEL_MIB. AppTest's upload store
# keeps every upload (a browser deletes the file it replaces), about 11 MB over 200 of these photos; a
# leaked decoded photo would add 340 MB.
SERIES, LEVEL_FROM, LEVEL_MIB = 300, 100, 30

Plan = list[tuple[Path, Expected]]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(URL, server log) of one `streamlit run` shared by the module's browser tests."""
    log = tmp_path_factory.mktemp("load") / "streamlit.log"
    with running_app(*tiny_app_folders(tiny_bundle, tmp_path_factory), log=log) as (url, _):
        yield url, log


@pytest.fixture(scope="module")
def plans(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Plan]:
    """Per session, distinct photos of known colours (rotating through the classes) that the tiny model
    labels right, each with what the page must show for it."""
    folder = tmp_path_factory.mktemp("load_photos")
    candidates = []
    for session in range(SESSIONS):
        for step in range(ROUNDS):
            label = TINY_CLASSES[(session + step) % len(TINY_CLASSES)]
            for attempt in range(6):  # the tiny model is wrong on some photos: 6 tries per slot
                path = folder / f"s{session}-r{step}-{label}-{attempt}.jpg"
                make_tiny_image(label, seed=10_000 * session + 100 * step + attempt).save(path, quality=92)
                candidates.append((session, step, label, path))
    chosen: dict[tuple[int, int], tuple[Path, Expected]] = {}
    results = expectations(tiny_bundle, [path for *_, path in candidates], TINY_NAMES)
    for (session, step, label, path), result in zip(candidates, results, strict=True):
        if (session, step) not in chosen and result.name == TINY_NAMES[label]:
            chosen[session, step] = (path, result)
    assert len(chosen) == SESSIONS * ROUNDS, "the tiny model got none of a slot's photos right"
    return [[chosen[session, step] for step in range(ROUNDS)] for session in range(SESSIONS)]


@pytest.mark.browser
@needs_chromium
@pytest.mark.timeout(420)
def test_eight_sessions_classifying_at_once_each_see_their_own_result(
    served: tuple[str, Path], plans: list[Plan]
) -> None:
    url, log = served
    asyncio.run(concurrent_sessions(url, [plans[0][:1]]))  # the first visitor loads the model: not timed
    trips, errors = asyncio.run(concurrent_sessions(url, plans))

    wrong = [
        (photo.name, f"expected {expected.name} {expected.confidence:.1%}", f"shown {trip.bar}")
        for plan, session_trips in zip(plans, trips, strict=True)
        for (photo, expected), trip in zip(plan, session_trips, strict=True)
        if not trip.right
    ]
    assert wrong == [] and errors == [0] * SESSIONS
    assert "Traceback" not in log.read_text(errors="replace")
    seconds = [trip.seconds for session in trips for trip in session]
    assert len(seconds) == SESSIONS * ROUNDS
    print(
        f"\n{SESSIONS} sessions x {ROUNDS} photos at once: round trip p50 {statistics.median(seconds):.2f} s, "
        f"p95 {percentile(seconds, 0.95):.2f} s, max {max(seconds):.2f} s"
    )


@pytest.mark.browser
@needs_chromium
@pytest.mark.timeout(180)
def test_an_upload_over_200_mb_is_refused_by_page_and_server_and_the_page_goes_on(
    served: tuple[str, Path], plans: list[Plan], tmp_path: Path
) -> None:
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as handle:
        handle.truncate(UPLOAD_LIMIT + 1)  # sparse: one byte over the limit, no disk used
    url, log = served
    photo, expected = plans[1][0]
    refusal, trip, answers = asyncio.run(upload_over_the_limit(url, huge, photo, expected))

    assert refusal == "Error: File must be 200.0MB or smaller."
    assert trip.right  # the same page still classifies the next photo
    # A client that skips the page's check: refused from its Content-Length, or while streaming.
    assert answers == [(413, b"File too large"), (413, b"File too large")]
    assert "Upload rejected: request body exceeded the size limit while streaming" in log.read_text()


async def upload_over_the_limit(url: str, huge: Path, photo: Path, expected: Expected):
    """The page's refusal of `huge`, the trip classifying `photo` after it, and the server's answers to
    over-limit uploads sent straight to its upload endpoint in this session."""
    async with launched() as browser:
        page = await open_session(browser, url)
        uploads = []
        page.on(
            "request", lambda request: uploads.append(request) if "/upload_file/" in request.url else None
        )
        await page.locator("input[type=file]").first.set_input_files(str(huge))
        refusal = page.get_by_text("or smaller").first
        await refusal.wait_for(timeout=30_000)
        message = (await refusal.inner_text()).strip()
        trip = await classify(page, photo, expected)
        headers = await uploads[-1].all_headers()  # the session's id and XSRF token, as the page sends them
        answers = [
            await asyncio.to_thread(put_upload, uploads[-1].url, headers, streamed)
            for streamed in (False, True)
        ]
    return message, trip, answers


def put_upload(url: str, headers: dict[str, str], streamed: bool) -> tuple[int, bytes]:
    """PUT a file 1 MiB over the limit to Streamlit's upload endpoint: declared, or chunked without a size."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    connection.putrequest("PUT", parts.path)
    connection.putheader("X-Xsrftoken", headers["x-xsrftoken"])
    connection.putheader("Cookie", headers["cookie"])
    connection.putheader("Content-Type", "multipart/form-data; boundary=cut")
    connection.putheader(
        "Transfer-Encoding" if streamed else "Content-Length",
        "chunked" if streamed else str(UPLOAD_LIMIT + 2**20),
    )
    connection.endheaders()
    if streamed:
        part = b'--cut\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n\r\n'
        try:
            for block in [part, *[bytes(2**20)] * (UPLOAD_LIMIT // 2**20 + 2)]:
                connection.send(b"%x\r\n%s\r\n" % (len(block), block))
        except OSError:  # the server may close as soon as it has refused
            pass
    response = connection.getresponse()
    return response.status, response.read()


@pytest.mark.timeout(300)
def test_memory_levels_off_over_300_classifications_in_one_session(
    tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from classifier.models.bundles import find_bundles
    from classifier.models.runtimes import compile_bundle, default_runtime

    models, species = tiny_app_folders(tiny_bundle, tmp_path_factory)
    monkeypatch.setenv("WILDLIFE_MODELS_DIR", str(models))
    monkeypatch.setenv("WILDLIFE_SPECIES_DIR", str(species))
    # Compiled first, as `make run` does: otherwise torch serves while the default runtime compiles in the
    # background, and a one-time switch (about 90 MiB for OpenVINO's libraries) would read as a leak.
    for bundle in find_bundles(models):
        compile_bundle(bundle, runtime=default_runtime(app=True))
    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    memory = {}
    for done in range(1, SERIES + 1):
        label = TINY_CLASSES[done % len(TINY_CLASSES)]
        # 768 px (a 96 px photo, each pixel 8x8): a leaked decoded photo would be 1.7 MB each time.
        photo = make_tiny_image(label, seed=done).resize((768, 768), Image.NEAREST)
        buffer = io.BytesIO()
        photo.save(buffer, format="JPEG", quality=90)
        app.file_uploader(key="classify_upload").upload(f"{done}.jpg", buffer.getvalue(), "image/jpeg").run()
        assert not app.exception and not app.error
        assert app.get("progress")[0].proto.text.split(" · ")[0] in TINY_NAMES.values()
        if done % 25 == 0:
            memory[done] = resident_mib(os.getpid())
    growth = max(m for n, m in memory.items() if n >= LEVEL_FROM) - memory[LEVEL_FROM]
    print(
        f"\nresident memory over {SERIES} classifications: "
        + ", ".join(f"{n}: {m:.0f} MiB" for n, m in memory.items())
    )
    assert growth < LEVEL_MIB, memory
