"""Group camera-trap photos into sequences: a trap fires in bursts, and a burst is one sighting.

Photos share a `sequence_id` when they sit in the same folder (or folder inside a zip), come from the same
camera (EXIF make/model, when present), and each was taken within `gap` seconds of the previous one,
ordered by time. Time is the EXIF DateTimeOriginal, or the file's modification time when the photo has
none; a photo with neither is a sequence of its own. A photo uploaded to the app has no file time (its
saved file's is the upload's, which says nothing of when it was taken; `classifier.results.review.Photos`). Rows with `status="error"` get no sequence.

`sequence_label` is the majority label of the sequence's photos (ties: the larger summed confidence),
so a burst whose middle frame shows only a tail still gets the animal the other frames saw.

Frames the detector looked at are smoothed within their sequence: blank frames do not vote; a frame
whose own answer is `uncertain` takes the sequence's majority animal when a frame of the sequence named
that animal surely (`ok`) and the frame's own guesses (`top_k`) include it (or, for a group such as
"carnivore", the best class of a frame that named it): its label, rank and that frame's confidence, with
`decision.rule` `FROM_SEQUENCE`; its own guesses stay in `top_k`. A frame whose guesses do not include it
stays `uncertain` for a person: photos stamped within a minute of each other are not always one animal (a
folder of stills may share one time), and a guess the frame never made is no answer to trust. A frame that
clearly disagrees (its own answer `ok`) keeps it. A blank frame in a sequence of animals is
marked `uncertain`, for a person to look at, rather than dropped: the animal may have been out of view
or missed by the detector.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

from classifier.schema.rows import BLANK, ERROR, FROM_SEQUENCE, OK, UNCERTAIN, Decision, Row

DEFAULT_GAP_SECONDS = 60.0


def assign_sequences(rows: Sequence[Row], gap: float = DEFAULT_GAP_SECONDS, *, first_id: int = 1) -> int:
    """Set `sequence_id` and `sequence_label` on `rows` in place; returns the next unused id number."""
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row.group].append(row)
    next_id = first_id
    for members in groups.values():
        next_id = _sequence_group(members, gap, next_id)
    return next_id


class SequenceStream:
    """Adds sequences to a stream of rows, keeping input order and holding only unfinished folders.

    A folder's rows are held back until its last photo (known from the expanded inputs) has its row;
    then the folder's sequences are final and its rows go out. After an interrupt, `flush()` finishes the
    sequences of what arrived and returns the rows still held, so nothing that was predicted is lost.
    """

    def __init__(self, groups: Sequence[str], gap: float = DEFAULT_GAP_SECONDS) -> None:
        self.gap = gap
        self._last_index = {group: index for index, group in enumerate(groups)}
        self._open: dict[str, list[Row]] = defaultdict(list)
        self._pending: deque[Row] = deque()
        self._count = 0
        self._next_id = 1

    def feed(self, rows: Iterable[Row]) -> Iterator[Row]:
        for row in rows:
            index, self._count = self._count, self._count + 1
            self._pending.append(row)
            self._open[row.group].append(row)
            if self._last_index.get(row.group, index) <= index:
                self._close(row.group)
            yield from self._ready()
        yield from self.flush()

    def flush(self) -> list[Row]:
        for group in list(self._open):
            self._close(group)
        ready = list(self._pending)
        self._pending.clear()
        return ready

    def _close(self, group: str) -> None:
        members = self._open.pop(group, None)
        if members:
            self._next_id = _sequence_group(members, self.gap, self._next_id)

    def _ready(self) -> Iterator[Row]:
        while self._pending and self._pending[0].group not in self._open:
            yield self._pending.popleft()


def majority_label(rows: Iterable[Row]) -> str:
    votes: Counter[str] = Counter()
    weight: Counter[str] = Counter()
    for row in rows:
        if row.label and row.observation_type != BLANK:
            votes[row.label] += 1
            weight[row.label] += row.confidence or 0.0
    if not votes:
        return ""
    return max(votes, key=lambda label: (votes[label], weight[label], label))


def _sequence_group(members: list[Row], gap: float, next_id: int) -> int:
    """Split one folder's rows (in input order) into sequences, numbered by their first photo's position."""
    position = {id(row): index for index, row in enumerate(members)}
    by_camera: dict[str, list[Row]] = defaultdict(list)
    for row in members:
        if row.status != ERROR:
            by_camera[row.camera].append(row)
    sequences: list[list[Row]] = []
    for rows in by_camera.values():
        current: list[Row] = []
        for row in sorted((r for r in rows if r.time is not None), key=lambda r: r.time):
            if current and row.time - current[-1].time > gap:
                sequences.append(current)
                current = []
            current.append(row)
        if current:
            sequences.append(current)
        sequences.extend([r] for r in rows if r.time is None)
    for sequence in sorted(sequences, key=lambda seq: min(position[id(r)] for r in seq)):
        label = majority_label(sequence)
        for row in sequence:
            row.sequence_id = f"seq{next_id:05d}"
            row.sequence_label = label
        smooth(sequence, label)
        next_id += 1
    return next_id


def smooth(sequence: list[Row], label: str) -> None:
    """The detector rows of one sequence, smoothed in place (see the module's docstring)."""
    detected = [row for row in sequence if row.detections is not None]
    sure = [row for row in detected if row.label == label and row.status == OK]
    named = {label} | {row.top_k[0][0] for row in sure if row.top_k}
    for row in detected:
        if row.observation_type == BLANK:
            if label:  # animals elsewhere in the burst: a person should look
                row.status = UNCERTAIN
        elif sure and row.status == UNCERTAIN and named & {guess for guess, _ in row.top_k}:
            surest = max(sure, key=lambda r: r.confidence or 0.0)
            row.label, row.confidence, row.status, row.rank = label, surest.confidence, OK, surest.rank
            row.decision = replace(row.decision or Decision(rule=FROM_SEQUENCE), rule=FROM_SEQUENCE)
