"""`--precision auto`: bf16 for each network only where the CPU has native bfloat16 and bf16 kept fp32's
answers; the CPU's flags and the agreement figures are stubbed, so these pass on any machine."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from classifier import cli
from classifier.models import agreement as measuring
from classifier.models import precision, runtimes
from classifier.models.bundles import read_bundle
from classifier.models.precision import AUTO, CLASSIFIER, DETECTOR, Agreement
from classifier.models.predictors import PredictorOptions

MODEL_SHA, DETECTOR_SHA = "a" * 64, "d" * 64
OPENVINO = runtimes.OPENVINO


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """This machine as the test says: its CPU flags, OpenVINO's version, the detector's weights, an
    empty runtime cache of its own. `machine(bf16=...)` sets the CPU."""
    monkeypatch.setenv(runtimes.CACHE_VARIABLE, str(tmp_path / "cache"))
    monkeypatch.setattr(precision, "runtime_version", lambda runtime: "2026.4.1")
    monkeypatch.setattr(precision, "detector_sha256", lambda: DETECTOR_SHA)

    def cpu(bf16: bool) -> None:
        flags = "fpu sse2 avx2 avx512f" + (" avx512_bf16" if bf16 else "")
        (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n")
        monkeypatch.setattr(precision, "CPUINFO", tmp_path / "cpuinfo")

    cpu(True)
    return cpu


@pytest.fixture
def bundle(tmp_path):
    """A bundle with a detector, as far as choosing needs one: its report alone."""
    folder = tmp_path / "models" / "traps"
    folder.mkdir(parents=True)
    report = {
        "name": "traps",
        "classes": ["zebra", "lion", "blank"],
        "image_size": 224,
        "model_sha256": MODEL_SHA,
        "detector": {"confidence": 0.05, "input_size": 640},
    }
    (folder / "report.json").write_text(json.dumps(report))
    return read_bundle(folder)


def agreement(network: str, agreed: float, **changes) -> Agreement:
    sha, size = (MODEL_SHA, 224) if network == CLASSIFIER else (DETECTOR_SHA, 640)
    figures = dict(
        network=network,
        sha256=sha,
        input_size=size,
        runtime=OPENVINO,
        runtime_version="2026.4.1",
        agreed=agreed,
        compared=400 if network == CLASSIFIER else 160,
        photos=160,
        measured="2026-12-07",
        cpu="Test CPU",
    )
    return Agreement(**{**figures, **changes})


def test_the_cpu_flags_say_whether_bfloat16_is_native(tmp_path, monkeypatch):
    for flags, native in [
        ("avx2 avx512f avx512_bf16", True),
        ("avx512f amx_tile amx_bf16", True),
        ("avx2 avx512f", False),
    ]:
        (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(precision, "CPUINFO", tmp_path / "cpuinfo")
        assert precision.cpu_has_bf16() is native, flags
    # No /proc/cpuinfo (macOS, Windows): what OpenVINO's CPU plugin reports.
    monkeypatch.setattr(precision, "CPUINFO", tmp_path / "absent")
    for reported in (True, False):
        monkeypatch.setattr(precision, "_openvino_has_bf16", lambda reported=reported: reported)
        assert precision.cpu_has_bf16() is reported


def test_a_cpu_without_bfloat16_runs_fp32_whatever_was_measured(machine, bundle):
    machine(bf16=False)
    precision.record(agreement(CLASSIFIER, 1.0))
    precision.record(agreement(DETECTOR, 1.0))
    assert precision.resolve(bundle, OPENVINO, AUTO) == ("fp32", "fp32")
    [choice, _] = precision.choices(bundle, OPENVINO)
    assert choice.precision == "fp32" and "no native bfloat16" in choice.line


def test_bf16_where_the_cpu_has_it_and_both_networks_kept_fp32s_answers(machine, bundle):
    precision.record(agreement(CLASSIFIER, 0.995))
    precision.record(agreement(DETECTOR, 0.975))
    assert precision.resolve(bundle, OPENVINO, AUTO) == ("bf16", "bf16")
    classifier, detector = precision.choices(bundle, OPENVINO)
    assert classifier.line.startswith("classifier bf16: top-1 agreed with fp32's on 99.5% of 400 inputs")
    assert detector.line.startswith("detector bf16: animal count agreed with fp32's on 97.5% of 160 held-out")
    assert "measured here 2026-12-07" in classifier.line
    built = PredictorOptions(runtime=OPENVINO, precision=AUTO).precisions(bundle)
    assert built == ("bf16", "bf16")  # what `python -m classifier predict` builds its predictor with


@pytest.mark.parametrize(
    ("classifier_agreed", "detector_agreed", "expected"),
    [(0.985, 0.99, ("fp32", "bf16")), (0.999, 0.96, ("bf16", "fp32")), (0.5, 0.5, ("fp32", "fp32"))],
)
def test_short_agreement_keeps_that_network_at_fp32_and_says_why(
    machine, bundle, classifier_agreed, detector_agreed, expected
):
    precision.record(agreement(CLASSIFIER, classifier_agreed))
    precision.record(agreement(DETECTOR, detector_agreed))
    assert precision.resolve(bundle, OPENVINO, AUTO) == expected
    for choice, agreed, needed in zip(
        precision.choices(bundle, OPENVINO), (classifier_agreed, detector_agreed), ("99%", "97%"), strict=True
    ):
        if choice.precision == "fp32":
            assert (
                f"agreed with fp32's on only {agreed:.1%}" in choice.reason
                and f"needs >= {needed}" in choice.reason
            )


def test_an_explicit_precision_is_honoured(machine, bundle):
    precision.record(agreement(CLASSIFIER, 1.0))
    precision.record(agreement(DETECTOR, 1.0))
    assert precision.resolve(bundle, OPENVINO, "fp32") == ("fp32", "fp32")
    assert PredictorOptions(runtime=OPENVINO, precision="int8").precisions(bundle) == ("int8", "int8")
    machine(bf16=False)
    assert precision.resolve(bundle, OPENVINO, "bf16") == ("bf16", "bf16")
    parsed = cli.build_parser().parse_args(["predict", "--precision", "fp32", "photo.jpg"])
    assert parsed.precision == "fp32"


def test_auto_is_the_command_lines_default(machine):
    for command in (["predict", "photo.jpg"], ["evaluate", "--model", "x", "data"], ["compile"]):
        assert cli.build_parser().parse_args(command).precision == AUTO, command


def test_runtimes_without_bf16_and_unmeasured_networks_run_fp32(machine, bundle):
    precision.record(agreement(CLASSIFIER, 1.0))
    torch_choice = precision.choose(bundle, runtimes.TORCH, CLASSIFIER)
    assert torch_choice.precision == "fp32" and "runs fp32 only" in torch_choice.reason
    unmeasured = precision.choose(bundle, OPENVINO, DETECTOR)
    assert unmeasured.precision == "fp32"
    assert "not measured for openvino 2026.4.1" in unmeasured.reason
    assert "python -m classifier compile --model traps" in unmeasured.reason


def test_figures_shipped_in_the_bundle_count_for_the_same_network_and_runtime_version_only(
    machine, bundle, monkeypatch
):
    precision.ship(bundle, [agreement(CLASSIFIER, 0.996), agreement(DETECTOR, 0.99)])
    assert (
        json.loads((bundle.directory / "precision.json").read_text())["agreements"][0]["precision"] == "bf16"
    )
    classifier, detector = precision.choices(bundle, OPENVINO)
    assert (classifier.precision, detector.precision) == ("bf16", "bf16")
    assert "precision.json: measured on Test CPU 2026-12-07" in classifier.reason
    # What this machine measured comes first.
    precision.record(agreement(CLASSIFIER, 0.98))
    assert precision.resolve(bundle, OPENVINO, AUTO) == ("fp32", "bf16")
    # Another OpenVINO, or another model file: the shipped figures do not hold.
    monkeypatch.setattr(precision, "runtime_version", lambda runtime: "2027.0.0")
    assert precision.resolve(bundle, OPENVINO, AUTO) == ("fp32", "fp32")
    monkeypatch.setattr(precision, "runtime_version", lambda runtime: "2026.4.1")
    retrained = replace(bundle, model_sha256="b" * 64)
    assert precision.choose(retrained, OPENVINO, CLASSIFIER).precision == "fp32"
    # Shipping again replaces that network's figures and keeps the others.
    precision.ship(bundle, [agreement(DETECTOR, 0.5)])
    assert sorted((a.network, a.agreed) for a in precision.shipped(bundle)) == [
        (CLASSIFIER, 0.996),
        (DETECTOR, 0.5),
    ]


def test_a_damaged_shipped_file_or_record_counts_as_none(machine, bundle):
    (bundle.directory / "precision.json").write_text('{"agreements": [{"network": "classifier"}, 3]')
    assert precision.shipped(bundle) == []
    (bundle.directory / "precision.json").write_text(
        '{"agreements": [{"network": "classifier", "agreed": "x"}]}'
    )
    assert precision.shipped(bundle) == []
    precision.record(agreement(CLASSIFIER, 1.0))
    [path] = (Path(precision.cache_root()) / "precision").glob("classifier-*.json")
    path.write_text("{")
    assert precision.choose(bundle, OPENVINO, CLASSIFIER).precision == "fp32"


def test_models_prints_each_networks_choice_in_one_line(machine, bundle, capsys, monkeypatch):
    monkeypatch.delenv(runtimes.RUNTIME_VARIABLE, raising=False)
    precision.record(agreement(CLASSIFIER, 0.995))
    precision.record(agreement(DETECTOR, 0.9))
    assert cli.main(["models", "--models-dir", str(bundle.directory.parent)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "traps classifier bf16: top-1 agreed with fp32's on 99.5% of 400 inputs" in "\n".join(lines)
    [detector] = [line for line in lines if "traps detector" in line]
    assert detector.strip().startswith(
        "traps detector fp32: bf16's animal count agreed with fp32's on only 90.0%"
    )


def test_compile_measures_once_records_and_prints_the_choice(machine, tiny_bundle, capsys, monkeypatch):
    calls = []

    def measured(bundle, runtime):
        calls.append(runtime)
        found = agreement(CLASSIFIER, 0.993, sha256=bundle.model_sha256, input_size=bundle.image_size)
        precision.record(found)
        return [found]

    monkeypatch.setattr(measuring, "measure", measured)
    command = ["compile", "--model", str(tiny_bundle), "--runtime", OPENVINO, "--no-detector"]
    assert cli.main(command) == 0
    assert cli.main(command) == 0  # recorded: not measured again
    assert calls == [OPENVINO]
    err = capsys.readouterr().err
    assert "tiny: bf16 against fp32 on its held-out photos: the classifier's measured" in err
    assert "tiny: --precision auto: classifier bf16: top-1 agreed with fp32's on 99.3%" in err
    assert cli.main([*command, "--force"]) == 0 and calls == [OPENVINO, OPENVINO]
    machine(bf16=False)
    assert cli.main([*command, "--ship-agreement"]) == 1
    assert "needs --runtime openvino on a CPU with native bfloat16" in capsys.readouterr().err
    assert not (tiny_bundle / "precision.json").exists()


def test_the_comparison_counts_inputs_whose_answer_changed():
    reference = lambda batch: batch  # noqa: E731 (a network: logits in, logits out)
    candidate = lambda batch: batch.flip(1)  # noqa: E731
    compared = measuring._Compared(reference, candidate, lambda logits: logits.argmax(1).tolist())
    logits = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.2, 0.9, 0.1]])
    assert compared.eval()(logits) is logits  # prediction goes on with fp32's answers
    assert compared.figures() == {"agreed": 0.5, "compared": 4}


def test_the_held_out_photos_are_the_ones_training_left_out(tiny_bundle):
    bundle = read_bundle(tiny_bundle)
    held_out = runtimes.validation_photos(bundle)
    assert len(held_out) == bundle.report["data"]["n_valid"]
    assert not set(held_out) & set(runtimes.calibration_photos(bundle, limit=1000))


@pytest.mark.skipif(not precision.can_run_bf16(OPENVINO), reason="needs a CPU with native bfloat16")
def test_measuring_on_a_bfloat16_cpu_records_the_tiny_bundles_agreement(tiny_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv(runtimes.CACHE_VARIABLE, str(tmp_path / "cache"))
    bundle = read_bundle(tiny_bundle)
    [found] = measuring.measure(bundle, OPENVINO)
    assert found.network == CLASSIFIER and found.photos == bundle.report["data"]["n_valid"]
    assert found.compared == found.photos and found.agreed >= 0.9
    assert precision.recorded(found.key) == found


def test_each_bundled_models_shipped_figures_hold_for_its_model_file_and_the_locked_openvino():
    """What a host without the held-out photos gets: the figures count only for this very model file
    and the OpenVINO version the lock installs, so a retrained bundle or a new lock needs them measured
    again (`python -m classifier compile --model NAME --ship-agreement`)."""
    root = Path(__file__).resolve().parents[1]
    lock = (root / "requirements.lock").read_text(encoding="utf-8")
    [locked] = {line.split("==")[1].split()[0] for line in lock.splitlines() if line.startswith("openvino==")}
    shipped = sorted((root / "models").glob(f"*/{precision.SHIPPED_FILE}"))
    assert shipped, "the bundled models ship their bf16 figures"
    for path in shipped:
        bundle = read_bundle(path.parent)
        entries = precision.shipped(bundle)
        classifier = [a for a in entries if a.network == CLASSIFIER]
        assert [a.sha256 for a in classifier] == [bundle.model_sha256], path
        assert {a.runtime_version for a in entries} == {locked}, path
        assert all(0 <= a.agreed <= 1 and a.photos > 0 for a in entries), path
        assert any(a.network == DETECTOR for a in entries) == (bundle.report.get("detector") is not None), (
            path
        )
