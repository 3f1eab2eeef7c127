"""A bundle's photos a person can look at: one example photo per class, shipped in the bundle, and the
held-out photos its report was measured on, where that data is on this disk.

Examples live in `models/<name>/examples/`: `<class>.jpg` (at most `MAX_EXAMPLE_BYTES`) and
`examples.json`, which says where they came from and under what licence (the bundle's README says it too):

    {"source": "Snapshot Serengeti field guide (zooniverse/Serengeti)", "licence": "CDLA-Permissive-1.0",
     "examples": {"zebra": {"file": "zebra.jpg", "from": "zebra/zebra-2.jpg", "box": [0.1, 0.2, 0.5, 0.4]}}}

`from` is the training photo it was cut from (relative to the training data's root), `box` the animal
detector's box it was cut around (absent: the whole photo). `tools/bundle_examples.py` writes them from the
bundle's own training photos (`pick_example`, `example_jpeg`, `write_examples`). A bundle without examples
is fine: the pages then show no photo.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageOps

from classifier.intake.datasets import DatasetError, read_dataset, split_dataset
from classifier.models.bundles import MODELS_DIR, Bundle, BundleError

if TYPE_CHECKING:  # the detector's module brings torch, which a page showing a photo does not need
    from classifier.schema.rows import Detection

EXAMPLES_DIR = "examples"
MANIFEST = "examples.json"
MAX_EXAMPLE_BYTES = 30_000  # DESIGN.md: at most one small photo per class
EXAMPLE_SIDE = 360  # pixels: a card's photo is drawn at most this wide
EXAMPLE_CONTEXT = 0.35  # of the box's longer side on each side: the animal with some of its place
PROJECT_DIR = MODELS_DIR.parent
# A box covering more of the frame than this is an animal too close to the camera, usually cut off by
# the frame's edges: its size earns no more than this when picking a class's clearest photo.
CLOSE_UP = 0.35
EDGE = 0.01  # a box side this close to the frame's edge touches it


@dataclass(frozen=True)
class Example:
    """A class's example photo: the file, the training photo it came from and its credit line."""

    label: str
    path: Path
    source_file: str  # the training photo, relative to the training data's root
    source: str  # the collection ("Snapshot Serengeti field guide (zooniverse/Serengeti)")
    licence: str

    @property
    def credit(self) -> str:
        """The line shown under the photo."""
        return f"Photo: {self.source}, {self.source_file} · {self.licence}"


def examples_folder(bundle: Bundle) -> Path:
    return bundle.directory / EXAMPLES_DIR


def bundle_examples(bundle: Bundle) -> dict[str, Example]:
    """The bundle's example photos by class, in class order; {} when it has none.

    Raises `BundleError` (one line naming the file) for a manifest that cannot be used. An entry whose
    photo is missing or for a class the bundle does not have is left out.
    """
    folder = examples_folder(bundle)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return {}
    data = _manifest(manifest)
    entries = data["examples"]
    found = {}
    for label in bundle.classes:
        entry = entries.get(label)
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            continue
        name = entry["file"]
        if Path(name).name != name or not name.lower().endswith((".jpg", ".jpeg")):
            raise BundleError(
                f"{manifest}: example of {label!r} must be a .jpg file in {folder}, not {name!r}."
            )
        if (folder / name).is_file():
            found[label] = Example(
                label, folder / name, str(entry.get("from", name)), data["source"], data["licence"]
            )
    return found


def _manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(
            f"{path}: cannot be read as JSON ({error}); run tools/bundle_examples.py again."
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("examples"), dict):
        raise BundleError(
            f"{path}: needs an 'examples' object of class -> photo; run tools/bundle_examples.py again."
        )
    for field in ("source", "licence"):
        if not isinstance(data.get(field), str) or not data[field].strip():
            raise BundleError(
                f"{path}: needs its photos' '{field}' (text); every example photo says where it is from."
            )
    return data


# ---- making them --------------------------------------------------------------------------------------


def clearness(detection: Detection) -> float:
    """How well a box shows its animal: its size (capped at `CLOSE_UP`) times the detector's confidence,
    halved for each edge of the frame it touches (an animal cut off by the frame)."""
    x, y, w, h = detection.bbox
    edges = sum(side < EDGE for side in (x, y, 1 - x - w, 1 - y - h))
    return min(w * h, CLOSE_UP) * detection.detector_conf * 0.5**edges


def pick_example(candidates: Sequence[tuple[str, Sequence[Detection]]]) -> tuple[str, Detection | None]:
    """The clearest of a class's training photos (its clearest box; the first photo on a tie) and that box
    (None: no photo has a box, the whole first photo)."""
    if not candidates:
        raise ValueError("no photos to pick an example from")
    scored = [(max(boxes, key=clearness), name) for name, boxes in candidates if boxes]
    if not scored:
        return candidates[0][0], None
    box, name = max(scored, key=lambda pair: clearness(pair[0]))
    return name, box


def example_picture(image: Image.Image, box: Detection | None) -> Image.Image:
    """The animal with some of its place around it (a square cut), or the whole photo without a box."""
    rgb = image.convert("RGB")
    if box is None:
        return rgb
    width, height = rgb.size
    x, y, w, h = box.bbox
    pad = EXAMPLE_CONTEXT * max(w * width, h * height)
    across, down = w * width + 2 * pad, h * height + 2 * pad
    # Not wider than 16:9 nor narrower than 3:4: a card's photo, whatever the animal's shape.
    across, down = max(across, down * 3 / 4), max(down, across * 9 / 16)
    left = _span((x + w / 2) * width, across, width)
    top = _span((y + h / 2) * height, down, height)
    return rgb.crop((round(left[0]), round(top[0]), round(left[1]), round(top[1])))


def _span(centre: float, length: float, limit: int) -> tuple[float, float]:
    """A span of `length` (at most `limit`) centred on `centre`, moved inside [0, limit]."""
    length = min(length, limit)
    low = min(max(centre - length / 2, 0.0), limit - length)
    return low, low + length


def example_jpeg(picture: Image.Image, max_bytes: int = MAX_EXAMPLE_BYTES, side: int = EXAMPLE_SIDE) -> bytes:
    """`picture` fitted into `side` x `side` and saved as a JPEG of at most `max_bytes`: the quality is
    lowered first (down to 55), then the picture made smaller."""
    picture = picture.convert("RGB")
    while True:
        fitted = picture.copy()
        fitted.thumbnail((side, side), Image.Resampling.LANCZOS)
        for quality in range(85, 50, -5):
            buffer = io.BytesIO()
            fitted.save(buffer, format="JPEG", quality=quality, optimize=True, progressive=True)
            if buffer.tell() <= max_bytes:
                return buffer.getvalue()
        if side <= 32:
            raise ValueError(f"cannot make a JPEG of at most {max_bytes} bytes")
        side = int(side * 0.85)


def write_examples(
    folder: Path, chosen: Mapping[str, tuple[bytes, str, Detection | None]], source: str, licence: str
) -> Path:
    """Write each class's JPEG (`chosen`: class -> (JPEG bytes, training photo, box)) and the manifest into
    `folder`; photos an earlier manifest listed for classes not chosen now are removed. Returns the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / MANIFEST
    if manifest.is_file():
        for entry in _manifest(manifest)["examples"].values():
            stale = folder / Path(str(entry.get("file", ""))).name
            if stale.suffix.lower() in (".jpg", ".jpeg") and stale.is_file():
                stale.unlink()
    entries = {}
    for label, (jpeg, training_photo, box) in chosen.items():
        name = f"{label}.jpg"
        (folder / name).write_bytes(jpeg)
        entries[label] = {"file": name, "from": training_photo}
        if box is not None:
            entries[label]["box"] = [round(v, 4) for v in box.bbox]
    data = {"source": source, "licence": licence, "examples": entries}
    manifest.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


# ---- held-out photos ----------------------------------------------------------------------------------


def data_root(report: Mapping[str, Any]) -> Path | None:
    """Where the training run read its photos (`data.root`, else `data.source`; a relative path is relative
    to the project folder, where training runs); None when the report does not say."""
    data = report.get("data") or {}
    given = data.get("root") or data.get("source")
    if not given:
        return None
    root = Path(given)
    return root if root.is_absolute() else PROJECT_DIR / root


def held_out_photos(bundle: Bundle) -> list[tuple[Path, str]]:
    """(photo, class) of the photos the bundle's report was measured on, where its training data is on this
    disk; [] when it is not. Under cross-validation every training photo was held out once; otherwise the
    recipe's own split is made again (the same seed gives the same photos)."""
    report = bundle.report
    root, data = data_root(report), report.get("data") or {}
    recipe = report.get("recipe") or {}
    if root is None or not root.exists():
        return []
    try:
        dataset = read_dataset(root, data.get("format"), image_root=recipe.get("image_root"))
        if "cross-validation" in str(data.get("split", "")):
            records = dataset.records
        else:
            split = split_dataset(
                dataset, recipe.get("split", "auto"), recipe.get("valid_pct", 0.2), recipe.get("seed", 42)
            )
            records = split.valid
    except DatasetError:
        return []
    classes = set(bundle.classes)
    return [(dataset.path(r), r.label) for r in records if r.label in classes]


def showcase(examples: Mapping[str, Example], report: Mapping[str, Any], count: int = 6) -> list[Example]:
    """A few examples for a first try: of the classes the model names right most often on its held-out
    photos (recall, then F1), `count` spread evenly through the class order."""
    scores = report.get("per_class") or {}

    def strength(label: str) -> tuple[float, float]:
        found = scores.get(label) or {}
        return float(found.get("recall") or 0.0), float(found.get("f1") or 0.0)

    ranked = sorted(examples, key=strength, reverse=True)
    best = (
        [label for label in examples if strength(label) >= strength(ranked[count - 1])]
        if len(ranked) > count
        else ranked
    )
    step = len(best) / min(count, len(best)) if best else 1
    return [examples[best[int(i * step)]] for i in range(min(count, len(best)))]


def thumbnail(path: Path, size: tuple[int, int] = (320, 240)) -> bytes:
    """An example photo cut to one shape (centred) and size, as a JPEG: a grid of them lines up."""
    with Image.open(path) as photo:
        fitted = ImageOps.fit(photo.convert("RGB"), size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    fitted.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
