"""A run of prediction written out as it goes (`python -m classifier predict`): each row on disk as soon
as it is made, burst frames answered together (classifier.results.sequences), a row per animal when
asked, and a tally of what happened. A cluster failing under the run, or Ctrl-C, still leaves every row
that finished written: the tally says which of the two ended it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from classifier.models.engines import EngineError
from classifier.results.sequences import SequenceStream
from classifier.schema.observations import per_detection
from classifier.schema.rows import ERROR, Row

SHOWN_ERRORS = 5  # the first problems a summary lists


class RowWriter(Protocol):
    def write(self, row: Row) -> None: ...


@dataclass
class Tally:
    counts: Counter[str] = field(default_factory=Counter)  # photos by status
    errors: list[str] = field(default_factory=list)  # the first problems
    interrupted: bool = False  # Ctrl-C
    failed: str = ""  # why the engine stopped, when it did

    @property
    def done(self) -> int:
        return sum(self.counts.values())


def write_rows(
    rows: Iterable[Row],
    writer: RowWriter,
    *,
    groups: Sequence[str],
    sequence_gap: float = 0.0,
    per_animal: bool = False,
) -> Tally:
    """Write `rows` (one a photo, in the order of `groups`, each photo's folder) as they come; with a
    `sequence_gap`, frames of one burst are answered together first."""
    stream = SequenceStream(list(groups), sequence_gap) if sequence_gap else None
    tally = Tally()

    def write(frame: Row) -> None:
        for row in per_detection(frame) if per_animal else [frame]:
            writer.write(row)
        tally.counts[frame.status] += 1
        if frame.status == ERROR and len(tally.errors) < SHOWN_ERRORS:
            tally.errors.append(frame.error)

    try:
        for row in stream.feed(rows) if stream else rows:
            write(row)
    except EngineError as exc:  # the cluster failed under the run: what finished is written, then why
        tally.failed = str(exc)
    except KeyboardInterrupt:
        tally.interrupted = True
    if tally.failed or tally.interrupted:
        for row in stream.flush() if stream else ():
            write(row)
    return tally
