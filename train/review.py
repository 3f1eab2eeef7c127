"""Retraining on a person's review from what prediction kept: seconds, not minutes.

    python -m train --data labels.csv --format csv --base-model serengeti --name serengeti-gorongosa

When the data is a predictions file (`python -m classifier predict` or the app, reviewed or not) and the
base bundle's head is a linear probe (serengeti's), the run needs neither the detector nor the backbone
again: each photo's boxes are in the file, and what the classifier saw of them is kept
(classifier/models/embeddings.py; photos whose embeddings are missing, from a file labelled elsewhere, are
labelled again once). The site's model (classifier/models/site.py) keeps every class of the base and adds
the classes a person typed, and the new bundle carries the base's detector, crop margin, cut-offs and
species notes (written beside it, with an entry to fill in for each new class). Its report is measured
honestly on the few photos there are: k-fold cross-validation over the reviewed photos (k adapts: at most
`--cv-folds`, at least 2, never more than the largest class has photos), each photo answered by a head
fitted without it, against the base on the same photos; and a learning curve (the same at a quarter and
half of the photos).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat

from classifier.intake.datasets import Dataset, DatasetError, Split, read_predictions_csv
from classifier.intake.decoding import photo_sha256
from classifier.models.bundles import Bundle, crop_margin, load_learner, species_notes_path
from classifier.models.embeddings import embedding_model, embeddings_for
from classifier.models.heads import LinearScores
from classifier.models.network import with_classes
from classifier.models.predictors import PredictorOptions
from classifier.models.runtimes import load_linear_head
from classifier.models.site import SiteModel, adapt, cross_validated, pictures, relabel
from classifier.models.verdict import rules_for
from classifier.results.report import compare_on_rows, evaluate
from classifier.schema.predictions_file import parse_predictions
from classifier.schema.rows import PERSON, Detection, Row
from train.base import find_base
from train.checkpoint import RunState
from train.data import TrainingData
from train.pipeline import TrainResult, write_bundle
from train.recipe import TrainConfig

CURVE = (0.25, 0.5, 1.0)  # shares of the reviewed photos the learning curve is measured at


def applies(config: TrainConfig) -> bool:
    """Whether a run is a retrain on a predictions file of a bundle with a linear head."""
    if not config.base_model or config.format not in ("csv", "auto"):
        return False
    path = Path(config.data)
    if not path.is_file() or not _is_predictions_file(path):
        return False
    return load_linear_head(find_base(config.base_model, config.out_dir)) is not None


def retrain(config: TrainConfig) -> TrainResult:
    started = time.perf_counter()
    base = find_base(config.base_model, config.out_dir)
    head = load_linear_head(base)
    assert head is not None
    dataset = read_predictions_csv(Path(config.data), config.image_root, rows=config.rows)
    rows, labels, skipped = _reviewed_rows(config, dataset, base.classes)
    rows = _with_kept_embeddings(base, rows)
    margin = crop_margin(base)
    store = embeddings_for(base)
    taught = list(zip(rows, labels, strict=True))
    site = adapt(head, base.classes, taught, store, margin, name=config.name)
    classes = list(site.classes)
    files = [
        str(Path(row.path).relative_to(dataset.root)) if _inside(row.path, dataset.root) else row.path
        for row in rows
    ]
    probabilities, history = _cross_validated(head, base, taught, classes, config, margin)
    targets = np.array([classes.index(_in(classes, label)) for label in labels])
    # Judged on what a person labelled: the model's own sure answers teach, but grading the base on its
    # own answers would only measure agreement with itself.
    judged = [i for i, row in enumerate(rows) if row.classification_method == PERSON] or list(
        range(len(rows))
    )
    report = evaluate(
        probabilities[judged], targets[judged], classes, [files[i] for i in judged], threshold=base.threshold
    )
    report["base_model"] = _against_base(
        head, base, [taught[i] for i in judged], classes, probabilities[judged], margin
    )
    report["learning_curve"] = _learning_curve(head, base, taught, classes, config, margin, targets, judged)
    data = _training_data(dataset, rows, labels, classes, skipped)
    learn = Learner(_loaders(data, config), _network(base, site), loss_func=CrossEntropyLossFlat())
    run = RunState(Path(config.runs_dir) / config.name, config.as_dict(), classes, history=history)
    facts = {
        "n_train": len(rows),
        "n_valid": len(judged),
        "split": f"{len(history)}-fold cross-validation, judged on the {len(judged)} photos a person labelled "
        "(each answered by a head fitted without it; the model's own sure answers only teach)",
        "retrained_on_kept_embeddings": True,
    }
    config = dataclasses.replace(config, crops="detector", crop_frames=True, linear_probe=True)
    extra = {"embeddings": {"model": embedding_model(base)}, "detector": base.report.get("detector")}
    written = write_bundle(learn, data, config, run, report | extra, facts)
    _write_notes(base, site, Path(config.out_dir) / config.name)
    seconds = time.perf_counter() - started
    return TrainResult(Path(config.out_dir) / config.name, written, seconds, len(rows) / max(seconds, 1e-9))


def _is_predictions_file(path: Path) -> bool:
    first = path.read_text(encoding="utf-8-sig", errors="replace").lstrip()[:4096]
    return first.startswith(("[", "{")) or {"path", "label", "status"} <= set(
        first.split("\n", 1)[0].split(",")
    )


def _reviewed_rows(
    config: TrainConfig, dataset: Dataset, base_classes: tuple[str, ...]
) -> tuple[list[Row], list[str], list[dict]]:
    """The file's rows that teach (as `--rows` chooses), as rows with their photo's hash, and their labels."""
    predictions = parse_predictions(Path(config.data).read_bytes(), name=Path(config.data).name)
    by_file = {str(dataset.path(r)): r.label for r in dataset.records}
    rows, labels, skipped = [], [], list(dataset.skipped)
    for record in predictions.records:
        photo = Path(record.path) if Path(record.path).is_absolute() else dataset.root / record.path
        label = by_file.get(str(photo))
        if label is None:
            continue
        if record.classification_method != PERSON and label not in base_classes:
            continue  # the model's own answer, a group ("carnivore") or a sequence's: no class to learn
        try:
            sha = photo_sha256(photo)
        except OSError:
            skipped.append({"file": record.path, "reason": "the photo is not where the file says"})
            continue
        boxes = (
            None
            if record.detections is None
            else tuple(Detection(bbox=d.bbox, detector_conf=d.detector_conf or 0.0) for d in record.boxes)
        )
        rows.append(
            Row(
                path=str(photo),
                label=record.label,
                status=record.status,
                classification_method=record.classification_method,
                observation_type=record.observation_type,
                detections=boxes,
                photo_sha256=sha,
            )
        )
        labels.append(label)
    if not rows:
        raise DatasetError(
            f"{Path(config.data).name}: none of its photos is on this machine; see --image-root."
        )
    return rows, labels, skipped


def _with_kept_embeddings(base: Bundle, rows: list[Row]) -> list[Row]:
    """The rows, those whose embeddings are not kept labelled again by the base (which keeps them)."""
    margin = crop_margin(base)
    store = embeddings_for(base)
    kept = store.get([key for row in rows for key in pictures(row, margin)])
    missing = [i for i, row in enumerate(rows) if not all(k in kept for k in pictures(row, margin))]
    if not missing:
        return rows
    predictor = PredictorOptions(keep_embeddings=True).build(base, embeddings=store)
    fresh = list(predictor.predict_many([rows[i].path for i in missing]))
    for i, row in zip(missing, fresh, strict=True):
        rows[i] = row
    return rows


def _cross_validated(
    head: LinearScores,
    base: Bundle,
    taught: list[tuple[Row, str]],
    classes: list[str],
    config: TrainConfig,
    margin: float,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Each photo's scores over `classes` from a site model fitted without its fold, and one history row
    a fold (classifier/models/site.py `cross_validated`)."""
    started = time.perf_counter()
    found, scores, fold = cross_validated(
        head, base.classes, taught, embeddings_for(base), rules_for(base, None), margin,
        folds=config.cv_folds or 3, seed=config.seed,
    )  # fmt: skip
    probabilities = np.zeros((len(taught), len(classes)))
    for column, name in enumerate(found):
        probabilities[:, classes.index(name)] = scores[:, column]
    targets = np.array([classes.index(_in(classes, label)) for _, label in taught])
    seconds = round((time.perf_counter() - started) / (int(fold.max()) + 1), 2)
    history = []
    for k in sorted(set(fold.tolist())):
        held = np.flatnonzero(fold == k)
        metrics = evaluate(probabilities[held], targets[held], classes, [str(i) for i in held], top_losses=0)
        history.append(
            {
                "stage": "frozen",
                "epoch": int(k),
                "image_size": base.image_size,
                "train_loss": None,
                "valid_loss": metrics["metrics"]["valid_loss"],
                "accuracy": metrics["metrics"]["accuracy"],
                "macro_f1": metrics["metrics"]["macro_f1"],
                "seconds": seconds,
            }
        )
    return probabilities, history


def _against_base(head, base, taught, classes, probabilities, margin) -> dict[str, Any]:
    """The base bundle on the same reviewed photos, from the same kept embeddings."""
    store, rules = embeddings_for(base), rules_for(base, None)
    as_base = SiteModel(base.name, base.classes, head, 0, ())
    base_probabilities = np.stack([_scores(row, as_base, store, rules, margin) for row, _ in taught])
    truth = [_in(classes, label) for _, label in taught]
    return {
        "name": base.name,
        "title": base.title,
        "model_sha256": base.model_sha256 or "",
        "new_classes": sorted(set(classes) - set(base.classes)),
        "dropped_classes": [],
        **compare_on_rows(truth, probabilities, classes, base_probabilities, base.classes),
    }


def _learning_curve(head, base, taught, classes, config, margin, targets, judged) -> list[dict[str, Any]]:
    """Cross-validated accuracy on the labelled photos when a quarter, half and all of the photos teach
    (the others left out at random), so a person sees whether more review would still help."""
    rng = np.random.default_rng(config.seed)
    curve = []
    for share in CURVE:
        size = min(len(taught), max(4, round(share * len(taught))))
        chosen = sorted(rng.choice(len(taught), size=size, replace=False).tolist())
        probabilities, _ = _cross_validated(head, base, [taught[i] for i in chosen], classes, config, margin)
        marked = [n for n, i in enumerate(chosen) if i in set(judged)]
        if marked:
            right = probabilities[marked].argmax(1) == targets[[chosen[n] for n in marked]]
            curve.append({"photos": size, "judged": len(marked), "accuracy": round(float(right.mean()), 4)})
    return curve


def _scores(row: Row, site: SiteModel, store, rules, margin: float) -> np.ndarray:
    answered = relabel(row, site, store, rules, margin)
    if answered is None or not answered.probabilities:
        return np.full(len(site.classes), 1.0 / len(site.classes))
    return np.asarray(answered.probabilities)


def _in(classes: list[str], label: str) -> str:
    spelling = {c.casefold(): c for c in classes}
    return spelling.get(label.strip().casefold(), label.strip())


def _inside(path: str, root: Path) -> bool:
    try:
        Path(path).relative_to(root)
    except ValueError:
        return False
    return True


def _training_data(dataset, rows, labels, classes, skipped) -> TrainingData:
    records = [dataclasses.replace(r, label=_in(classes, r.label)) for r in dataset.records]
    frame = pd.DataFrame(
        {
            "path": [r.path for r in rows],
            "file": [r.path for r in rows],
            "label": [_in(classes, lb) for lb in labels],
            "is_valid": False,
        }
    )
    data = dataclasses.replace(dataset, records=records, skipped=skipped)
    return TrainingData(data, Split(records, [], "cross-validation"), classes, frame)


def _loaders(data: TrainingData, config: TrainConfig):
    from train.data import make_dataloaders

    return make_dataloaders(data, config, config.sizes[-1], for_export=True)


def _network(base: Bundle, site: SiteModel):
    network = with_classes(load_learner(base).model, list(base.classes), list(site.classes))
    network.head.set_scores(site.head)
    return network


def _write_notes(base: Bundle, site: SiteModel, folder: Path) -> None:
    """The base's species notes for the new bundle, with an entry to fill in for each new class."""
    source = species_notes_path(base)
    if source is None:
        return
    path = folder / f"{site.name}.yaml"
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["bundle"], data["title"] = site.name, f"{data.get('title', base.title)}, retrained on a review"
    data["species"] = {c: data["species"][c] for c in site.classes if c in data["species"]}
    for name in site.new_classes:
        data["species"][name] = {"kind": "unwritten", "common_name": name.replace("_", " ").replace("-", " ")}
    path.write_text(
        "# Written by `python -m train` from the base's notes: fill in each 'unwritten' entry "
        "(docs/species_yaml.md).\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110),
        encoding="utf-8",
    )
