"""`python -m classifier`: exit codes, the CSV/JSON a field user opens, and what Ctrl-C leaves behind."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from classifier import cli
from classifier.models.predict import Predictor
from classifier.schema.rows import CSV_COLUMNS
from conftest import TINY_CLASSES, make_tiny_image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    for label in TINY_CLASSES:
        (folder / label).mkdir(parents=True)
        for i in range(2):
            make_tiny_image(label, seed=30 + i).save(folder / label / f"{label}{i}.jpg")
    (folder / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (folder / "notes.txt").write_text("field notes")
    (folder / "thumbs.db").write_bytes(b"\x00")
    return folder


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_predict_writes_a_csv_row_per_photo(capsys, tiny_bundle, photos, tmp_path):
    out = tmp_path / "labels.csv"
    code, stdout, stderr = run(
        capsys, "predict", "--model", tiny_bundle, "--out", out, "--workers", "2", photos
    )

    assert code == 0 and stdout == ""
    with open(out, newline="") as handle:
        assert next(csv.reader(handle)) == list(CSV_COLUMNS)
    rows = read_csv(out)
    assert [Path(r["path"]).name for r in rows] == [
        "blue0.jpg",
        "blue1.jpg",
        "green0.jpg",
        "green1.jpg",
        "broken.jpg",
        "red0.jpg",
        "red1.jpg",
    ]
    by_name = {Path(r["path"]).name: r for r in rows}
    assert by_name["green1.jpg"]["label"] in TINY_CLASSES and by_name["green1.jpg"]["status"] != "error"
    assert by_name["broken.jpg"]["status"] == "error" and by_name["broken.jpg"]["error"]
    assert all(r["sequence_id"].startswith("seq") for r in rows if r["status"] != "error")
    assert "7 photos: " in stderr and "1 error" in stderr
    assert "Skipped 2 files: 2 files without an image extension" in stderr
    assert "broken.jpg" in stderr  # the first errors are shown in the summary


def test_csv_to_stdout_with_sequence_label_and_options(capsys, tiny_bundle, photos):
    code, stdout, _ = run(
        capsys,
        "predict",
        "--model",
        tiny_bundle,
        "--top-k",
        "2",
        "--threshold",
        "1",
        "--sequence-label",
        "--batch-size",
        "2",
        "--workers",
        "0",
        photos / "blue",
    )
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert code == 0 and len(rows) == 2
    assert list(rows[0]) == [*CSV_COLUMNS, "sequence_label"]
    assert all(r["status"] == "uncertain" and r["top_k"].count(":") == 2 for r in rows)
    assert rows[0]["sequence_label"] == rows[0]["label"]


def test_json_output(capsys, tiny_bundle, photos, tmp_path):
    out = tmp_path / "labels.json"
    code, _, _ = run(
        capsys, "predict", "--model", tiny_bundle, "--out", out, "--sequence-gap", "0", photos / "red"
    )
    rows = json.loads(out.read_text())
    assert code == 0 and [Path(r["path"]).name for r in rows] == ["broken.jpg", "red0.jpg", "red1.jpg"]
    assert list(rows[1]) == list(CSV_COLUMNS)
    assert rows[0]["status"] == "error" and rows[0]["confidence"] is None
    assert rows[1]["label"] in TINY_CLASSES and rows[1]["top_k"][0]["label"] == rows[1]["label"]
    assert rows[1]["sequence_id"] is None  # --sequence-gap 0 turns sequences off


def test_missing_model_is_one_line_and_exit_1(capsys, tmp_path, photos):
    code, stdout, stderr = run(
        capsys, "predict", "--models-dir", tmp_path / "none", "--model", "serengeti", photos
    )
    assert code == 1 and stdout == ""
    assert stderr.count("\n") == 1 and "no model named 'serengeti'" in stderr


def test_broken_model_file_is_one_line_and_exit_1(capsys, tmp_path, tiny_bundle, photos):
    import shutil

    bundle = shutil.copytree(tiny_bundle, tmp_path / "tiny")
    (bundle / "model.pkl").write_bytes(b"truncated")
    code, _, stderr = run(capsys, "predict", "--model", bundle, photos)
    assert code == 1 and stderr.count("\n") == 1 and "model.pkl" in stderr and "SHA-256" in stderr


def test_no_inputs_and_no_photos_are_exit_1(capsys, tiny_bundle, tmp_path):
    code, _, stderr = run(capsys, "predict", "--model", tiny_bundle)
    assert code == 1 and stderr.count("\n") == 1 and "no inputs" in stderr
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    code, _, stderr = run(capsys, "predict", "--model", tiny_bundle, tmp_path / "empty")
    assert (
        code == 1 and stderr.count("\n") == 1 and "no photos found" in stderr and "1 files without" in stderr
    )


def test_bad_images_still_exit_0(capsys, tiny_bundle, tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    code, stdout, _ = run(
        capsys, "predict", "--model", tiny_bundle, tmp_path / "a.jpg", tmp_path / "gone.png"
    )
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert code == 0 and [r["status"] for r in rows] == ["error", "error"]


@pytest.mark.parametrize("argv", [["--top-k", "0"], ["--threshold", "2"], ["--sequence-gap", "-1"]])
def test_wrong_options_exit_2(capsys, tiny_bundle, photos, argv):
    with pytest.raises(SystemExit) as caught:
        cli.main(["predict", "--model", str(tiny_bundle), *argv, str(photos)])
    assert caught.value.code == 2


def test_out_must_be_csv_or_json(capsys, tiny_bundle, photos, tmp_path):
    code, _, stderr = run(capsys, "predict", "--model", tiny_bundle, "--out", tmp_path / "x.xlsx", photos)
    assert code == 1 and "name a .csv or .json file" in stderr


def test_a_txt_list_gives_its_rows_in_order_with_a_missing_one_as_an_error_row(capsys, tiny_bundle, photos):
    listed = photos.parent / "pick.txt"
    listed.write_text(
        "# the blue camera, then one red frame\nphotos/blue\n\nphotos/red/gone.jpg\nphotos/red/red1.jpg\n"
    )
    code, stdout, stderr = run(capsys, "predict", "--model", tiny_bundle, "--sequence-gap", "0", listed)

    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert code == 0, stderr
    assert [r["path"] for r in rows] == [
        str(photos / "blue" / "blue0.jpg"),
        str(photos / "blue" / "blue1.jpg"),
        str(photos / "red" / "gone.jpg"),
        str(photos / "red" / "red1.jpg"),
    ]
    assert [r["status"] == "error" for r in rows] == [False, False, True, False]
    assert rows[2]["error"] == "gone.jpg: file not found; check the path."


def test_the_csv_predict_writes_given_back_gives_the_same_labels(capsys, monkeypatch, tiny_bundle, photos):
    """Re-running on a CSV of an earlier run (here saved in another folder, paths relative to the run)."""
    monkeypatch.chdir(photos.parent)
    (photos.parent / "runs").mkdir()
    assert run(capsys, "predict", "--model", tiny_bundle, "--out", "runs/labels.csv", "photos")[0] == 0
    code, _, stderr = run(capsys, "predict", "--model", tiny_bundle, "--out", "again.csv", "runs/labels.csv")

    columns = ("path", "label", "confidence", "status", "error", "top_k", "sequence_id")
    first, again = read_csv(photos.parent / "runs/labels.csv"), read_csv(photos.parent / "again.csv")
    assert code == 0 and "7 photos: " in stderr
    assert [[r[c] for c in columns] for r in again] == [[r[c] for c in columns] for r in first]
    assert first[0]["path"] == "photos/blue/blue0.jpg"


def test_a_csv_without_a_path_column_is_one_line_and_exit_1(capsys, tiny_bundle, photos):
    table = photos.parent / "counts.csv"
    table.write_text("Label,Count\nzebra,3\n")
    code, stdout, stderr = run(capsys, "predict", "--model", tiny_bundle, table)
    assert code == 1 and stdout == "" and stderr.count("\n") == 1
    assert "needs a column named path, file, filepath or url; its columns are: Label, Count." in stderr


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_ctrl_c_leaves_a_valid_file_of_what_finished(
    capsys, monkeypatch, tiny_bundle, photos, tmp_path, suffix
):
    real = Predictor.predict_many

    def interrupted_after_three(self, items):
        for count, row in enumerate(real(self, items)):
            if count == 3:
                raise KeyboardInterrupt
            yield row

    monkeypatch.setattr(Predictor, "predict_many", interrupted_after_three)
    out = tmp_path / f"labels{suffix}"
    code, _, stderr = run(capsys, "predict", "--model", tiny_bundle, "--out", out, photos)

    assert code == 130 and "Interrupted: 3 of 7 photos" in stderr
    rows = read_csv(out) if suffix == ".csv" else json.loads(out.read_text())
    assert [Path(r["path"]).name for r in rows] == ["blue0.jpg", "blue1.jpg", "green0.jpg"]
    assert all(r["sequence_id"] for r in rows)  # held-back rows were given their sequences and written


def test_models_lists_bundles_and_broken_ones(capsys, tiny_bundle, tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.pkl").write_bytes(b"x")
    code, stdout, _ = run(capsys, "models", "--models-dir", tiny_bundle.parent, "--models-dir", tmp_path)
    lines = stdout.splitlines()
    assert code == 0 and lines[0].split() == ["name", "classes", "accuracy", "title"]
    assert lines[1].split()[:2] == ["half", "-"] and "BROKEN" in lines[1]
    assert lines[2].split()[:2] == ["tiny", "3"]


def test_evaluate_writes_the_report_schema(capsys, tiny_bundle, tiny_dataset, tmp_path):
    from classifier.results.report import EVALUATION_SCHEMA, read_report

    data = tmp_path / "data"
    import shutil

    shutil.copytree(tiny_dataset, data)
    (data / "zebra").mkdir()
    make_tiny_image("red", seed=1).save(data / "zebra" / "z.jpg")
    (data / "red" / "damaged.jpg").write_bytes(b"\xff\xd8")
    out = tmp_path / "eval.json"

    code, stdout, stderr = run(capsys, "evaluate", "--model", tiny_bundle, data, "--out", out)

    assert code == 0 and "accuracy" in stdout and "Left out 1 photos" in stderr
    report = read_report(out, schema=EVALUATION_SCHEMA)
    assert report["classes"] == list(TINY_CLASSES)
    assert sum(map(sum, report["confusion_matrix"])) == len(list(tiny_dataset.rglob("*.*")))
    assert {s["file"] for s in report["skipped"]} == {"zebra/z.jpg", "red/damaged.jpg"}
    assert all(not Path(loss["file"]).is_absolute() for loss in report["top_losses"])


def test_evaluate_with_no_known_classes_is_exit_1(capsys, tiny_bundle, tmp_path):
    (tmp_path / "data" / "zebra").mkdir(parents=True)
    make_tiny_image("red").save(tmp_path / "data" / "zebra" / "z.jpg")
    code, _, stderr = run(capsys, "evaluate", "--model", tiny_bundle, tmp_path / "data")
    assert code == 1 and stderr.count("\n") == 1 and "none of its 1 labeled photos" in stderr


class _OnePhoto(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        buffer = io.BytesIO()
        make_tiny_image("green", seed=4).save(buffer, "JPEG")
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(buffer.getvalue())))
        self.end_headers()
        self.wfile.write(buffer.getvalue())

    def log_message(self, *args) -> None:
        pass


@pytest.mark.slow
def test_python_m_classifier_end_to_end_with_a_url(tiny_bundle, photos, tmp_path):
    """The real command in a fresh process, a URL on a local server allowed only by the test switch."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OnePhoto)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/trap.jpg"
    out, out_refused = tmp_path / "labels.csv", tmp_path / "refused.csv"
    command = [sys.executable, "-m", "classifier", "predict", "--model", str(tiny_bundle)]
    env = {**os.environ, cli.LOOPBACK_SWITCH: "1"}
    try:
        done = subprocess.run(
            [*command, "--out", str(out), str(photos / "green"), url],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        refused = subprocess.run(
            [*command, "--out", str(out_refused), url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={k: v for k, v in os.environ.items() if k != cli.LOOPBACK_SWITCH},
        )
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    rows = read_csv(out)
    assert [r["path"] for r in rows][-1] == url and rows[-1]["status"] != "error"
    assert refused.returncode == 0 and read_csv(out_refused)[0]["status"] == "error"
    assert "public" in read_csv(out_refused)[0]["error"]
