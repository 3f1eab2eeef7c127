"""Read a prior file: which ImageNet classes show each of the dataset's classes.

    zebra: [zebra]
    rodents: [hamster, fox squirrel, marmot, guinea pig]
    other-bird: [7-24, 80-100]          # index ranges, for broad groups
    crane-bird: [134]                    # an index where an ImageNet name is ambiguous ("crane")

Names are the first name of an ImageNet-1k class ("African elephant"); classes of the dataset that are
not in the file get no prior. A name, index or class that does not exist is refused with its line, so a
typo cannot silently weaken the model.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import yaml

from train.recipe import RecipeError

_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


@cache
def imagenet_names() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names (first synonym), in index order."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_description(i).split(",")[0].strip() for i in range(1000))


def read_prior(path: str | Path, classes: list[str], known: Sequence[str] = ()) -> list[list[int]]:
    """One list of ImageNet indices per class, in `classes` order (empty: no prior for that class).

    `known`: classes the file may name though the data has none (a retrained bundle's dropped classes).
    """
    path = Path(path)
    try:
        mapping = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RecipeError(f"--imagenet-prior {path}: cannot read it ({exc}).".replace("\n", " ")) from None
    if not isinstance(mapping, dict):
        raise RecipeError(f"--imagenet-prior {path}: expected `class: [ImageNet names]` entries.")
    strangers = sorted(set(map(str, mapping)) - set(classes) - set(known))
    if strangers:
        raise RecipeError(f"--imagenet-prior {path}: classes not in the data: {', '.join(strangers)}.")
    return [_indices(path, name, mapping.get(name) or []) for name in classes]


def _indices(path: Path, name: str, entries: object) -> list[int]:
    if not isinstance(entries, list):
        raise RecipeError(f"--imagenet-prior {path}: {name}: expected a list of ImageNet classes.")
    indices: list[int] = []
    for entry in entries:
        indices += _resolve(path, name, entry)
    return sorted(set(indices))


def _resolve(path: Path, name: str, entry: object) -> list[int]:
    names = imagenet_names()
    if isinstance(entry, int) and 0 <= entry < len(names):
        return [entry]
    text = str(entry)
    if span := _RANGE.match(text):
        low, high = int(span[1]), int(span[2])
        if low <= high < len(names):
            return list(range(low, high + 1))
    lookup = {n.lower(): i for i, n in enumerate(names) if _counts()[n] == 1}
    if text.lower() in lookup:
        return [lookup[text.lower()]]
    hint = "it names two classes, give its index" if _counts().get(text, 0) > 1 else "no such ImageNet class"
    raise RecipeError(f"--imagenet-prior {path}: {name}: {text!r}: {hint}.")


@cache
def _counts() -> Counter:
    return Counter(imagenet_names())
