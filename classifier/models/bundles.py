"""Find model bundles (`models/<name>/model.pkl` + `report.json`) and load them safely.

A bundle is listed from its `report.json` alone, so the app and `python -m classifier models` can show
every model without unpickling any (nor importing torch). Loading checks the file's SHA-256 against the
report before unpickling (unpickling runs code, so only the file the training run wrote is trusted), then
checks that the learner holds a `WildlifeNet` whose classes are the report's. Prediction runs the network
compiled from that learner (`classifier.models.runtimes.load_model`), so only training, evaluation and the compile step
unpickle the learner itself. Every problem is a `BundleError` whose message is one line naming the file;
never a pickle traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from classifier.intake.images import error_line
from classifier.knowledge.species import SPECIES_DIR, SPECIES_DIR_VARIABLE, SpeciesBook, load_species_book

if TYPE_CHECKING:
    from torch import nn

DEFAULT_BUNDLE = "serengeti"
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
MODEL_FILE = "model.pkl"
REPORT_FILE = "report.json"
DEFAULT_THRESHOLD = 0.5  # used only when a report has no threshold.value
DETECTOR_OPTIONS = ("confidence", "input_size")  # of a report's `detector` section, for the Detector
# What a report's `detector` section leaves out. DETECTOR_CONFIDENCE: the box score that counts as an
# animal (classifier.models.detect).
# From benchmarks/detector.py on the 439 frames of ../shared/data/camera_traps (2026-12-01), fed RGB at 640 px:
# share of animal frames keeping a box / of the 6 empty frames left without one, by threshold:
#   0.02: 0.968 / 0.83   0.03: 0.959 / 1.0   0.05: 0.939 / 1.0   0.1: 0.912 / 1.0   0.25 (zamba's): 0.852 / 1.0
# No setting reaches the product's 0.97 with empty frames left empty. 0.05 keeps the most animals while
# the empty frames' best box (0.023) stays well under it: an animal frame called blank is lost to the
# user, while a false box only sends a frame to the classifier (and, when unsure, to review).
# CROP_MARGIN: the context cut around a box for the classifier, a share of its side on each side.
DETECTOR_CONFIDENCE, CROP_MARGIN = 0.05, 0.15

_TRUST = "unpickling runs code, so only model files written by a training run you trust are loaded"


class BundleError(ValueError):
    """A bundle that cannot be listed or loaded, with a one-line reason naming the file."""


@dataclass(frozen=True)
class Bundle:
    """What `report.json` says about a model; `error` is set (and the rest mostly empty) when broken."""

    name: str
    directory: Path
    report: dict[str, Any] = field(default_factory=dict, repr=False)
    classes: tuple[str, ...] = ()
    title: str = ""
    image_size: int = 0
    threshold: float = DEFAULT_THRESHOLD
    accuracy: float | None = None
    model_sha256: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def model_path(self) -> Path:
        return self.directory / MODEL_FILE

    @property
    def report_path(self) -> Path:
        return self.directory / REPORT_FILE


def read_bundle(directory: str | Path) -> Bundle:
    """The bundle in `directory`, from its report.json; raises `BundleError` when that cannot be used."""
    directory = Path(directory)
    report_path = directory / REPORT_FILE
    try:
        text = report_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(
            f"{report_path}: not found; a bundle folder needs report.json beside model.pkl."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{report_path}: cannot be read ({error_line(exc, 160)}).") from None
    try:
        report = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{report_path}: not valid JSON (line {exc.lineno}: {exc.msg}).") from None
    if not isinstance(report, dict):
        raise BundleError(f"{report_path}: expected a JSON object, found {type(report).__name__}.")
    return _bundle_from_report(directory, report, report_path)


def _bundle_from_report(directory: Path, report: dict[str, Any], report_path: Path) -> Bundle:
    def bad(what: str) -> BundleError:
        return BundleError(f"{report_path}: {what}; re-run the training export or fix the file.")

    classes = report.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
        raise bad("'classes' must be a non-empty list of class names")
    if len(set(classes)) != len(classes):
        raise bad("'classes' has duplicate names")
    size = report.get("image_size")
    if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 2048:
        raise bad(f"'image_size' must be a whole number of pixels between 16 and 2048, not {size!r}")
    threshold = (report.get("threshold") or {}).get("value", DEFAULT_THRESHOLD)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
        raise bad(f"'threshold.value' must be a number between 0 and 1, not {threshold!r}")
    accuracy = (report.get("metrics") or {}).get("accuracy")
    sha = report.get("model_sha256")
    if (problem := _detector_problem(report.get("detector"))) is not None:
        raise bad(problem)
    return Bundle(
        name=str(report.get("name") or directory.name),
        directory=directory,
        report=report,
        classes=tuple(classes),
        title=str(report.get("title") or report.get("name") or directory.name),
        image_size=size,
        threshold=float(threshold),
        accuracy=float(accuracy)
        if isinstance(accuracy, int | float) and not isinstance(accuracy, bool)
        else None,
        model_sha256=sha.lower() if isinstance(sha, str) else None,
    )


def crop_margin(bundle: Bundle) -> float:
    """The context the bundle's crops were cut with: what prediction must cut to match."""
    return float((bundle.report.get("detector") or {}).get("crop_margin", CROP_MARGIN))


def detector_settings(bundle: Bundle) -> dict[str, Any] | None:
    """The animal detector the bundle was trained with (its crops), as `classifier.models.detect.Detector`'s
    options; None for a bundle that classifies whole frames."""
    section = bundle.report.get("detector")
    return None if section is None else {key: section[key] for key in DETECTOR_OPTIONS if key in section}


def _detector_problem(section: Any) -> str | None:
    """What is wrong with a report's `detector` section (absent is fine: whole frames), or None."""
    if section is None:
        return None
    if not isinstance(section, dict):
        return "'detector' must be an object (its confidence, input_size, crop_margin)"
    confidence, size = section.get("confidence"), section.get("input_size")
    if not isinstance(confidence, int | float) or isinstance(confidence, bool) or not 0 <= confidence <= 1:
        return f"'detector.confidence' must be a number between 0 and 1, not {confidence!r}"
    if not isinstance(size, int) or isinstance(size, bool) or size < 32 or size % 32:
        return f"'detector.input_size' must be a multiple of 32 pixels, not {size!r}"
    return None


def find_bundles(*roots: str | Path) -> list[Bundle]:
    """Every bundle under `roots` (default: the project's models/): the default one first, then by name.

    A root may itself be a bundle folder. A folder with model.pkl or report.json whose report cannot be
    read is listed with `error` set, so a caller can show the others and say what is wrong with it.
    """
    seen: dict[Path, Bundle] = {}
    for root in roots or (MODELS_DIR,):
        root = Path(root)
        if not root.is_dir():
            continue
        candidates = [root] if _looks_like_bundle(root) else sorted(p for p in root.iterdir() if p.is_dir())
        for directory in candidates:
            if not _looks_like_bundle(directory) or directory.resolve() in seen:
                continue
            try:
                bundle = read_bundle(directory)
            except BundleError as exc:
                bundle = Bundle(
                    name=directory.name, directory=directory, title=directory.name, error=str(exc)
                )
            seen[directory.resolve()] = bundle
    return sorted(seen.values(), key=lambda b: (b.name != DEFAULT_BUNDLE, b.name.lower(), str(b.directory)))


def resolve_bundle(name_or_dir: str | Path | None, *roots: str | Path) -> Bundle:
    """The bundle a user named: a bundle folder, or a name under `roots`; None means the default one.

    Raises `BundleError` naming what is available when nothing matches.
    """
    if name_or_dir is not None and (Path(name_or_dir) / REPORT_FILE).is_file():
        return read_bundle(name_or_dir)
    bundles = find_bundles(*roots)
    working = [b for b in bundles if b.ok]
    if name_or_dir is None:
        if working:
            return working[0]
        where = ", ".join(str(Path(r)) for r in roots or (MODELS_DIR,))
        problems = "; ".join(b.error or "" for b in bundles)
        raise BundleError(
            f"no model bundle found in {where}"
            + (f" ({problems})" if problems else "")
            + "; train one with `python -m train` or pass --model DIR."
        )
    for bundle in bundles:
        if bundle.name == str(name_or_dir) or bundle.directory.name == str(name_or_dir):
            if bundle.error:
                raise BundleError(bundle.error)
            return bundle
    names = ", ".join(b.name for b in working) or "none"
    raise BundleError(f"no model named {str(name_or_dir)!r} (available: {names}); or pass a bundle folder.")


def load_learner(bundle: Bundle, verify: bool = True) -> Any:
    """Unpickle the bundle's fastai Learner (after checking its SHA-256) and check what it holds."""
    checked_model_sha256(bundle, verify)
    path = bundle.model_path
    learner = _unpickle(path)
    network = getattr(learner, "model", None)
    from classifier.models.network import WildlifeNet

    if not isinstance(network, WildlifeNet):
        found = type(learner).__name__ if network is None else f"a learner of {type(network).__name__}"
        raise BundleError(
            f"{path}: holds {found}, not a classifier.models.network.WildlifeNet learner; "
            "export it with `python -m train`."
        )
    _check_classes(bundle, path, learner, network)
    return learner


def checked_model_sha256(bundle: Bundle, verify: bool) -> str:
    """The model file's SHA-256, checked against the report's unless `verify` is off."""
    if bundle.error:
        raise BundleError(bundle.error)
    path = bundle.model_path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(
            f"{path}: model file not found; the bundle needs the model.pkl its training wrote."
        ) from None
    except OSError as exc:
        raise BundleError(f"{path}: cannot be read ({error_line(exc, 160)}).") from None
    actual = hashlib.sha256(data).hexdigest()
    if verify:
        _check_hash(bundle, path, actual)
    return actual


def _check_hash(bundle: Bundle, path: Path, actual: str) -> None:
    if not bundle.model_sha256:
        raise BundleError(
            f"{bundle.report_path}: has no model_sha256, so {path.name} cannot be checked before loading "
            f"({_TRUST}); re-export the bundle."
        )
    if actual != bundle.model_sha256:
        raise BundleError(
            f"{path}: SHA-256 {actual[:12]}... differs from report.json's {bundle.model_sha256[:12]}... "
            f"(a truncated copy, or a different file); not loaded because {_TRUST}."
        )


# Bundles exported before classifier/ was grouped into sub-packages name these modules by their old paths.
RENAMED_MODULES = {
    "classifier.network": "classifier.models.network",
    "classifier.datasets": "classifier.intake.datasets",
    "classifier.images": "classifier.intake.images",
}


class _RenamingUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(RENAMED_MODULES.get(module, module), name)


def _load_renamed(file: Any, **kwargs: Any) -> Any:
    return _RenamingUnpickler(file, **kwargs).load()


# torch.load takes a module-like object: it subclasses its Unpickler (and calls load for legacy files).
_renaming_pickle = types.SimpleNamespace(__name__="pickle", Unpickler=_RenamingUnpickler, load=_load_renamed)


def _unpickle(path: Path) -> Any:
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fastai's and torch's pickle warnings: the hash was checked
            import fastai.learner  # noqa: F401  (the classes the pickle names)

            return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_renaming_pickle)
    except ModuleNotFoundError as exc:
        raise BundleError(
            f"{path}: the learner needs module {exc.name!r}, which is not installed or not in classifier/; "
            "re-export it so it refers only to classifier/ code."
        ) from None
    except AttributeError as exc:
        raise BundleError(
            f"{path}: the learner refers to something this code no longer has ({error_line(exc, 160)}); "
            "re-export it with this version."
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        RuntimeError,
        ValueError,
        TypeError,
        ImportError,
        OSError,
    ) as exc:
        raise BundleError(
            f"{path}: not a readable fastai export (truncated or corrupt: {error_line(exc, 160)}); copy the bundle again."
        ) from None
    except Exception as exc:  # a damaged pickle can fail in any constructor it calls
        raise BundleError(
            f"{path}: cannot be loaded ({type(exc).__name__}: {error_line(exc, 160)})."
        ) from None


def _check_classes(bundle: Bundle, path: Path, learner: Any, network: nn.Module) -> None:
    vocab = getattr(getattr(learner, "dls", None), "vocab", None)
    if vocab is not None:
        learned = [str(c) for c in vocab]
        if learned != list(bundle.classes):
            raise BundleError(
                f"{path}: its classes {_preview(learned)} are not report.json's {_preview(bundle.classes)}; "
                "the two files come from different training runs."
            )
    outputs = _output_count(network)
    if outputs is not None and outputs != len(bundle.classes):
        raise BundleError(
            f"{path}: the network predicts {outputs} classes but report.json lists {len(bundle.classes)}."
        )


def _output_count(network: nn.Module) -> int | None:
    from torch import nn

    last = None
    for module in network.modules():
        if isinstance(module, nn.Linear):
            last = module
    return last.out_features if last is not None else None


def _preview(classes: list[str] | tuple[str, ...]) -> str:
    shown = ", ".join(list(classes)[:4])
    return f"[{shown}{', ...' if len(classes) > 4 else ''}] ({len(classes)})"


def _looks_like_bundle(directory: Path) -> bool:
    return (directory / REPORT_FILE).exists() or (directory / MODEL_FILE).exists()


def bundle_species_book(bundle: Bundle) -> SpeciesBook | None:
    """A bundle's species notes: `species_info/<name>.yaml` (or `$WILDLIFE_SPECIES_DIR`), else the notes a
    retrain wrote beside its model (`<bundle>/<name>.yaml`); None when neither is there."""
    path = species_notes_path(bundle)
    return None if path is None else load_species_book(path)


def species_notes_path(bundle: Bundle) -> Path | None:
    """Where `bundle_species_book` reads a bundle's notes from, or None."""
    for root in (Path(os.environ.get(SPECIES_DIR_VARIABLE) or SPECIES_DIR), bundle.directory):
        if (root / f"{bundle.name}.yaml").is_file():
            return root / f"{bundle.name}.yaml"
    return None
