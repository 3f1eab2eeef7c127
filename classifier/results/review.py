"""Review and correct: the queue of photos a person should look at, their corrections, undo, the photos.

The library side of the app's review page (`app_pages/review.py`); nothing here imports Streamlit.

    review = Review.from_file(open("labels.csv", "rb").read(), name="labels.csv", photos=photos)
    for index in review.queue:                   # what needs a person, in file order
        review.relabel(index, "zebra", by="A. Ranger")
    review.undo()
    done, total = review.progress()              # "3 of 12 reviewed"
    text = review.to_csv()                       # the predictions file, with the correction columns

**The queue** holds, in file order:

- `error` rows (the photo could not be read), `uncertain` rows (under the threshold) and, among those,
  blank frames inside a sequence of animals (`status=uncertain` with `observation_type=blank`);
- a spot check of the sure (`ok`) answers: each one is drawn when a hash of its path and `seed` falls
  under `share` (`SPOT_CHECK_SHARE`, 5%), so about one sure photo in twenty is drawn, and the very same
  ones after a saved review is reloaded, whatever else changed;
- blank frames the detector was sure of only when asked (`include_blanks`): they are most of a
  camera-trap season and are not spot-checked otherwise;
- every row a person has reviewed, so a reviewed row stays where it was after a reload.

**A correction** (`relabel`) sets the label, the observation type it means (`blank`, `human`, `vehicle`,
`unknown`, else `animal`), and who, how and when: `classification_method=human`, `classified_by` (the
reviewer's name) and `classified_at` (UTC, ISO 8601). The model's own record stays as it was: `status`,
`confidence`, `top_k` and the boxes (each box keeps its label; exports give a frame's animal boxes the
reviewer's label when they all had one). Keeping `status` keeps the queue the same after a reload.
`relabel(..., whole_sequence=True)` corrects every photo of the sequence at once, and `undo` takes back
the last correction, a whole sequence at once.

**Photos** (`Photos`) are uploaded files and zip archives saved in a temporary folder, read through
`classifier.intake.inputs` (so a zip is read in place, with its limits against bombs and `../` names) and
removed with the object. A row finds its photo by path: the longest tail of its path that one photo's
path ends with (`traps/A/IMG_1.JPG` from the CLI finds `IMG_1.JPG` uploaded alone, or `A/IMG_1.JPG` in a
zip, or `IMG_1.JPG` in `A.zip`); a tail two photos share is ambiguous and finds none. A row without its
photo is shown as missing and can still be relabelled.
"""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
import weakref
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from hashlib import sha1
from pathlib import Path, PurePosixPath

from classifier.intake.images import ImageError, load_photo
from classifier.intake.inputs import expand_inputs, read_item
from classifier.intake.items import FILE, Expansion, InputError, InputItem
from classifier.results.camtrap_dp import write_camtrap_dp
from classifier.results.deployments import (
    DEPLOYMENT_COLUMNS,
    Deployment,
    named_groups,
    parse_deployments,
)
from classifier.results.megadetector import megadetector_results, write_megadetector
from classifier.results.taxa import Taxon
from classifier.schema.observations import label_type
from classifier.schema.predictions_file import ExportError, parse_predictions, write_csv
from classifier.schema.rows import (
    ANIMAL,
    BLANK,
    ERROR,
    HUMAN,
    OK,
    PERSON,
    UNCERTAIN,
    UNKNOWN,
    Detection,
    Row,
)

SPOT_CHECK_SHARE = 0.05  # of the sure answers, drawn for a person to check
SPOT_CHECK_SEED = 0
DEFAULT_REVIEWER = "reviewer"
BLANK_LABEL, UNKNOWN_LABEL = "blank", "unknown"
MAX_LABEL_LENGTH = 100
UNDO_STEPS = 200  # corrections kept for undo

# Why a row is in the queue.
UNREADABLE = "unreadable"
NOT_SURE = "not sure"
BLANK_IN_SEQUENCE = "blank in a sequence of animals"
SPOT_CHECK = "spot check"
BLANK_FRAME = "blank"
REVIEWED = "reviewed"
REASONS = (UNREADABLE, NOT_SURE, BLANK_IN_SEQUENCE, SPOT_CHECK, BLANK_FRAME, REVIEWED)


class ReviewError(ValueError):
    """A correction that cannot be made (an empty or unusable label); `str()` is one line for the user."""


def clean_label(text: str) -> str:
    """A label typed by a person, trimmed; commas, quotes and any language are fine, one line only."""
    text = str(text)
    if "\n" in text or "\r" in text:
        raise ReviewError("A label is one line: remove the line break.")
    label = " ".join(text.split())
    if not label:
        raise ReviewError("Type a label (a species, blank or unknown).")
    if len(label) > MAX_LABEL_LENGTH:
        raise ReviewError(f"A label is at most {MAX_LABEL_LENGTH} characters (this one has {len(label)}).")
    if not label.isprintable():
        raise ReviewError("A label cannot hold control characters.")
    return label


def relabelled(record: Row, label: str, *, by: str, at: datetime | None = None) -> Row:
    """A copy of `record` as corrected by a person (see the module's docstring)."""
    kind = label_type(label)
    count = record.count
    if kind == BLANK:
        count = 0
    elif kind != record.observation_type:
        count = None  # how many a person saw is not known
    return replace(
        record,
        label=label,
        observation_type=kind,
        count=count,
        rank="",  # a person names a class, not a rank a roll-up chose
        classification_method=PERSON,
        classified_by=by.strip() or DEFAULT_REVIEWER,
        classified_at=at or datetime.now(UTC).replace(microsecond=0),
    )


def drawn(path: str, seed: int = SPOT_CHECK_SEED) -> float:
    """Where a photo falls in [0, 1) for the spot check: a hash of its path and the seed."""
    digest = sha1(f"{seed}\0{path}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def boxes_to_draw(record: Row) -> list[Detection]:
    """The detector's boxes with the labels a person sees: a reviewer's label on the frame's animal boxes
    when they all had one label (as the exports write them); a person's box always as `human`."""
    boxes = record.boxes
    animals = {b.label for b in boxes if b.category not in ("person", "vehicle") and _is_animal(b.label)}
    shown = []
    for box in boxes:
        label, confidence = box.label, box.confidence
        if box.category == "person" or label_type(label) == HUMAN:
            label = "human"
        elif box.category == "vehicle":
            label = label or "vehicle"
        elif record.reviewed and record.label and len(animals) <= 1 and _is_animal(label):
            label, confidence = record.label, None
        shown.append(replace(box, label=label, confidence=confidence))
    return shown


def _is_animal(label: str) -> bool:
    return label_type(label) == ANIMAL


# ------------------------------------------------------------------------------------------------ photos


class Photos:
    """The photos of a review: uploaded files and zips, saved in a temporary folder, found by a row's path.

    The folder is removed when the object is closed or collected (a Streamlit session holding it ends).
    """

    def __init__(self, *, preview_cache: int = 300) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="review-photos-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.folder), True)
        self._items: dict[tuple[str, ...], InputItem] = {}
        self._tails: dict[tuple[str, ...], set[tuple[str, ...]]] = defaultdict(set)
        self._found: dict[str, tuple[str, ...] | None] = {}
        self._pictures: OrderedDict[tuple, tuple[bytes | None, str]] = OrderedDict()
        self._preview_cache = preview_cache
        self._saved = 0
        self.skipped: Counter[str] = Counter()  # files left out of the uploads, by reason

    def __len__(self) -> int:
        return len(self._items)

    def add(self, files: Iterable[tuple[str, bytes]]) -> Expansion:
        """Save uploaded files (photos and zips) and index their photos; returns what they expand to
        (the items' paths are in `folder`: the batch page predicts them)."""
        paths = []
        for name, data in files:
            base = PurePosixPath(str(name).replace("\\", "/")).name.strip()
            if base in ("", ".", ".."):
                base = f"upload-{self._saved}"
            path = self.folder / base
            if path.exists():
                stem, suffix = PurePosixPath(base).stem, PurePosixPath(base).suffix
                path = self.folder / f"{stem}-{self._saved}{suffix}"
            path.write_bytes(data)
            paths.append(path)
            self._saved += 1
        expansion = expand_inputs(paths)
        expansion.items = [_without_saved_time(item) for item in expansion.items]
        for item in expansion.items:
            self._index(item)
        self.skipped.update(expansion.skipped)
        self._found.clear()
        return expansion

    def relative(self, path: str) -> str:
        """A path in `folder` as the user named it (their file, or their zip and its entry)."""
        text = str(path).replace("\\", "/")
        prefix = str(self.folder).replace("\\", "/").rstrip("/") + "/"
        return text[len(prefix) :] if text.startswith(prefix) else text

    def _index(self, item: InputItem) -> None:
        parts = _parts(self.relative(item.path))
        self._items[parts] = item
        # A zip's name counts as a folder too: traps/A/IMG_1.JPG finds IMG_1.JPG inside A.zip.
        unzipped = tuple(p[:-4] if p.lower().endswith(".zip") and i < len(parts) - 1 else p
                         for i, p in enumerate(parts))  # fmt: skip
        for spelling in {parts, unzipped}:
            for start in range(len(spelling)):
                self._tails[spelling[start:]].add(parts)

    def find(self, path: str) -> InputItem | None:
        """The photo of the row with this path (see the module's docstring), or None."""
        if path not in self._found:
            self._found[path] = self._match(_parts(path))
        key = self._found[path]
        return None if key is None else self._items[key]

    def _match(self, parts: tuple[str, ...]) -> tuple[str, ...] | None:
        for start in range(len(parts)):
            keys = self._tails.get(parts[start:])
            if keys:
                return next(iter(keys)) if len(keys) == 1 else None  # shorter tails are as ambiguous
        return None

    def picture(self, record: Row, size: int = 480) -> tuple[bytes | None, str]:
        """A JPEG of the row's photo at most `size` px, boxes drawn and people blurred, or None and why.

        A photo labelled human without a person's box (a whole-frame answer) is blurred whole.
        """
        item = self.find(record.path)
        if item is None:
            return None, "photo not found among the uploaded photos"
        boxes = boxes_to_draw(record)
        whole_person = label_type(record.label) == HUMAN and not any(b.label == "human" for b in boxes)
        key = (item.path, size, tuple(boxes), whole_person)
        if key in self._pictures:
            self._pictures.move_to_end(key)
            return self._pictures[key]
        result = self._draw(item, boxes, size, whole_person)
        self._pictures[key] = result
        while len(self._pictures) > self._preview_cache:
            self._pictures.popitem(last=False)
        return result

    def _draw(
        self, item: InputItem, boxes: list[Detection], size: int, whole_person: bool
    ) -> tuple[bytes | None, str]:
        from classifier.results.annotate import annotate, blur

        try:
            image = load_photo(read_item(item), name=item.name, target_size=size).image
        except (InputError, ImageError) as exc:
            return None, str(exc)
        image.thumbnail((size, size))
        if whole_person:
            image = blur(image, (0.0, 0.0, 1.0, 1.0))
        image = annotate(image, boxes)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        return buffer.getvalue(), ""

    def close(self) -> None:
        self._cleanup()


def _without_saved_time(item: InputItem) -> InputItem:
    """A loose upload's file time is when this server saved it, not when it was taken: kept, it made
    undated photos uploaded together one sequence. A zip's entries keep the times their zip recorded."""
    return replace(item, mtime=None) if item.kind == FILE else item


def _parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in str(path).replace("\\", "/").split("/") if p not in ("", "."))


# ------------------------------------------------------------------------------------------------ review


class Review:
    """The rows of one batch or predictions file under review, with the queue, corrections and undo."""

    def __init__(
        self,
        records: Sequence[Row],
        photos: Photos | None = None,
        *,
        classes: Sequence[str] = (),
        source: str = "",
        share: float = SPOT_CHECK_SHARE,
        seed: int = SPOT_CHECK_SEED,
        include_blanks: bool = False,
        origin: object = None,
    ) -> None:
        self.records: list[Row] = list(records)
        self.origin = origin  # where the rows came from (the app: which batch), for the caller
        self.photos = photos
        self.classes = tuple(classes)
        self.source = source
        self.seed = seed
        self.share = share
        self.include_blanks = include_blanks
        self.version = 0  # changes with every correction and undo
        self._history: list[list[tuple[int, Row]]] = []
        self._draws = [drawn(r.path, seed) for r in self.records]
        self._sequences: dict[str, list[int]] = defaultdict(list)
        for index, record in enumerate(self.records):
            if record.sequence_id:
                self._sequences[record.sequence_id].append(index)
        self._queue: list[int] | None = None
        self._teaching: list[int] | None = None
        self._typed: list[str] = []  # names typed in this review, offered with the model's classes

    @classmethod
    def from_file(cls, data: bytes | str, *, name: str, photos: Photos | None = None, **options) -> Review:
        """A review of a predictions CSV or JSON (the page's, the batch page's or the CLI's); reviewed rows
        stay reviewed. Raises `ExportError` (one line) for a file from another tool."""
        predictions = parse_predictions(data, name=name)
        if not predictions.records:
            raise ExportError(f"{name}: has no rows.")
        return cls(predictions.records, photos, source=name, **options)

    # -------------------------------------------------------------------------------------- the queue

    def set_options(self, *, share: float | None = None, include_blanks: bool | None = None) -> None:
        changed = (share is not None and share != self.share) or (
            include_blanks is not None and include_blanks != self.include_blanks
        )
        if changed:
            self.share = self.share if share is None else share
            self.include_blanks = self.include_blanks if include_blanks is None else include_blanks
            self._queue = None

    def reason(self, index: int) -> str:
        """Why the row is in the queue (`REASONS`), or '' when it is not."""
        record = self.records[index]
        if record.status == ERROR:
            return UNREADABLE
        if record.status == UNCERTAIN:
            return BLANK_IN_SEQUENCE if record.observation_type == BLANK else NOT_SURE
        blank = record.kind() == BLANK
        if blank and self.include_blanks:
            return BLANK_FRAME
        if not blank and record.status == OK and self._draws[index] < self.share:
            return SPOT_CHECK
        return REVIEWED if record.reviewed else ""

    @property
    def queue(self) -> list[int]:
        """Indices of the rows a person should look at: in file order, or the teaching order when set."""
        if self._queue is None:
            if self._teaching is not None:
                self._queue = list(self._teaching)
            else:
                self._queue = [i for i in range(len(self.records)) if self.reason(i)]
        return self._queue

    def reasons(self) -> Counter[str]:
        return Counter(self.reason(i) for i in self.queue)

    def progress(self) -> tuple[int, int]:
        """(reviewed, in the queue): the page's "N of M reviewed"."""
        queue = self.queue
        return sum(1 for i in queue if self.records[i].reviewed), len(queue)

    def next_to_review(self, after: int | None = None) -> int | None:
        """The first unreviewed row of the queue after `after` (wrapping round), or None when all are done."""
        queue = self.queue
        if not queue:
            return None
        start = 0
        if after is not None:
            start = next((n for n, i in enumerate(queue) if i > after), len(queue))
        for index in queue[start:] + queue[:start]:
            if not self.records[index].reviewed:
                return index
        return None

    def neighbour(self, index: int | None, step: int) -> int | None:
        """The queue's row `step` places from `index` (wrapping round)."""
        queue = self.queue
        if not queue:
            return None
        if index not in queue:
            return self.next_to_review(index) if index is not None else queue[0]
        return queue[(queue.index(index) + step) % len(queue)]

    def sequence(self, index: int) -> list[int]:
        """The rows of the row's sequence, in file order (only the row when it has none)."""
        sequence_id = self.records[index].sequence_id
        return list(self._sequences[sequence_id]) if sequence_id else [index]

    # -------------------------------------------------------------------------------------- corrections

    def relabel(
        self,
        index: int,
        label: str,
        *,
        by: str = DEFAULT_REVIEWER,
        whole_sequence: bool = False,
        at: datetime | None = None,
    ) -> list[int]:
        """Correct the row (or its whole sequence) to `label`; returns the rows changed. One undo step."""
        label = clean_label(label)
        at = at or datetime.now(UTC).replace(microsecond=0)
        indices = self.sequence(index) if whole_sequence else [index]
        step = []
        for i in indices:
            step.append((i, self.records[i]))
            self.records[i] = relabelled(self.records[i], label, by=by, at=at)
        self._history.append(step)
        del self._history[:-UNDO_STEPS]
        if label.casefold() not in {c.casefold() for c in self.labels()}:
            self._typed.append(label)
        self._changed()
        return indices

    def replace_answers(self, answers: dict[int, Row]) -> int:
        """The model's answers for these rows replaced (a retrained model's); one undo step. Returns how
        many labels changed."""
        step = [(i, self.records[i]) for i in answers]
        changed = sum(self.records[i].label != record.label for i, record in answers.items())
        for i, record in answers.items():
            self.records[i] = record
        self._history.append(step)
        del self._history[:-UNDO_STEPS]
        self._changed()
        return changed

    def teach_first(self, order: list[int] | None) -> None:
        """Show the queue in this order (the teaching order: classifier/results/teaching.py), every row it
        names; None: the usual queue, in file order."""
        self._teaching = order
        self._queue = None

    @property
    def can_undo(self) -> bool:
        return bool(self._history)

    def undo(self) -> list[int]:
        """Take back the last correction (all of a sequence's rows at once); returns the rows restored."""
        if not self._history:
            return []
        step = self._history.pop()
        for index, record in reversed(step):
            self.records[index] = record
        self._changed()
        return [index for index, _ in step]

    def _changed(self) -> None:
        self.version += 1
        self._queue = None  # a reviewed row joins the queue

    def labels(self) -> list[str]:
        """The one-click choices: the model's classes, then names typed in this review, the labels a
        person gave (in an earlier sitting too: a saved review loaded again) and, for a file without its
        model, the labels its rows carry (blank and unknown have buttons of their own)."""
        seen: dict[str, None] = {}
        for label in (*self.classes, *self._typed, *(r.label for r in self.records if r.reviewed)):
            if label_type(label) not in (BLANK, UNKNOWN):
                seen.setdefault(label, None)
        if not self.classes:  # a file without its model: the labels it uses
            for record in self.records:
                for label in (record.label, *(k for k, _ in record.top_k)):
                    if label and label_type(label) not in (BLANK, UNKNOWN):
                        seen.setdefault(label, None)
        return list(seen)

    @property
    def model_name(self) -> str:
        """The model that labelled the rows (their machine `classified_by`), '' when the file does not say."""
        names = Counter(
            r.classified_by for r in self.records if r.classified_by and r.classification_method != PERSON
        )
        return names.most_common(1)[0][0] if names else ""

    # -------------------------------------------------------------------------------------- exports

    def to_csv(self) -> str:
        return csv_text(self.records)

    def to_megadetector(self, taxa: dict[str, Taxon] | None = None) -> tuple[str, list[str]]:
        return megadetector_text(self.records, taxa)

    def to_camtrap_dp(
        self, deployments: Sequence[Deployment], taxa: dict[str, Taxon] | None = None
    ) -> tuple[bytes, list[str]]:
        return camtrap_dp_zip(self.records, deployments, taxa)

    def deployment_table(self) -> list[dict[str, object]]:
        """One row per folder and camera of the photos, for a person to give its coordinates."""
        return [
            {
                "folder": folder,
                "camera": camera,
                "photos": photos,
                "deploymentID": ident,
                "latitude": None,
                "longitude": None,
                "locationName": "",
                "timezone": "",
            }
            for folder, camera, ident, photos in named_groups(self.records)
        ]


def csv_text(records: Sequence[Row]) -> str:
    """The rows as a predictions CSV with the correction columns (`classifier.schema.predictions_file.EXPORT_COLUMNS`):
    what a person downloads, and uploads again to go on."""
    buffer = io.StringIO()
    write_csv(records, buffer)
    return buffer.getvalue()


def megadetector_text(records: Sequence[Row], taxa: dict[str, Taxon] | None = None) -> tuple[str, list[str]]:
    """MegaDetector batch output 1.6 as text, and the export's warnings."""
    warnings: list[str] = []
    results = megadetector_results(records, taxa=taxa, warnings=warnings)
    buffer = io.StringIO()
    write_megadetector(results, buffer)
    return buffer.getvalue(), warnings


def camtrap_dp_zip(
    records: Sequence[Row], deployments: Sequence[Deployment], taxa: dict[str, Taxon] | None = None
) -> tuple[bytes, list[str]]:
    """A Camtrap DP 1.0 zip and its warnings; raises `ExportError` (one line) when it cannot be made."""
    with tempfile.TemporaryDirectory(prefix="review-camtrap-") as folder:
        out = Path(folder) / "camtrap-dp.zip"
        result = write_camtrap_dp(records, out, deployments=deployments, taxa=taxa)
        return out.read_bytes(), result.warnings


def deployments_from_table(
    rows: Iterable[dict[str, object]], name: str = "the deployments table"
) -> list[Deployment]:
    """Deployments from `Review.deployment_table` rows a person filled in; `ExportError` (one line) names
    the first row that cannot be used, as `classifier.results.deployments.parse_deployments` does for a file."""
    columns = [*DEPLOYMENT_COLUMNS, "camera", "locationName", "timezone"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else _cell(row.get(c)) for c in columns})
    return parse_deployments(buffer.getvalue(), name=name)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if value != value else repr(value)  # NaN: an empty cell of a table
    return str(value)
