"""Retraining a bundle (`--base-model NAME|DIR`): start from its network, compare with it at the end.

The run starts from the base bundle's network: its backbone (architecture and trained weights), its
input normalisation and its head, resized to the run's classes by `classifier.models.network.with_classes`:
a class the base has keeps its row of the last layer, a class a person typed gets a new row, and the
base's classes the data does not show are dropped (or kept with `--keep-base-classes`). An ImageNet prior
keeps its scale and, for the classes it keeps, their ImageNet classes; a new class has none (the prior
scores it neutrally) unless `--imagenet-prior FILE` names some. The linear probe then fits the head
starting from the base's rows, its penalty pulling towards them (train/probe.py); an mlp head trains on
from the base's weights.

Labels are matched to the base's classes without regard to case ("Zebra" is the base's "zebra"), so a
person's spelling does not split a class in two. At the end the base's own network predicts exactly the
photos the new model was judged on, and the report's `base_model` section holds both models' figures on
the photos whose class both know (`classifier.results.report.compare_on_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from classifier.intake.datasets import EMPTY_LABELS, Dataset
from classifier.models.bundles import MODELS_DIR, Bundle, load_learner, resolve_bundle
from classifier.models.network import LinearHead, WildlifeNet, with_classes
from classifier.results.report import compare_on_rows
from train.recipe import BASE_RECIPE, RecipeError, TrainConfig


@dataclass
class BaseModel:
    """The bundle a run retrains, with its network as the bundle holds it (never trained further)."""

    bundle: Bundle
    network: WildlifeNet

    @property
    def classes(self) -> list[str]:
        return list(self.bundle.classes)

    @property
    def arch(self) -> str:
        return str(self.bundle.report.get("arch") or "")

    @property
    def head(self) -> str:
        return "linear" if isinstance(self.network.head, LinearHead) else "mlp"

    @property
    def blank_class(self) -> str | None:
        """The base's class for empty frames (`blank`, `empty`, ...), if it has one."""
        return next((c for c in self.classes if c.casefold() in EMPTY_LABELS), None)


def find_base(name_or_dir: str | Path | None, out_dir: str | Path = MODELS_DIR) -> Bundle:
    """The bundle `--base-model` names: a bundle folder, or a name in OUT_DIR or the project's models/.

    Raises `BundleError` (one line, naming the bundles there are) when there is none.
    """
    roots = list(dict.fromkeys(Path(r).resolve() for r in (out_dir, MODELS_DIR) if Path(r).is_dir()))
    return resolve_bundle(str(name_or_dir), *roots) if roots else resolve_bundle(str(name_or_dir))


def load_base(config: TrainConfig) -> BaseModel:
    """Find and unpickle the base bundle (its SHA-256 checked) and check the recipe can retrain it."""
    bundle = find_base(config.base_model, config.out_dir)
    base = BaseModel(bundle, load_learner(bundle).model.eval())
    problems = []
    if base.arch and config.backbone != base.arch:
        problems.append(f"--backbone {config.backbone}: the base model's backbone is {base.arch}")
    if config.head != base.head:
        problems.append(f"--head {config.head}: the base model's head is {base.head}")
    if problems:
        raise RecipeError("; ".join(problems) + "; a retrain keeps the network it starts from.")
    return base


def in_base_spelling(dataset: Dataset, base: BaseModel) -> Dataset:
    """Labels that are a base class but for case, written as the base writes it."""
    spelling = {name.casefold(): name for name in base.classes}
    return dataset.with_records(
        [replace(r, label=spelling.get(r.label.casefold(), r.label)) for r in dataset.records]
    )


def network_for(
    base: BaseModel, classes: list[str], imagenet_groups: list[list[int]] | None = None
) -> WildlifeNet:
    """The base's network for `classes` (see the module docstring and `with_classes`)."""
    classifier = None
    head = base.network.head
    if imagenet_groups and any(imagenet_groups) and isinstance(head, LinearHead) and head.prior is None:
        from classifier.models.backbones import create_backbone

        classifier = create_backbone(base.arch, pretrained=True).imagenet_classifier
        if classifier is None:
            raise RecipeError(f"{base.arch} has no ImageNet classifier here; drop --imagenet-prior.")
    try:
        return with_classes(
            base.network,
            base.classes,
            classes,
            imagenet_groups=imagenet_groups,
            imagenet_classifier=classifier,
        )
    except ValueError as exc:
        raise RecipeError(f"--base-model {base.bundle.name}: {exc}.") from None


def compare_with_base(
    base: BaseModel,
    paths: list[str],
    probabilities: np.ndarray,
    targets: np.ndarray,
    classes: list[str],
    loaders: Any,
) -> dict[str, Any]:
    """The report's `base_model` section: the base predicts the photos at `paths` (the rows the new
    model was judged on, in order, with its `probabilities` and `targets`), and both are scored on the
    rows whose class both know. `loaders` are DataLoaders at the base's image size (for `test_dl`)."""
    base_probabilities = predict_paths(base.network, loaders, paths)
    truth = [classes[int(t)] for t in targets]
    comparison = compare_on_rows(truth, probabilities, classes, base_probabilities, base.classes)
    return {
        "name": base.bundle.name,
        "title": base.bundle.title,
        "model_sha256": base.bundle.model_sha256 or "",
        "arch": base.arch,
        "image_size": base.bundle.image_size,
        "n_classes": len(base.classes),
        "new_classes": sorted(set(classes) - set(base.classes)),
        "dropped_classes": sorted(set(base.classes) - set(classes)),
        **comparison,
    }


def predict_paths(network: torch.nn.Module, loaders: Any, paths: list[str]) -> np.ndarray:
    """Softmax probabilities of `network` for the photos at `paths`, decoded as training decodes them."""
    loader = loaders.test_dl(pd.DataFrame({"path": paths}))
    parts = []
    model = network.eval()
    with torch.inference_mode():
        for batch in loader:
            images = batch[0].as_subclass(torch.Tensor)
            model = model.to(images.device)
            parts.append(model(images).float().softmax(1).cpu())
    model.to("cpu")
    return torch.cat(parts).numpy()


def with_base_recipe(config: TrainConfig, given: set[str]) -> TrainConfig:
    """`config` with the base bundle's backbone, head and image size, and its recipe's `BASE_RECIPE`
    values for the options not in `given`. An explicit --backbone or --head other than the base's is
    refused: a retrain keeps the network it starts from."""
    bundle = find_base(config.base_model, config.out_dir)
    report = bundle.report
    recipe = report.get("recipe") if isinstance(report.get("recipe"), dict) else {}
    changes: dict[str, Any] = {k: recipe[k] for k in BASE_RECIPE if k not in given and k in recipe}
    fixed = {"backbone": str(report.get("arch") or config.backbone), "head": str(recipe.get("head") or "mlp")}
    for key, value in fixed.items():
        if key in given and getattr(config, key) != value:
            raise RecipeError(
                f"--{key} {getattr(config, key)}: a retrain keeps the base model's {key} ({value}); leave "
                f"--{key} out."
            )
    changes.update(fixed)
    if not changes.get("linear_probe", config.linear_probe):
        # the base's folds and whole-frame views belong to its probe, which --no-linear-probe turns off
        changes |= {
            key: value for key, value in (("cv_folds", 0), ("crop_frames", False)) if key not in given
        }
    if "sizes" not in given:
        changes["sizes"] = (bundle.image_size,)
    return replace(config, **changes)
