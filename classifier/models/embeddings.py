"""What the classifier saw, kept: the pooled backbone features of every picture a batch classified (each
box's crop and the whole frame), by photo content, box and model.

Prediction computes them anyway (the compiled networks give them with the logits,
classifier/models/runtimes/); kept here, a model adapted to a site (classifier/models/site.py) is fitted
on a person's corrections and re-labels the rest of the batch without running the detector or the backbone
again. A picture's key: the model's embedding key (the model file's SHA-256, or the base's for a bundle
retrained on its frozen backbone: `report["embeddings"]["model"]`), the photo's SHA-256, and the box
(normalised [x, y, w, h] to 4 decimals, with the crop margin) or `frame`. Stored as float16 (2.5 kB a
picture for EfficientNet-Lite2's 1,280 features) in one SQLite file a model under the runtime cache
(`$WILDLIFE_CACHE_DIR/embeddings/`), safe to share between the predictor's threads and processes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from classifier.models.bundles import Bundle
from classifier.models.runtimes import cache_root

FRAME = "frame"


def embedding_model(bundle: Bundle) -> str:
    """Whose backbone features a bundle's are: its own model file's, or the base it was retrained from."""
    section = bundle.report.get("embeddings")
    named = section.get("model") if isinstance(section, dict) else None
    return str(named or bundle.model_sha256 or bundle.name)


def picture_key(photo_sha256: str, bbox: Sequence[float] | None, margin: float) -> str:
    """The key of one picture of a photo: a box's crop (with the margin it was cut with) or the frame."""
    if bbox is None:
        return f"{photo_sha256}:{FRAME}"
    return f"{photo_sha256}:" + ",".join(f"{v:.4f}" for v in bbox) + f":{margin:.3f}"


def photo_keys(photo_sha256: str, boxes: Sequence[Sequence[float]], margin: float) -> list[str]:
    """The keys of what the classifier saw of one photo: each box's crop, then the whole frame."""
    return [
        *(picture_key(photo_sha256, bbox, margin) for bbox in boxes),
        picture_key(photo_sha256, None, margin),
    ]


class Embeddings:
    """One model's kept features: `put` many, `get` many (missing keys are left out)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")

    def put(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        rows = [(key, np.asarray(vector, dtype=np.float16).tobytes()) for key, vector in items]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO seen VALUES (?, ?)", rows)

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):  # SQLite's limit on bound values
                part = list(keys[start : start + 500])
                marks = ",".join("?" * len(part))
                for key, blob in self._db.execute(
                    f"SELECT key, vector FROM seen WHERE key IN ({marks})", part
                ):
                    found[key] = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
        return found

    def vectors(self, photos: Sequence[list[str]]) -> list[np.ndarray | None]:
        """Each photo's kept pictures (`photo_keys`) as one vector, their mean; None where none is kept."""
        kept = self.get([key for keys in photos for key in keys])
        found = [[kept[key] for key in keys if key in kept] for keys in photos]
        return [np.mean(vectors, axis=0) if vectors else None for vectors in found]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def embeddings_for(bundle: Bundle, root: Path | None = None) -> Embeddings:
    """The store of a bundle's embedding model (shared by the bundles retrained on the same backbone)."""
    return Embeddings((root or cache_root() / "embeddings") / f"{embedding_model(bundle)}.sqlite")
