"""Predict species for one photo, or stream predictions for thousands with parallel decoding.

The network is called directly (eval mode, `torch.inference_mode`, fixed-size batches); fastai's data
pipeline is not used here. Every photo is decoded the way the bundle's training data was resized: RGB,
squished to `image_size` x `image_size` with bilinear resampling, scaled to [0, 1] (the network normalises
inside). Large JPEGs are decoded at a reduced scale first (`Image.draft`), which is most of the speed.

`Predictor.predict_many` yields one `Row` per input, in input order, as soon as its batch is done: a photo
that cannot be read or decoded is a row with `status="error"` and a one-line reason, never an exception.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from classifier.intake.decoding import Decoded, decode_item, decode_photo, decode_size_for
from classifier.intake.inputs import close_archives, item_for_path
from classifier.intake.items import InputItem
from classifier.models.bundles import crop_margin as bundle_crop_margin
from classifier.models.detect import crop_box
from classifier.models.embeddings import Embeddings, picture_key
from classifier.models.runtimes import LoadedModel, default_workers
from classifier.models.verdict import Found, detected_row, joined_scores, rules_for, whole_frame_row
from classifier.schema.rows import ERROR, MACHINE, OK, UNCERTAIN, Prediction, Row

if TYPE_CHECKING:
    from classifier.knowledge.species import SpeciesBook
    from classifier.models.detect import Detector

# On a CPU, small batches that stay in cache run fastest: 2 cores, EfficientNet-Lite0 at 224 px, full-size
# JPEGs, predict_many at batch 1/4/8 = 73/67/61 photos/s (benchmarks/predict_speed.py). A GPU wants big ones.
CPU_BATCH_SIZE, GPU_BATCH_SIZE = 4, 64
THREADS, PROCESSES = "threads", "processes"
# Detector runs: boxes scoring at least this are looked at, so a blank frame can say how close it came;
# at most MAX_DETECTIONS boxes of a frame (the best) are classified.
DETECTOR_FLOOR, MAX_DETECTIONS = 0.05, 20


@dataclass(frozen=True)
class Seen:
    """What the detector and the classifier saw in one frame."""

    found: list[Found]  # the boxes over the detector's threshold, surest first (at most MAX_DETECTIONS)
    whole: np.ndarray  # the whole frame's class scores
    best: float  # the detector's best score in the frame, kept or not: how close a blank frame came
    features: list[np.ndarray]  # the pooled features of each box's crop, then of the whole frame


class Predictor:
    """Wraps a loaded bundle; thread-safe for concurrent `predict_image` calls (the app shares one)."""

    def __init__(
        self,
        model: LoadedModel,
        *,
        detector: Detector | None = None,
        threshold: float | None = None,
        top_k: int = 3,
        batch_size: int | None = None,
        workers: int | None = None,
        parallel: str = THREADS,
        crop_margin: float | None = None,
        book: SpeciesBook | None = None,
        country: str | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1, not {threshold}")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, not {top_k}")
        if batch_size is None:
            batch_size = CPU_BATCH_SIZE if model.device.type == "cpu" else GPU_BATCH_SIZE
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        if parallel not in (THREADS, PROCESSES):
            raise ValueError(f"parallel must be {THREADS!r} or {PROCESSES!r}, not {parallel!r}")
        if detector is not None and parallel == PROCESSES:
            raise ValueError(
                "decoding in processes is for whole-frame prediction; use threads with a detector"
            )
        self.model = model
        self.detector = detector
        # Where what the classifier saw is kept (classifier/models/embeddings.py), by photo content: a
        # site's model is then fitted and applied without running the networks again.
        self.embeddings = embeddings
        self.crop_margin = bundle_crop_margin(model.bundle) if crop_margin is None else crop_margin
        self.network = model.network.eval()
        self.device = model.device
        self.classes = model.bundle.classes
        self.image_size = model.bundle.image_size
        self.threshold = model.bundle.threshold if threshold is None else float(threshold)
        self.top_k = min(top_k, len(self.classes))
        self.batch_size = batch_size
        self.workers = default_workers() if workers is None else max(0, workers)
        self.parallel = parallel
        # A detector needs the frame, not a squished thumbnail: decoded at a reduced scale no smaller
        # than what the detector sees, and its crops cut from that.
        self.decode_size = decode_size_for(self.image_size, detector.input_size if detector else None)
        # The place and taxonomy rules (classifier/knowledge/taxonomy.py), applied to each frame's evidence by
        # classifier/models/verdict.py: with the bundle's species notes, an answer under the cut-off may roll
        # up to a rank that is sure; with a place (given, or the photo's GPS), the classes that do not live
        # there are never the answer. Without notes, answers stay as they are.
        self.rules = rules_for(
            model.bundle, book, threshold=self.threshold, top_k=self.top_k, country=country
        )

    # --- one photo -----------------------------------------------------------------------------------

    def predict_image(self, image: Image.Image) -> Prediction:
        """Top-k for one decoded image (any mode; converted to RGB here)."""
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return self.predict_arrays([np.array(self._squish(rgb))])[0]

    def predict_photo(self, source: bytes | Path, *, name: str, detect: bool = True) -> Row:
        """The row of one photo, given as its bytes or its file, decoded as `predict_many` decodes every
        photo: so a photo gets the same answer on the classify page as in a batch or on the command line.
        With `detect` off (or no detector) the answer is the whole frame's. A photo that cannot be used is
        an error row."""
        whole = self.detector is None or not detect
        decoded = decode_photo(source, name, self.decode_size, squish=self.detector is None)
        path = str(source) if isinstance(source, Path) else name
        return self._rows([(InputItem(path=path, location=path), decoded)], whole_frame=whole)[0]

    def predict_arrays(self, arrays: list[np.ndarray] | list[torch.Tensor]) -> list[Prediction]:
        """Predictions for already squished images: HWC uint8 arrays or CHW uint8 tensors."""
        return [self._prediction(p) for p in self._scores(arrays)[0]]

    def _scores(self, arrays: list[np.ndarray] | list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Class probabilities (N, classes) for squished images and the pooled features they came from
        (N, C), one forward pass."""
        if not arrays:
            return torch.zeros(0, len(self.classes)), torch.zeros(0, 0)
        tensors = [torch.from_numpy(a).permute(2, 0, 1) if isinstance(a, np.ndarray) else a for a in arrays]
        batch = torch.stack(tensors).to(self.device, non_blocking=True).float().div_(255.0)
        # The layout load_model gives the network: oneDNN's fast one for convolutions on a CPU.
        batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            logits, features = self.network.scores_and_features(batch)
            return torch.softmax(logits.float(), dim=1).cpu(), features.float().cpu()

    def _prediction(self, probabilities: torch.Tensor) -> Prediction:
        top_p, top_i = probabilities.topk(self.top_k)
        top = tuple((self.classes[k], float(v)) for k, v in zip(top_i.tolist(), top_p.tolist(), strict=True))
        label, confidence = top[0]
        status = OK if confidence >= self.threshold else UNCERTAIN
        return Prediction(label, confidence, status, top, tuple(probabilities.tolist()))

    def _squished(self, pixels: np.ndarray) -> np.ndarray:
        """Decoded pixels at the network's size (frames decoded for the detector are larger; a process
        pool's CHW tensors already are)."""
        if not isinstance(pixels, np.ndarray) or pixels.shape[:2] == (self.image_size, self.image_size):
            return pixels
        return np.array(self._squish(Image.fromarray(pixels)))

    def _squish(self, image: Image.Image) -> Image.Image:
        size = (self.image_size, self.image_size)
        return image if image.size == size else image.resize(size, Image.BILINEAR)

    # --- many photos ---------------------------------------------------------------------------------

    def predict_many(self, items: Iterable[InputItem | str | Path]) -> Iterator[Row]:
        """One row per item, in input order, streamed batch by batch; bad photos become error rows.

        With threads (the default), each of `workers` threads decodes a batch and runs the network on it,
        with torch's own intra-op threads set to 1 meanwhile (restored afterwards). On a CPU shared with
        other processes, torch's OpenMP threads spin at a barrier for every operation waiting for a thread
        the OS has paused: measured here, a 2-thread forward fell from 145 to 3 photos/s under load while
        one thread per batch kept 66 (benchmarks/predict_speed.py).
        """
        chunks = _chunks(self._items(items), self.batch_size)
        if self.parallel == PROCESSES and self.workers > 0:
            with _torch_threads(1 if self.device.type == "cpu" else None):
                for batch in _decode_with_processes(chunks, self.image_size, self.batch_size, self.workers):
                    yield from self._rows(batch)
        elif self.workers == 0:
            try:
                for chunk in chunks:
                    yield from self._predict_chunk(chunk)
            finally:
                close_archives()
        else:
            yield from self._predict_on_threads(chunks)

    def _predict_on_threads(self, chunks: Iterator[list[InputItem]]) -> Iterator[Row]:
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="predict")
        pending: deque[Future[list[Row]]] = deque()
        finished = False
        try:
            with _torch_threads(1 if self.device.type == "cpu" else None):
                for chunk in chunks:
                    pending.append(pool.submit(self._predict_chunk, chunk))
                    if len(pending) > self.workers:  # every worker busy, one batch queued behind them
                        yield from pending.popleft().result()
                while pending:
                    yield from pending.popleft().result()
            finished = True
        finally:
            # Done: join the idle threads. Interrupted or abandoned: drop queued batches, don't wait.
            pool.shutdown(wait=finished, cancel_futures=True)

    def _predict_chunk(self, chunk: list[InputItem]) -> list[Row]:
        return self._rows([(item, self.decode(item)) for item in chunk])

    def decode(self, item: InputItem) -> Decoded:
        """The item read and decoded as this predictor's batches take it (never raises: see `decode_item`)."""
        return decode_item(item, self.decode_size, squish=self.detector is None)

    def predict_decoded(self, batch: list[tuple[InputItem, Decoded]]) -> list[Row]:
        """The rows of one batch decoded elsewhere (`decode` there: another process, another machine),
        in its order: the step `predict_many` runs after decoding, for engines that split the two
        (classifier/models/engines.py). Given the batches `predict_many` makes (`batch_size` items in input
        order), its rows are the ones `predict_many` writes."""
        return self._rows(batch)

    def _rows(self, batch: list[tuple[InputItem, Decoded]], whole_frame: bool = False) -> list[Row]:
        rows = [self._base_row(_row(item, decoded)) for item, decoded in batch]
        good = [i for i, (_, decoded) in enumerate(batch) if decoded.pixels is not None]
        pixels = [batch[i][1].pixels for i in good]
        if self.detector is None or whole_frame:
            scores, features = self._scores([self._squished(p) for p in pixels])
            answered = [
                whole_frame_row(rows[i], p, self.rules) for i, p in zip(good, scores.tolist(), strict=True)
            ]
            self._keep([(rows[i].photo_sha256, None, f) for i, f in zip(good, features.numpy(), strict=True)])
        else:
            answered = self._detected([Image.fromarray(p) for p in pixels], [rows[i] for i in good])
        for i, row in zip(good, answered, strict=True):
            rows[i] = row
        return rows

    def _detected(self, frames: list[Image.Image], rows: list[Row]) -> list[Row]:
        """Rows of frames from what the detector and the classifier saw (classifier/models/verdict.py makes
        each frame's verdict of it)."""
        evidence = self.frame_evidence(frames)
        self._keep(
            [
                (row.photo_sha256, bbox, features)
                for row, seen in zip(rows, evidence, strict=True)
                for bbox, features in zip([*(b.bbox for b in seen.found), None], seen.features, strict=True)
            ]
        )
        return [
            detected_row(row, seen.found, seen.whole, seen.best, self.rules)
            for row, seen in zip(rows, evidence, strict=True)
        ]

    def _keep(self, pictures: list[tuple[str, tuple[float, float, float, float] | None, np.ndarray]]) -> None:
        """Keep what the classifier saw of photos whose content is known: (photo SHA-256, box or None for
        the whole frame, pooled features)."""
        if self.embeddings is not None:
            self.embeddings.put(
                (picture_key(sha, bbox, self.crop_margin), features)
                for sha, bbox, features in pictures
                if sha
            )

    def frame_evidence(self, frames: list[Image.Image]) -> list[Seen]:
        """What the detector and the classifier see in each RGB frame (`Seen`).

        Each box's scores join its crop's class probabilities with the whole frame's (their geometric
        mean, renormalised): the crop sees the animal, the frame its surroundings and the animals the
        crop cut off. Measured on the transfer frames (benchmarks/serengeti_transfer.py, serengeti bundle
        trained on crops and frames): boxed frames right 0.615 from the crop alone, 0.600 from the frame
        alone, 0.631 together.
        """
        assert self.detector is not None
        found = self.detector.detect(frames, confidence=min(DETECTOR_FLOOR, self.detector.confidence))
        kept = [
            [b for b in boxes if b.detector_conf >= self.detector.confidence][:MAX_DETECTIONS]
            for boxes in found
        ]
        crops = [
            np.array(self._squish(crop_box(frame, b.bbox, self.crop_margin)))
            for frame, animals in zip(frames, kept, strict=True)
            for b in animals
        ]
        probabilities, features = self._scores(crops + [np.array(self._squish(frame)) for frame in frames])
        probabilities, features = probabilities.double(), features.numpy()
        crop_p, whole_p = iter(probabilities[: len(crops)]), probabilities[len(crops) :]
        crop_f, whole_f = iter(features[: len(crops)]), features[len(crops) :]
        evidence = []
        for animals, boxes, whole, frame_f in zip(kept, found, whole_p, whole_f, strict=True):
            boxed = [
                Found(b.bbox, b.detector_conf, joined_scores(next(crop_p).numpy(), whole.numpy()))
                for b in animals
            ]
            best = max((b.detector_conf for b in boxes), default=0.0)
            evidence.append(Seen(boxed, whole.numpy(), best, [*(next(crop_f) for _ in animals), frame_f]))
        return evidence

    def _base_row(self, row: Row) -> Row:
        """Who labelled the row and when: this model, now (error rows: nobody)."""
        if row.status == ERROR:
            return row
        row.classification_method, row.classified_by = MACHINE, self.model.bundle.name
        row.classified_at = datetime.now(UTC).replace(microsecond=0)
        return row

    @staticmethod
    def _items(items: Iterable[InputItem | str | Path]) -> Iterator[InputItem]:
        for item in items:
            yield item if isinstance(item, InputItem) else item_for_path(item)


@contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count for a while (a process-wide setting: restored afterwards)."""
    before = torch.get_num_threads()
    if count is None or count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _row(item: InputItem, decoded: Decoded) -> Row:
    """The row's facts from the file (an error row when it could not be decoded); the answer comes next."""
    time = decoded.taken.replace(tzinfo=UTC).timestamp() if decoded.taken else item.mtime
    row = Row(
        path=item.path,
        photo_sha256=decoded.sha256,
        datetime=decoded.taken,
        camera=decoded.camera or "",
        group=item.group,
        time=time,
        location=decoded.location,
    )
    if decoded.pixels is None:
        row.error = decoded.error or f"{item.name}: could not be decoded."
    else:
        row.status = OK
    return row


class _ItemDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[InputItem], size: int) -> None:
        self.items, self.size = items, size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Decoded:
        decoded = decode_item(self.items[index], self.size)
        if decoded.pixels is not None:  # a tensor travels between processes through shared memory
            decoded.pixels = torch.from_numpy(decoded.pixels).permute(2, 0, 1)
        return decoded


def _decode_with_processes(
    chunks: Iterator[list[InputItem]], size: int, batch_size: int, workers: int
) -> Iterator[list[tuple[InputItem, Decoded]]]:
    """Decode in torch DataLoader worker processes, predict in this one: the alternative to threads,
    measured side by side in benchmarks/predict_speed.py. Needs the whole item list up front."""
    listed = [item for chunk in chunks for item in chunk]
    loader = torch.utils.data.DataLoader(
        _ItemDataset(listed, size),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=list,
        prefetch_factor=2,
    )
    start = 0
    for decoded in loader:
        yield list(zip(listed[start : start + len(decoded)], decoded, strict=True))
        start += len(decoded)


def _chunks(items: Iterator[InputItem], size: int) -> Iterator[list[InputItem]]:
    chunk: list[InputItem] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
