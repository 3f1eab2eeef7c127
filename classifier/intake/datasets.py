"""Labeled photo collections: read them (folder, csv, COCO Camera Traps, iNaturalist), filter, split.

Training (`python -m train`) and evaluation (`python -m classifier evaluate`) read data through here, so
both accept the same formats. A `Dataset` names every image by its path relative to the dataset root:
reports quote those paths and never copy an image.

A predictions file that `python -m classifier predict` or the app wrote (reviewed or not) is a csv too:
`read_csv` recognises its columns and reads it as `read_predictions_csv` does (see there for which rows
count), so a person's corrections train a model directly.

Problems with the data as a whole (a missing path, an unknown format, a class with no images, a JSON
without the keys its format needs) raise `DatasetError` with a one-line message. Problems with single
images (a listed file that is missing, a file that does not decode) do not stop a run: `check_images`
moves them to `Dataset.skipped` with their reason.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from classifier.intake.images import ImageError, has_image_extension, load_photo
from classifier.schema.rows import ERROR, OK, ROLLED_UP, Row

FORMATS = ("folder", "csv", "coco", "inat")
SPLITS = ("auto", "random", "location", "sequence", "folders", "csv")
MULTI_LABEL = ("first", "skip", "all")
EMPTY_LABELS = frozenset({"empty", "blank", "none", "nothing"})
# Which rows of a predictions file are training data (see `read_predictions_csv`).
ROWS = ("sure", "reviewed", "all")
UNKNOWN_LABEL = "unknown"

# Folder pairs that already are a train/valid split, as the public datasets ship them.
SPLIT_FOLDERS = (("train", "valid"), ("train", "val"), ("seg_train", "seg_test"), ("train", "test"))
_TRAIN_NAMES = frozenset({"train", "training", "trn"})
_VALID_NAMES = frozenset({"valid", "val", "validation", "test", "dev"})
_PATH_COLUMNS = ("path", "file", "file_name", "filename", "image")
_LABEL_COLUMNS = ("label", "class", "species", "category")


class DatasetError(ValueError):
    """A dataset that cannot be used as given, with a one-line reason naming the file, key or class."""


@dataclass(frozen=True)
class Record:
    """One labeled image. `file` is relative to the dataset root (posix separators)."""

    file: str
    label: str
    split: str | None = None  # what the data says: "train"/"valid" folders, or the csv's split column
    location: str | None = None  # camera site; a location split never puts one in both halves
    sequence: str | None = None  # burst of frames from one trigger
    frame: int | None = None  # position in the sequence, 0 first
    group: str | None = None  # csv `group` column: anything that must stay on one side of a split


@dataclass
class Dataset:
    root: Path
    format: str
    source: str
    records: list[Record]
    skipped: list[dict[str, str]] = field(default_factory=list)  # [{"file", "reason"}]
    # Rows of a predictions file that are not training data by choice (not reviewed, `unknown`, ...):
    # counted by reason, not listed, as a reviewed file may leave thousands of rows aside.
    left_out: dict[str, int] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return sorted({r.label for r in self.records})

    def counts(self) -> Counter[str]:
        return Counter(r.label for r in self.records)

    def path(self, record: Record) -> Path:
        return self.root / record.file

    def with_records(self, records: list[Record], skipped: Iterable[dict[str, str]] = ()) -> Dataset:
        return replace(self, records=list(records), skipped=[*self.skipped, *skipped])


class Split(NamedTuple):
    train: list[Record]
    valid: list[Record]
    method: str  # the rule actually used ("auto" resolved)


# ----------------------------------------------------------------------------------------------- reading


def read_dataset(
    source: str | Path,
    format: str | None = None,
    *,
    image_root: str | Path | None = None,
    multi_label: str = "skip",
    supercategories: Sequence[str] = (),
    rows: str = "sure",
    blank: str | None = None,
) -> Dataset:
    """Read a labeled collection; `format` is guessed from the path when not given.

    `image_root` is where the paths in a csv or JSON file start (default: the file's folder).
    `multi_label` says what to do with a COCO image annotated with several species: keep the `first`,
    `skip` it (recorded in `skipped`), or keep `all` (one record per species, same file).
    `supercategories` keeps only those iNaturalist supercategories (e.g. Mammalia, Aves).
    `rows` and `blank` apply to a predictions csv only (see `read_predictions_csv`).
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise DatasetError(f"{source}: no such file or folder; check the path.")
    fmt = format or guess_format(path)
    if fmt not in FORMATS:
        raise DatasetError(f"unknown dataset format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if multi_label not in MULTI_LABEL:
        raise DatasetError(f"unknown --multi-label {multi_label!r}; use one of {', '.join(MULTI_LABEL)}.")
    if fmt == "folder":
        if not path.is_dir():
            raise DatasetError(f"{source}: the folder format needs a folder with one sub-folder per class.")
        return read_folder(path)
    if not path.is_file():
        raise DatasetError(f"{source}: the {fmt} format needs a file, not a folder.")
    if fmt == "csv":
        return read_csv(path, image_root=image_root, rows=rows, blank=blank)
    data = _load_json(path)
    if fmt == "coco":
        return read_coco(path, image_root=image_root, multi_label=multi_label, data=data)
    return read_inat(path, image_root=image_root, supercategories=supercategories, data=data)


def guess_format(path: Path) -> str:
    """folder for a folder, csv for .csv, coco or inat for .json (COCO Camera Traps has seq_id/location)."""
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        data = _load_json(path)
        images = data.get("images") or []
        if any(isinstance(im, dict) and ({"seq_id", "location", "frame_num"} & im.keys()) for im in images):
            return "coco"
        categories = data.get("categories") or []
        if any(isinstance(c, dict) and "supercategory" in c for c in categories):
            return "inat"
        return "coco"
    raise DatasetError(
        f"{path}: cannot tell the dataset format from the name; pass --format {'|'.join(FORMATS)}."
    )


def read_folder(root: Path) -> Dataset:
    """One sub-folder per class; a root holding train/ and valid/ (or seg_train/ and seg_test/) is split."""
    root = Path(root)
    pair = next(((t, v) for t, v in SPLIT_FOLDERS if (root / t).is_dir() and (root / v).is_dir()), None)
    if pair is None:
        records = _class_folders(root, root, split=None)
    else:
        records = [
            r
            for name, side in zip(pair, ("train", "valid"), strict=True)
            for r in _class_folders(root, _unnest(root / name), split=side)
        ]
    return Dataset(root=root, format="folder", source=str(root), records=records)


def _unnest(folder: Path) -> Path:
    # Kaggle's Intel release nests seg_train/seg_train/<classes>; follow a lone folder of the same name.
    inner = folder / folder.name
    children = [c for c in folder.iterdir() if not _hidden(c)]
    return inner if children == [inner] and inner.is_dir() else folder


def _class_folders(root: Path, folder: Path, split: str | None) -> list[Record]:
    classes = sorted(c for c in folder.iterdir() if c.is_dir() and not _hidden(c))
    if not classes:
        raise DatasetError(f"{folder}: no class folders; the folder format needs one sub-folder per class.")
    records = []
    for class_dir in classes:
        files = sorted(p for p in class_dir.rglob("*") if p.is_file() and has_image_extension(p))
        if not files:
            raise DatasetError(
                f"{class_dir}: class {class_dir.name!r} has no images; add some or remove the folder."
            )
        records += [Record(p.relative_to(root).as_posix(), class_dir.name, split=split) for p in files]
    return records


def _hidden(path: Path) -> bool:
    return path.name.startswith((".", "_"))


def read_csv(
    path: Path, image_root: str | Path | None = None, rows: str = "sure", blank: str | None = None
) -> Dataset:
    """`path,label` rows with optional `split`, `group`, `location`, `sequence` and `frame` columns.

    A predictions file (it has `confidence` and `status` columns too) is read by `read_predictions_csv`
    with `rows` and `blank`.
    """
    path = Path(path)
    root = Path(image_root) if image_root else path.parent
    text = _csv_text(path)
    if _is_predictions_header(text.split("\n", 1)[0]):
        return read_predictions_csv(path, image_root=image_root, rows=rows, blank=blank, text=text)
    try:
        table = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise DatasetError(f"{path.name}: cannot be read as a csv file ({exc}).") from None
    return _labels_csv(path, root, table)


def _labels_csv(path: Path, root: Path, rows: list[dict[str, Any]]) -> Dataset:
    if not rows:
        raise DatasetError(f"{path.name}: no rows; a labels csv needs a header and one row per image.")
    columns = list(rows[0].keys())
    path_col = _pick_column(columns, _PATH_COLUMNS, path.name)
    label_col = _pick_column(columns, _LABEL_COLUMNS, path.name)
    records = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        file, label = (row.get(path_col) or "").strip(), (row.get(label_col) or "").strip()
        if not file or not label:
            missing = "path" if not file else "label"
            raise DatasetError(f"{path.name}: line {number} has an empty {missing}.")
        records.append(
            Record(
                file=_relative(file, root),
                label=label,
                split=_cell(row, "split"),
                group=_cell(row, "group"),
                location=_cell(row, "location"),
                sequence=_cell(row, "sequence") or _cell(row, "seq_id"),
                frame=_int_or_none(_cell(row, "frame") or _cell(row, "frame_num")),
            )
        )
    return Dataset(root=root, format="csv", source=str(path), records=records)


def _csv_text(path: Path) -> str:
    try:  # bytes, not read_text: a quoted cell may hold a line break that must stay as written
        return path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path.name}: cannot be read as a csv file ({exc}).") from None


def _is_predictions_header(line: str) -> bool:
    from classifier.schema.predictions_file import REQUIRED_COLUMNS

    # Spreadsheets in some locales save with ';' or a tab (classifier.schema.predictions_file reads those too).
    return any(
        set(REQUIRED_COLUMNS) <= {c.strip().strip('"') for c in line.split(d)} for d in (",", ";", "\t")
    )


def read_predictions_csv(
    path: Path,
    image_root: str | Path | None = None,
    rows: str = "sure",
    blank: str | None = None,
    text: str | None = None,
) -> Dataset:
    """A predictions csv of `python -m classifier predict` or the app, reviewed or not, as labeled data.

    `label` is the answer: the model's, or for a reviewed row (`classification_method=human`) the
    person's, which may be a class the model does not have. Paths are relative to the file's folder
    (or `image_root`); `camera` becomes the location and `sequence_id` the sequence, so a split by
    sequence keeps the frames of one burst together. Which rows count:

    - `rows="sure"`: rows a person reviewed, and the model's own answers it was sure of (`status=ok`) that
      name one of its classes; its unreviewed `uncertain` guesses and groups ("carnivore") are left out;
    - `rows="reviewed"`: only rows a person reviewed;
    - `rows="all"`: also the unreviewed `uncertain` guesses.

    Never: rows with `status=error` (listed in `skipped` with predict's reason), rows labelled `unknown`,
    rows without a label, and blank rows (`blank`, `empty`, ...) unless `blank` names the class they
    become. What is left out by choice is counted in `left_out` by reason.
    """
    from classifier.schema.predictions_file import ExportError, parse_predictions

    path = Path(path)
    if rows not in ROWS:
        raise DatasetError(f"unknown --rows {rows!r}; use one of {', '.join(ROWS)}.")
    root = Path(image_root) if image_root else path.parent
    if text is None:
        text = _csv_text(path)
    try:
        predictions = parse_predictions(text, name=path.name)
    except ExportError as exc:
        raise DatasetError(str(exc)) from None
    records, skipped, left_out = [], [], Counter()
    for row in predictions.records:
        reason = _left_out_reason(row, rows, blank)
        if row.status == ERROR:
            skipped.append({"file": row.path, "reason": f"predict could not read it: {row.error or 'error'}"})
        elif reason:
            left_out[reason] += 1
        else:
            label = blank if blank is not None and _is_blank(row) else row.label
            records.append(
                Record(
                    file=_relative(row.path, root),
                    label=label,
                    location=row.camera or None,
                    sequence=row.sequence_id or None,
                )
            )
    if not records:
        why = "; ".join(f"{n} {reason}" for reason, n in left_out.most_common()) or "every row is an error"
        raise DatasetError(f"{path.name}: no row is training data ({why}); see --rows.")
    return Dataset(
        root=root,
        format="csv",
        source=str(path),
        records=records,
        skipped=skipped,
        left_out=dict(left_out.most_common()),
    )


def _left_out_reason(row: Row, rows: str, blank: str | None) -> str | None:
    """Why a predictions row is not training data (None: it is); error rows are handled by the caller."""
    if rows == "reviewed" and not row.reviewed:
        return "not reviewed"
    if rows == "sure" and not row.reviewed and row.status != OK:
        return "uncertain and not reviewed"
    if rows == "sure" and not row.reviewed and _rolled_up(row):
        return "a group, not a class (not reviewed)"
    if row.label.casefold() == UNKNOWN_LABEL or (not row.label and row.observation_type == UNKNOWN_LABEL):
        return "labelled unknown"
    if _is_blank(row):
        return None if blank is not None else "blank (the model has no blank class)"
    if not row.label:
        return "no label"
    return None


def _rolled_up(row: Row) -> bool:
    """A machine answer at a rank above its classes ("carnivore (Carnivora)"): it names no class to learn."""
    if row.decision is not None:
        return row.decision.rule == ROLLED_UP
    return row.rolled_up and row.label.endswith(")")  # files written before `decision`


def _is_blank(row: Row) -> bool:
    return row.label.casefold() in EMPTY_LABELS or (not row.label and row.observation_type == "blank")


def _pick_column(columns: list[str], names: Sequence[str], file: str) -> str:
    lowered = {c.strip().lower(): c for c in columns if c}
    for name in names:
        if name in lowered:
            return lowered[name]
    raise DatasetError(f"{file}: no {names[0]!r} column (found: {', '.join(columns)}).")


def _cell(row: dict[str, Any], name: str) -> str | None:
    value = row.get(name)
    return value.strip() or None if isinstance(value, str) else None


def _relative(file: str, root: Path) -> str:
    candidate = Path(file)
    if candidate.is_absolute():
        try:
            return candidate.relative_to(root).as_posix()
        except ValueError:
            return candidate.as_posix()
    return candidate.as_posix()


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _load_json(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path.name}: not a readable JSON file ({str(exc).splitlines()[0]}).") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path.name}: expected a JSON object with images, annotations and categories.")
    return data


def _coco_tables(path: Path, data: dict[str, Any]) -> tuple[dict, dict, list]:
    missing = [key for key in ("images", "annotations", "categories") if not isinstance(data.get(key), list)]
    if missing:
        raise DatasetError(f"{path.name}: no {', '.join(missing)} list; is this a COCO-style file?")
    if not data["annotations"]:
        raise DatasetError(f"{path.name}: no annotations (an unlabeled test split?); training needs labels.")
    images, categories = {}, {}
    for index, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "id" not in image or not image.get("file_name"):
            raise DatasetError(f"{path.name}: images[{index}] has no id or file_name.")
        images[image["id"]] = image
    for index, category in enumerate(data["categories"]):
        if not isinstance(category, dict) or "id" not in category or "name" not in category:
            raise DatasetError(f"{path.name}: categories[{index}] has no id or name.")
        categories[category["id"]] = category
    for index, annotation in enumerate(data["annotations"]):
        if not isinstance(annotation, dict):
            raise DatasetError(f"{path.name}: annotations[{index}] is not an object.")
        if annotation.get("image_id") not in images:
            raise DatasetError(
                f"{path.name}: annotations[{index}] names unknown image {annotation.get('image_id')!r}."
            )
        if annotation.get("category_id") not in categories:
            raise DatasetError(
                f"{path.name}: annotations[{index}] names unknown category {annotation.get('category_id')!r}."
            )
    return images, categories, data["annotations"]


def read_coco(
    path: Path,
    image_root: str | Path | None = None,
    multi_label: str = "skip",
    data: dict[str, Any] | None = None,
) -> Dataset:
    """COCO Camera Traps as LILA publishes it: images with seq_id, frame_num, location, datetime."""
    path = Path(path)
    images, categories, annotations = _coco_tables(path, data if data is not None else _load_json(path))
    labels: dict[Any, list[str]] = defaultdict(list)
    for annotation in annotations:
        name = str(categories[annotation["category_id"]]["name"])
        if name not in labels[annotation["image_id"]]:  # two zebras are one species
            labels[annotation["image_id"]].append(name)
    records, skipped = [], []
    for image_id, image in images.items():
        file = str(image["file_name"]).replace("\\", "/")
        names = labels.get(image_id, [])
        if not names:
            skipped.append({"file": file, "reason": "no annotation in the JSON"})
            continue
        if len(names) > 1 and multi_label == "skip":
            skipped.append(
                {"file": file, "reason": f"several species ({'; '.join(names)}); --multi-label skip"}
            )
            continue
        for name in names if multi_label == "all" else names[:1]:
            records.append(_coco_record(file, name, image))
    root = Path(image_root) if image_root else path.parent
    return Dataset(root=root, format="coco", source=str(path), records=records, skipped=skipped)


def _coco_record(file: str, label: str, image: dict[str, Any]) -> Record:
    location = image.get("location")
    sequence = image.get("seq_id")
    return Record(
        file=file,
        label=label,
        location=None if location is None else str(location),
        sequence=None if sequence is None else str(sequence),
        frame=_int_or_none(image.get("frame_num")),
    )


def read_inat(
    path: Path,
    image_root: str | Path | None = None,
    supercategories: Sequence[str] = (),
    data: dict[str, Any] | None = None,
) -> Dataset:
    """iNaturalist 2017/2018 competition JSON; `supercategories` keeps only those (e.g. Mammalia)."""
    path = Path(path)
    images, categories, annotations = _coco_tables(path, data if data is not None else _load_json(path))
    wanted = {s.lower() for s in supercategories}
    known = {str(c.get("supercategory", "")).lower() for c in categories.values()}
    unknown = sorted(wanted - known)
    if unknown:
        raise DatasetError(
            f"{path.name}: no supercategory {', '.join(unknown)} (has: {', '.join(sorted(known))})."
        )
    records, seen = [], set()
    for annotation in annotations:
        category = categories[annotation["category_id"]]
        if wanted and str(category.get("supercategory", "")).lower() not in wanted:
            continue
        if annotation["image_id"] in seen:  # iNat has one label per image; keep the first if repeated
            continue
        seen.add(annotation["image_id"])
        file = str(images[annotation["image_id"]]["file_name"]).replace("\\", "/")
        records.append(Record(file=file, label=str(category["name"])))
    root = Path(image_root) if image_root else path.parent
    return Dataset(root=root, format="inat", source=str(path), records=records)


# ----------------------------------------------------------------------------------------------- filters


def keep_classes(dataset: Dataset, classes: Sequence[str]) -> Dataset:
    """Only the named classes; a name the data does not have is an error (a typo must not pass silently)."""
    unknown = sorted(set(classes) - set(dataset.classes))
    if unknown:
        raise DatasetError(
            f"no class {', '.join(map(repr, unknown))} in {dataset.source} (has: {', '.join(dataset.classes)})."
        )
    wanted = set(classes)
    return dataset.with_records([r for r in dataset.records if r.label in wanted])


def drop_small_classes(dataset: Dataset, min_images: int) -> Dataset:
    """Only classes with at least `min_images` images."""
    counts = dataset.counts()
    return dataset.with_records([r for r in dataset.records if counts[r.label] >= min_images])


def keep_top_classes(dataset: Dataset, n: int) -> Dataset:
    """The `n` most frequent classes (ties broken by name)."""
    ranked = sorted(dataset.counts().items(), key=lambda item: (-item[1], item[0]))[:n]
    wanted = {name for name, _ in ranked}
    return dataset.with_records([r for r in dataset.records if r.label in wanted])


def drop_empty(
    dataset: Dataset, fraction: float, seed: int = 0, empty_labels: Iterable[str] = EMPTY_LABELS
) -> Dataset:
    """Drop `fraction` (0-1) of the empty-frame images, chosen at random with `seed`.

    Camera-trap data is mostly empty frames; keeping a tenth of them (`fraction=0.9`) keeps the model
    able to say "empty" without spending most of the training on it.
    """
    if not 0.0 <= fraction <= 1.0:
        raise DatasetError(f"--drop-empty {fraction}: give a fraction between 0 and 1.")
    empties = {label.lower() for label in empty_labels}
    empty_index = [i for i, r in enumerate(dataset.records) if r.label.lower() in empties]
    dropped = set(random.Random(seed).sample(empty_index, round(len(empty_index) * fraction)))
    return dataset.with_records([r for i, r in enumerate(dataset.records) if i not in dropped])


def first_frames(dataset: Dataset) -> Dataset:
    """Keep one image per sequence: the lowest frame number (images without a sequence stay)."""
    best: dict[str, int] = {}
    for index, record in enumerate(dataset.records):
        if record.sequence is None:
            continue
        current = best.get(record.sequence)
        if current is None or _frame_key(record) < _frame_key(dataset.records[current]):
            best[record.sequence] = index
    # Records of the same image with several labels (--multi-label all) share the chosen frame's file.
    chosen_files = {(dataset.records[i].sequence, dataset.records[i].file) for i in best.values()}
    kept = [r for r in dataset.records if r.sequence is None or (r.sequence, r.file) in chosen_files]
    return dataset.with_records(kept)


def _frame_key(record: Record) -> tuple[int, str]:
    return (record.frame if record.frame is not None else 1 << 30, record.file)


def check_images(dataset: Dataset, decode: bool = True, workers: int = 4) -> Dataset:
    """Move images that are missing (or, with `decode`, do not decode) to `skipped` with their reason.

    Raises `DatasetError` when nothing usable is left: that is a wrong root, not a few bad files.
    """
    unique = list(dict.fromkeys(r.file for r in dataset.records))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        problems = dict(
            zip(unique, pool.map(lambda f: _problem(dataset.root / f, decode), unique), strict=True)
        )
    bad = {file: reason for file, reason in problems.items() if reason}
    if unique and len(bad) == len(unique):
        example = next(iter(bad.items()))
        raise DatasetError(
            f"none of the {len(unique)} images could be used (e.g. {example[0]}: {example[1]}); "
            f"are the paths relative to {dataset.root}? Pass --image-root if not."
        )
    kept = [r for r in dataset.records if r.file not in bad]
    return dataset.with_records(kept, [{"file": file, "reason": reason} for file, reason in bad.items()])


def _problem(path: Path, decode: bool) -> str | None:
    if not path.is_file():
        return "file not found"
    if not decode:
        return None
    try:
        load_photo(path, target_size=32)
    except ImageError as exc:
        return str(exc).removeprefix(f"{path.name}: ")
    return None


# ------------------------------------------------------------------------------------------------ splits


def split_dataset(dataset: Dataset, how: str = "auto", valid_pct: float = 0.2, seed: int = 42) -> Split:
    """Split into train and valid.

    `random`: per class at random (a file with several labels stays on one side); `location` and
    `sequence`: whole locations or sequences at random, so none is in both halves (no leak between
    frames of one burst or one camera site); `folders`/`csv`: as the data says (train/valid folders or
    the csv's split column). `auto` uses the data's own split when it has one, else sequences when
    there are any, else random.
    """
    if not dataset.records:
        raise DatasetError(f"{dataset.source}: no images left to split (check the filters).")
    method = _resolve_split(dataset, how)
    if method in ("folders", "csv"):
        train, valid = _given_split(dataset, method)
    else:
        if not 0.0 < valid_pct < 1.0:
            raise DatasetError(f"--valid-pct {valid_pct}: give a fraction between 0 and 1 (e.g. 0.2).")
        if method == "random":
            valid_files = _random_valid_files(dataset.records, valid_pct, seed)
        else:
            valid_files = _grouped_valid_files(dataset.records, method, valid_pct, seed)
        train = [r for r in dataset.records if r.file not in valid_files]
        valid = [r for r in dataset.records if r.file in valid_files]
    if not train or not valid:
        raise DatasetError(f"the {method} split left no {'training' if not train else 'validation'} images.")
    return Split(train, valid, method)


def _resolve_split(dataset: Dataset, how: str) -> str:
    if how not in SPLITS:
        raise DatasetError(f"unknown --split {how!r}; use one of {', '.join(SPLITS)}.")
    if how != "auto":
        return how
    if _has_given_split(dataset):
        return "folders" if dataset.format == "folder" else "csv"
    # Sequences, when there are two or more: a single one (every photo of a folder copied at once has
    # about the same file time, so predict puts them in one sequence) could not be split at all.
    if len({r.sequence or f"file:{r.file}" for r in dataset.records}) >= 2 and any(
        r.sequence for r in dataset.records
    ):
        return "sequence"
    return "random"


def _has_given_split(dataset: Dataset) -> bool:
    sides = {_side(r.split) for r in dataset.records}
    return sides == {"train", "valid"}


def _side(split: str | None) -> str | None:
    name = (split or "").strip().lower()
    return "train" if name in _TRAIN_NAMES else "valid" if name in _VALID_NAMES else None


def _given_split(dataset: Dataset, method: str) -> tuple[list[Record], list[Record]]:
    odd = sorted({str(r.split) for r in dataset.records if _side(r.split) is None})
    if odd:
        where = "train/ and valid/ folders" if method == "folders" else "a split column of train/valid"
        raise DatasetError(f"--split {method} needs {where}; found {', '.join(odd[:5])}.")
    train = [r for r in dataset.records if _side(r.split) == "train"]
    valid = [r for r in dataset.records if _side(r.split) == "valid"]
    return train, valid


def _random_valid_files(records: list[Record], valid_pct: float, seed: int) -> set[str]:
    rng = random.Random(seed)
    by_class: dict[str, list[str]] = defaultdict(list)
    for record in records:
        by_class[record.label].append(record.file)
    valid: set[str] = set()
    decided: set[str] = set()
    for label in sorted(by_class):
        files = [f for f in dict.fromkeys(by_class[label]) if f not in decided]
        rng.shuffle(files)
        n_valid = round(len(files) * valid_pct)
        if len(files) >= 2:
            n_valid = min(max(n_valid, 1), len(files) - 1)  # every class on both sides when it can be
        valid.update(files[:n_valid])
        decided.update(files)
    return valid


def _grouped_valid_files(records: list[Record], method: str, valid_pct: float, seed: int) -> set[str]:
    key = {"location": lambda r: r.location or r.group, "sequence": lambda r: r.sequence}[method]
    if not any(key(r) for r in records):
        raise DatasetError(f"--split {method}: the data has no {method} for any image; use --split random.")
    groups: dict[str, set[str]] = defaultdict(set)
    for record in records:
        groups[key(record) or f"file:{record.file}"].add(record.file)
    groups = _merge_shared_files(groups)
    if len(groups) < 2:
        raise DatasetError(
            f"--split {method}: all images share one {method}; a grouped split needs two or more."
        )
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    total = len({r.file for r in records})
    target = max(1, round(total * valid_pct))
    valid: set[str] = set()
    for name in names[:-1]:  # the last group always stays in train
        if len(valid) >= target:
            break
        valid |= groups[name]
    return valid


def _merge_shared_files(groups: dict[str, set[str]]) -> dict[str, set[str]]:
    # A file listed under two groups (inconsistent metadata) ties them together, so it cannot leak.
    parent = {name: name for name in groups}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    owner: dict[str, str] = {}
    for name in sorted(groups):
        for file in groups[name]:
            if file in owner:
                parent[find(name)] = find(owner[file])
            else:
                owner[file] = name
    merged: dict[str, set[str]] = defaultdict(set)
    for name, files in groups.items():
        merged[find(name)] |= files
    return merged


# ---------------------------------------------------------------------------------------- image loading


class ImageReader:
    """Path -> fastai `PILImage` through `classifier.intake.images` (EXIF orientation, any mode to RGB).

    A `size` lets large JPEGs decode at a reduced scale that is still at least `size` on both sides;
    resizing to the model's square input happens afterwards, as in prediction. Lives here, not in
    `train/`, because an exported learner holds it and must load where only `classifier` is importable.
    """

    def __init__(self, size: int | None = None) -> None:
        self.size = size
        # fastai wraps a callable without a __name__ in a local closure, which the export would then
        # pickle as bytecode; with a name it keeps this object, pickled by reference to this class.
        self.__name__ = "ImageReader"

    def __call__(self, path):  # no annotations: fastai's dispatch would read them (as strings, here)
        from fastai.vision.core import PILImage

        return PILImage(load_photo(path, target_size=self.size).image)

    def __repr__(self) -> str:
        return f"ImageReader(size={self.size})"
