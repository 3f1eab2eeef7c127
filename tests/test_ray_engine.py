"""`predict --engine ray`: a local Ray with 2 CPUs writes the local engine's rows, survives a killed actor,
and leaves a valid CSV after Ctrl-C. One Ray session serves the whole module (starting one takes seconds)."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from classifier import cli
from classifier.intake.inputs import expand_inputs
from classifier.models.bundles import resolve_bundle
from classifier.models.engines import PredictorOptions, RayEngine, start_local_ray
from conftest import TINY_CLASSES, make_tiny_image

pytestmark = pytest.mark.slow  # servers, browsers or Ray clusters: seconds each

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]
PHOTOS, BROKEN_EVERY = 200, 17


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray with 2 CPUs for this module's tests; the engines use it and leave it running."""
    start_local_ray(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def many_photos(tmp_path_factory) -> Path:
    """200 small generated photos in three folders, every 17th one broken."""
    folder = tmp_path_factory.mktemp("ray_photos")
    for index in range(PHOTOS):
        label = TINY_CLASSES[index % len(TINY_CLASSES)]
        path = folder / label / f"{index:03d}.jpg"
        path.parent.mkdir(exist_ok=True)
        if index % BROKEN_EVERY == 5:
            path.write_bytes(b"\xff\xd8\xff\xe0 cut short")
        else:
            make_tiny_image(label, seed=index, size=48).save(path)
    return folder


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def without_time(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The rows less `classified_at`, the one column that differs between two runs."""
    return [{k: v for k, v in row.items() if k != "classified_at"} for row in rows]


@pytest.fixture(scope="module")
def local_rows(tiny_bundle, many_photos, tmp_path_factory) -> list[dict[str, str]]:
    out = tmp_path_factory.mktemp("local") / "labels.csv"
    assert cli.main(["predict", "--model", str(tiny_bundle), "--out", str(out), str(many_photos)]) == 0
    return read_rows(out)


def test_ray_writes_the_local_engines_rows_row_for_row(
    capsys, local_ray, tiny_bundle, many_photos, local_rows, tmp_path
):
    out = tmp_path / "labels.csv"
    argv = ["predict", "--engine", "ray", "--model", str(tiny_bundle), "--out", str(out), str(many_photos)]
    code = cli.main(argv)
    stderr = capsys.readouterr().err

    rows = read_rows(out)
    assert code == 0, stderr
    assert len(rows) == PHOTOS and without_time(rows) == without_time(local_rows)
    errors = [r for r in rows if r["status"] == "error"]
    assert len(errors) == len(range(5, PHOTOS, BROKEN_EVERY)) and all(r["error"] for r in errors)
    assert f"{PHOTOS} photos: " in stderr and f"{len(errors)} error" in stderr


def _classifying_actors() -> list:
    """This test process's own Ray actor processes that classify (never another user's Ray)."""
    import psutil

    mine = psutil.Process(os.getpid()).children(recursive=True)
    return [p for p in mine if "_ClassifyBatches" in " ".join(_cmdline(p))]


def _cmdline(process) -> list[str]:
    import psutil

    try:
        return process.cmdline()
    except psutil.Error:
        return []


def test_ray_reads_a_folder_uri_as_the_local_engine_reads_the_folder(
    capsys, local_ray, tiny_bundle, tmp_path
):
    """Object-store inputs are read in Ray's decoding tasks (classifier/intake/objectstore.py), here
    through pyarrow's file:// filesystem; a few photos, since the pipeline is the one tested above."""
    folder = tmp_path / "photos"
    for index in range(9):
        label = TINY_CLASSES[index % len(TINY_CLASSES)]
        (folder / label).mkdir(parents=True, exist_ok=True)
        make_tiny_image(label, seed=index, size=48).save(folder / label / f"{index}.jpg")
    local, remote = tmp_path / "local.csv", tmp_path / "ray.csv"
    model = ["--model", str(tiny_bundle)]

    assert cli.main(["predict", *model, "--out", str(local), str(folder)]) == 0
    assert (
        cli.main(
            ["predict", "--engine", "ray", "--workers", "1", *model, "--out", str(remote), folder.as_uri()]
        )
        == 0
    ), capsys.readouterr().err

    plain, listed = without_time(read_rows(local)), without_time(read_rows(remote))
    assert [row["path"] for row in listed] == [Path(row["path"]).as_uri() for row in plain]
    assert [{**row, "path": ""} for row in listed] == [{**row, "path": ""} for row in plain]
    assert len(plain) == 9 and all(row["status"] != "error" for row in plain)


def test_ray_reads_a_txt_list_as_the_local_engine_does(capsys, local_ray, tiny_bundle, many_photos, tmp_path):
    """Lists are expanded before either engine runs; a few rows show Ray gets them in list order."""
    # 005 is one of the broken photos; absolute paths, since many_photos is shared by the module
    picked = [many_photos / TINY_CLASSES[i % len(TINY_CLASSES)] / f"{i:03d}.jpg" for i in (4, 5, 0)]
    listed = tmp_path / "pick.txt"
    listed.write_text("\n".join(["# three photos and a missing one", *map(str, picked), "gone.jpg"]))
    local, remote = tmp_path / "local.csv", tmp_path / "ray.csv"
    model = ["--model", str(tiny_bundle)]

    assert cli.main(["predict", *model, "--out", str(local), str(listed)]) == 0
    ray_run = ["predict", "--engine", "ray", "--workers", "1", *model, "--out", str(remote), str(listed)]
    assert cli.main(ray_run) == 0, capsys.readouterr().err

    rows = without_time(read_rows(remote))
    assert rows == without_time(read_rows(local))
    assert [Path(r["path"]).name for r in rows] == ["004.jpg", "005.jpg", "000.jpg", "gone.jpg"]
    assert [r["status"] == "error" for r in rows] == [False, True, False, True]


def test_a_killed_actor_is_retried_and_no_row_is_lost_or_doubled(
    local_ray, tiny_bundle, many_photos, local_rows
):
    items = expand_inputs([str(many_photos)]).items
    engine = RayEngine(resolve_bundle(str(tiny_bundle)), PredictorOptions(), workers=2)
    rows, killed = [], []
    for row in engine.predict_many(items):
        rows.append(row)
        if not killed:  # the first batch is out: the others are queued or running on the actors
            killed = _classifying_actors()
            assert killed  # every classifying actor alive now (a leftover of an earlier run too)
            for process in killed:
                process.send_signal(signal.SIGKILL)
    engine.close()

    assert [r.path for r in rows] == [r["path"] for r in local_rows]
    assert [r.label for r in rows] == [r["label"] for r in local_rows]
    assert engine.lost == 0
    restarted = _classifying_actors()
    assert restarted and not {p.pid for p in restarted} & {p.pid for p in killed}


def test_address_with_the_local_engine_and_a_malformed_address_are_one_line(capsys, tiny_bundle, many_photos):
    common = ["predict", "--model", str(tiny_bundle), "--out", "x.csv", str(many_photos)]
    assert cli.main([*common, "--address", "auto"]) == 1
    assert capsys.readouterr().err.strip().endswith("--address is for --engine ray.")
    assert cli.main([*common, "--engine", "ray", "--address", "not an address"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--address not an address: give" in error


def test_an_address_where_nothing_answers_is_one_line_at_once(capsys, tiny_bundle, many_photos):
    with socket.socket() as closed:  # a port nothing listens on once this block ends
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    argv = ["predict", "--engine", "ray", "--address", f"127.0.0.1:{port}", "--model", str(tiny_bundle)]
    started = time.perf_counter()
    assert cli.main([*argv, str(many_photos)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "nothing answers there" in error
    assert time.perf_counter() - started < 30  # Ray alone retries for minutes


def test_engine_ray_without_ray_installed_is_one_line(capsys, monkeypatch, tiny_bundle, many_photos):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when it is not installed
    argv = ["predict", "--engine", "ray", "--model", str(tiny_bundle), str(many_photos)]
    assert cli.main(argv) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "pip install 'ray[data]'" in error


def test_the_cli_and_the_local_engine_never_import_ray():
    code = "import sys, classifier.cli, classifier.models.engines, classifier.models.predict; print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_ctrl_c_during_a_ray_run_leaves_a_valid_csv_of_what_finished(
    capsys, monkeypatch, local_ray, tiny_bundle, many_photos, local_rows, tmp_path
):
    """SIGINT arrives while the engine waits on Ray (as Ctrl-C would), a few rows into the run."""
    real = RayEngine.predict_many

    def interrupted_after_three(self, items):
        for count, row in enumerate(real(self, items)):
            if count == 3:
                threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT)).start()
                # Ctrl-C lands here at the latest: without the wait, a quick machine finished the run first.
                time.sleep(60)
            yield row

    monkeypatch.setattr(RayEngine, "predict_many", interrupted_after_three)
    # Python's own Ctrl-C handler, as a fresh `python -m classifier` has: in the full suite an earlier
    # test's library had replaced it, and the signal then ended nothing (exit 0).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    out = tmp_path / "labels.csv"
    try:
        code = cli.main(
            ["predict", "--engine", "ray", "--model", str(tiny_bundle), "--out", str(out), str(many_photos)]
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    stderr = capsys.readouterr().err

    rows = read_rows(out)
    assert code == 130 and f"Interrupted: {len(rows)} of {PHOTOS} photos" in stderr
    assert 3 <= len(rows) < PHOTOS
    # sequence_id aside: the interruption may cut the last sequence short
    assert [(r["path"], r["label"], r["status"]) for r in rows] == [
        (r["path"], r["label"], r["status"]) for r in local_rows[: len(rows)]
    ]


def test_a_run_stopped_early_has_ended_its_threads_before_ray_shuts_down(
    monkeypatch, local_ray, tiny_bundle, many_photos
):
    """As Ctrl-C stops a run: a Ray Data thread still fetching a block at `ray.shutdown()` touched the
    shut-down worker, and Ray ended the whole process (pytest itself, on a busy machine)."""
    from ray.data._internal.block_batching import iter_batches

    real = iter_batches.resolve_block_refs

    def slow(*args, **kwargs):  # each block fetched as slowly as on that busy machine
        for block in real(*args, **kwargs):
            time.sleep(0.5)
            yield block

    monkeypatch.setattr(iter_batches, "resolve_block_refs", slow)
    engine = RayEngine(resolve_bundle(str(tiny_bundle)), PredictorOptions(), workers=2)
    threads = set(threading.enumerate())
    rows = engine.predict_many(expand_inputs([str(many_photos)]).items)
    assert next(rows).path
    rows.close()
    # Ray Data's block prefetcher parks (touching nothing) until its iterator is collected.
    assert not [t.name for t in set(threading.enumerate()) - threads if t.name != "Prefetcher"]
