"""The one way to build a `Predictor`: `PredictorOptions(...).build(bundle)`, used by the command line, the
app, the Ray engine's actors, evaluation, the teaching queue and retraining.

The options are everything but the loaded networks, so they travel (picklable) to wherever a predictor is
built: `auto` precision is resolved there, on that machine. The app builds one predictor per visit around
the networks it shares between visitors (`model`, `detector`, `embeddings`), its options the visitor's own
(threshold, country). Nothing here imports torch until `build` runs (the Ray driver never needs it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from classifier.models.bundles import Bundle

if TYPE_CHECKING:
    from classifier.knowledge.species import SpeciesBook
    from classifier.models.detect import Detector
    from classifier.models.embeddings import Embeddings
    from classifier.models.predict import Predictor
    from classifier.models.runtimes import LoadedModel


@dataclass(frozen=True)
class PredictorOptions:
    """What a `Predictor` is built from, but the loaded networks."""

    detect: bool = True  # find animals first when the bundle was trained on the detector's crops
    book: SpeciesBook | None = None
    country: str | None = None
    threshold: float | None = None
    top_k: int = 3
    batch_size: int | None = None
    runtime: str | None = None  # None: the machine's default (classifier.models.runtimes)
    precision: str = "fp32"  # or "auto": chosen for each network where the predictor is built
    keep_embeddings: bool = False  # keep what the classifier saw (classifier/models/embeddings.py)

    def precisions(self, bundle: Bundle) -> tuple[str, str]:
        """The classifier's and the detector's precision on this machine (`auto` resolved here: a
        cluster's machines may differ)."""
        from classifier.models.precision import resolve
        from classifier.models.runtimes import default_runtime

        return resolve(bundle, self.runtime or default_runtime(), self.precision)

    def build(
        self,
        bundle: Bundle,
        *,
        device: str | None = None,
        workers: int | None = None,
        model: LoadedModel | None = None,
        detector: Detector | None = None,
        embeddings: Embeddings | None = None,
    ) -> Predictor:
        """The predictor; `model`, `detector` and `embeddings`, when given, are used instead of loading
        them (networks shared between predictors, as the app's visitors share them)."""
        from classifier.models.detect import detector_for
        from classifier.models.embeddings import embeddings_for
        from classifier.models.predict import Predictor
        from classifier.models.runtimes import load_model

        if model is None or (detector is None and self.detect):
            classifying, detecting = self.precisions(bundle)
            if model is None:
                model = load_model(bundle, device=device, runtime=self.runtime, precision=classifying)
            if detector is None and self.detect:
                detector = detector_for(bundle, self.runtime, detecting)
        if embeddings is None and self.keep_embeddings:
            embeddings = embeddings_for(bundle)
        return Predictor(
            model,
            detector=detector if self.detect else None,
            book=self.book,
            country=self.country,
            threshold=self.threshold,
            top_k=self.top_k,
            batch_size=self.batch_size,
            workers=workers,
            embeddings=embeddings if self.keep_embeddings else None,
        )
