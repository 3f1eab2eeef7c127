"""What every page shares: the sidebar's model picker and threshold, and the cached loaders.

A model loads when a page first needs it, once per process (`st.cache_resource`, shared by all sessions:
the network is only read from), and only one stays loaded: a free host (Streamlit Community Cloud) gives
the whole app about 1 GB, and the libraries alone take most of it (benchmarks/app_memory.py). The app
runs the compiled network (classifier/models/runtimes/) and never imports fastai: a model file not compiled
yet is compiled once in a child process. Bundle
lists, reports and species notes load once per content (`st.cache_data`). A model that fails to load on
this host is set aside for everyone, with its reason in the sidebar, and the other models stay usable.
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from classifier.knowledge.species import (
    SPECIES_DIR_VARIABLE,
    SpeciesBook,
    SpeciesInfoError,
)
from classifier.models.bundle_photos import MANIFEST, Example, bundle_examples, examples_folder, thumbnail
from classifier.models.bundles import (
    MODELS_DIR,
    Bundle,
    BundleError,
    bundle_species_book,
    detector_settings,
    find_bundles,
    read_bundle,
    species_notes_path,
)
from classifier.models.predictors import PredictorOptions
from classifier.results.taxa import Taxon, load_taxa

if TYPE_CHECKING:
    from classifier.models.detect import Detector
    from classifier.models.embeddings import Embeddings
    from classifier.models.heads import LinearScores
    from classifier.models.predict import Predictor
    from classifier.models.runtimes import LoadedModel
    from classifier.results.teaching import Teacher

# What the batch and review pages take as photos: the photo formats and zip archives of them.
PHOTO_UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "zip"]
# Lets tests and self-hosters point the app at another models folder.
MODELS_DIR_VARIABLE = "WILDLIFE_MODELS_DIR"
# The sidebar's settings hold for the whole session: by default Streamlit drops a widget's value on a
# page switch that carries no widget values (st.switch_page, as "Review and correct" does), and the
# threshold came back as the model's default.
KEEP = "session"
NO_COUNTRY = ""  # the place picker's "not given"
NO_MODEL = (
    "No model bundled yet: train one with `python -m train --data PATH --name NAME` "
    "(see the About page), then reload this page."
)


def models_root() -> Path:
    return Path(os.environ.get(MODELS_DIR_VARIABLE) or MODELS_DIR)


@st.cache_data(show_spinner=False)
def bundles_in(root: str) -> list[Bundle]:
    return find_bundles(root)


@st.cache_resource(show_spinner="Loading the model (once for everyone)…", max_entries=1)
def loaded_model(directory: str, model_sha256: str | None) -> LoadedModel:
    """The bundle's network; the hash is part of the key so a retrained bundle is reloaded.

    The model loaded before is dropped, and its memory handed back, before this one loads: the process
    keeps one model, not every model a visitor ever picked.
    """
    from classifier.models.runtimes import load_model  # torch: imported when a model is first loaded

    loaded_model.clear()
    heatmap_network.clear()  # the model before's torch copy goes with it
    _release_free_memory()
    bundle, runtime = read_bundle(directory), app_runtime()
    # A first compile runs in a child process.
    return load_model(bundle, isolate=True, runtime=runtime, precision=app_precisions(bundle)[0])


@st.cache_resource(show_spinner="Loading the model's torch network for the heatmap (once)…", max_entries=1)
def heatmap_network(directory: str, model_sha256: str | None) -> LoadedModel:
    """The bundle's network as two torch parts, whose gradients a heatmap needs; loaded the first time a
    visitor asks for a heatmap (the served runtime, OpenVINO by default, gives no gradients)."""
    from classifier.models.runtimes import TORCH, load_model

    heatmap_network.clear()
    return load_model(read_bundle(directory), isolate=True, runtime=TORCH)


def explaining_network(predictor: Predictor, bundle: Bundle) -> Any:
    """The classifier's network in the two torch parts a heatmap needs: the predictor's own when it runs
    on torch, else the heatmap's copy (loaded once)."""
    network = predictor.network
    return (
        network
        if hasattr(network, "body")
        else heatmap_network(str(bundle.directory), bundle.model_sha256).network
    )


@st.cache_resource(show_spinner="Loading the animal detector (once for everyone)…", max_entries=1)
def shared_detector(settings: tuple[tuple[str, float], ...], precision: str) -> Detector:
    """The detector a bundle asks for (its report's `detector` settings), one for the whole process."""
    from classifier.models.detect import Detector

    return Detector(**dict(settings), runtime=app_runtime(), precision=precision)


def app_runtime() -> str:
    from classifier.models.runtimes import default_runtime

    return default_runtime(app=True)


def app_precisions(bundle: Bundle) -> tuple[str, str]:
    """The classifier's and the detector's precision in the app: `auto`'s choice for the app's runtime
    (fp32 with TorchScript, the app's default; see classifier/models/precision.py)."""
    from classifier.models.precision import AUTO, resolve

    return resolve(bundle, app_runtime(), AUTO)


@st.cache_resource(show_spinner=False)
def failed_loads() -> dict[str, str]:
    """Models that could not be loaded in this process: their `_load_key` -> the one-line reason."""
    return {}


def _release_free_memory() -> None:
    """Free unreachable objects and return freed heap pages to the system.

    A fastai Learner holds reference cycles, so a dropped model waits for the cycle collector; glibc then
    keeps the freed pages for later unless trimmed. Measured: without both, every switch of model added
    20-60 MB to the app's resident memory.
    """
    gc.collect()
    return_free_heap()


def release_page_memory() -> None:
    """After a page run that decoded photos (classify, quiz): every `PAGE_RUNS_PER_COLLECTION`th such run in
    the process collects the garbage in reference cycles, then the freed heap pages go back to the system.

    A page script's globals (its decoded photo, crops and row) are in a reference cycle with the functions
    the page defines, and in a heap this large Python seldom runs the full collection that frees them:
    resident memory rose about 40 MiB every 25 photos until one came (tests/test_load.py). A collection
    costs about 120 ms with the serengeti bundle loaded, so not every run pays it: at most that many runs'
    photos wait for it, about 12 ms a run. (Freezing the startup's objects out of it would make it cheap,
    but would freeze the first visitor's session for good.)"""
    if next(_page_runs) % PAGE_RUNS_PER_COLLECTION == 0:
        gc.collect()
    return_free_heap()


def return_free_heap() -> None:
    """Give back to the system the heap pages glibc keeps once a big step is done (a photo classified,
    a heatmap): each visitor's script runs on its own thread, and glibc keeps freed pages per thread."""
    if sys.platform.startswith("linux"):
        trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only (not musl)
        if trim is not None:
            trim(0)


PAGE_RUNS_PER_COLLECTION = 10
_page_runs = itertools.count(1)  # this process's page runs that decoded photos, for release_page_memory


@st.cache_data(show_spinner=False)
def species_book(directory: str, notes: str | None, changed: float) -> SpeciesBook | None:
    """A bundle's notes (`bundle_species_book`), read again when the file changes."""
    return bundle_species_book(read_bundle(directory))


def species_taxa(labels: set[str]) -> dict[str, Taxon]:
    """Scientific names and taxonomy of the labels from the species notes, for the exports."""
    return _species_taxa(tuple(sorted(labels)), os.environ.get(SPECIES_DIR_VARIABLE, ""))


@st.cache_data(show_spinner=False)
def _species_taxa(labels: tuple[str, ...], species_dir: str) -> dict[str, Taxon]:
    return load_taxa(labels, root=species_dir or None)[0]


def _load_key(bundle: Bundle) -> str:
    return f"{bundle.directory}:{bundle.model_sha256}"  # a re-exported bundle gets another try


def _problem(bundle: Bundle) -> str | None:
    """Why the bundle cannot be used (an unreadable report, or a model that failed to load), or None."""
    return bundle.error or failed_loads().get(_load_key(bundle))


def working_bundles() -> list[Bundle]:
    return [b for b in bundles_in(str(models_root())) if _problem(b) is None]


def sidebar() -> None:
    """The model picker (default bundle first) and the confidence threshold, shared by every page."""
    bundles = bundles_in(str(models_root()))
    for bundle in bundles:
        if reason := _problem(bundle):
            st.sidebar.warning(f"Model '{bundle.name}' cannot be used: {reason}")
    working = [b for b in bundles if _problem(b) is None]
    if not working:
        st.sidebar.info(NO_MODEL)
        return
    names = [b.name for b in working]
    linked = st.query_params.get("model")
    if linked in names:  # a shared link names its model; the picker below keeps the link up to date
        st.session_state["model"] = linked
    elif st.session_state.get("model") not in names:
        st.session_state["model"] = names[0]
    st.sidebar.selectbox(
        "Model",
        names,
        key="model",
        persist_state=KEEP,
        format_func=lambda n: next(b.title for b in working if b.name == n),
        on_change=_link_model,
    )
    bundle = current_bundle()
    assert bundle is not None
    key = f"threshold_{bundle.name}"
    if key not in st.session_state:
        st.session_state[key] = round(bundle.threshold, 2)
    st.sidebar.selectbox(
        "Where were the photos taken?",
        [NO_COUNTRY, *countries()],
        key="country",
        persist_state=KEEP,
        format_func=lambda code: countries().get(code, "Not given: each photo's GPS"),
        help="Species that do not live there are never the answer. Not given: each photo's own GPS "
        "position, when its camera wrote one.",
    )
    st.sidebar.slider(
        "Confidence threshold",
        0.0,
        1.0,
        step=0.01,
        key=key,
        persist_state=KEEP,
        help="Below this confidence a photo is marked 'not sure' and set aside for a person. "
        f"The model's own default is {bundle.threshold:.2f}.",
    )


@st.cache_data(show_spinner=False)
def countries() -> dict[str, str]:
    """ISO 3166-1 alpha-3 code -> country name, by name: the place picker's choices."""
    from classifier.knowledge.geography import country_table

    table = country_table()
    return {code: table[code].name for code in sorted(table, key=lambda c: table[c].name)}


def current_country() -> str | None:
    return st.session_state.get("country") or None


def _link_model() -> None:
    if "model" in st.query_params:
        st.query_params["model"] = st.session_state["model"]


def current_bundle() -> Bundle | None:
    """The picked bundle; the default one before the sidebar has run (a page opened on its own)."""
    working = working_bundles()
    chosen = next((b for b in working if b.name == st.session_state.get("model")), None)
    return chosen or (working[0] if working else None)


def current_threshold(bundle: Bundle) -> float:
    return float(st.session_state.get(f"threshold_{bundle.name}", bundle.threshold))


def require_bundle() -> Bundle:
    """The chosen bundle, or the 'no model' message and the end of this page's run."""
    bundle = current_bundle()
    if bundle is None:
        st.info(NO_MODEL)
        st.stop()
    return bundle


def require_predictor(bundle: Bundle) -> Predictor:
    """A predictor at this session's threshold, or one error line when the model cannot be loaded here.

    Any failure counts, not only a `BundleError` (missing, corrupt or tampered file): on a host, a
    library that differs or memory that runs out fails in its own way. The model is then set aside for
    everyone (the sidebar says why) and the visitor picks another.
    """
    try:
        model = loaded_model(str(bundle.directory), bundle.model_sha256)
        settings = detector_settings(bundle)
        detector = (
            shared_detector(tuple(sorted(settings.items())), app_precisions(bundle)[1])
            if settings is not None
            else None
        )
    except Exception as error:
        reason = str(error).split("\n", 1)[0].rstrip(".") or type(error).__name__
        failed_loads()[_load_key(bundle)] = reason
        st.error(
            f"Model '{bundle.title}' cannot be loaded here ({reason}); pick another model in the sidebar."
        )
        st.stop()
    # Cheap: the networks are shared; only this session's threshold and place are its own.
    options = PredictorOptions(
        detect=detector is not None,
        threshold=current_threshold(bundle),
        top_k=5,
        book=species_book_or_warn(bundle),
        country=current_country(),
        keep_embeddings=True,
    )
    return options.build(
        bundle, model=model, detector=detector, embeddings=shared_embeddings(str(bundle.directory))
    )


@st.cache_resource(show_spinner=False)
def shared_embeddings(directory: str) -> Embeddings:
    """Where the app keeps what the classifier saw of each photo (one store a model, shared)."""
    from classifier.models.embeddings import embeddings_for  # torch: only once a model is needed

    return embeddings_for(read_bundle(directory))


@st.cache_resource(show_spinner="Reading the model's head (once)…", max_entries=2)
def linear_head(directory: str, model_sha256: str | None) -> LinearScores | None:
    from classifier.models.runtimes import load_linear_head

    return load_linear_head(read_bundle(directory), isolate=True)


def teacher_for(bundle: Bundle) -> Teacher | None:
    """What teaches the bundle from this session's review (a linear head's bundle only), else None."""
    head = linear_head(str(bundle.directory), bundle.model_sha256)
    if head is None:
        return None
    predictor = require_predictor(bundle)
    from classifier.results.teaching import Teacher

    return Teacher(
        name=bundle.name,
        classes=bundle.classes,
        head=head,
        store=predictor.embeddings,
        rules=predictor.rules,
        margin=predictor.crop_margin,
        label_photos=predictor.predict_many,
    )


def species_book_or_warn(bundle: Bundle) -> SpeciesBook | None:
    """The bundle's species notes; a broken notes file is one warning, the page goes on without notes."""
    path = species_notes_path(bundle)
    try:
        return species_book(str(bundle.directory), str(path), path.stat().st_mtime if path else 0.0)
    except SpeciesInfoError as error:
        st.warning(f"Species notes are unavailable: {error}")
        return None


def examples_or_warn(bundle: Bundle) -> dict[str, Example]:
    """The bundle's example photos by class ({} without); a broken manifest is one warning, no photos."""
    try:
        return _examples(str(bundle.directory), examples_changed(bundle))
    except BundleError as error:
        st.warning(f"Example photos are unavailable: {error}")
        return {}


def examples_changed(bundle: Bundle) -> float:
    """When the bundle's example photos last changed (0 without any): the key that reads them again."""
    manifest = examples_folder(bundle) / MANIFEST
    return manifest.stat().st_mtime if manifest.is_file() else 0.0


def transfer_figures(bundle: Bundle) -> dict[str, Any] | None:
    """The bundle's figures on other projects' frames (`transfer.json`), read again when the file changes."""
    from classifier.results.performance import TRANSFER_FILE  # pandas: only the performance page needs it

    path = bundle.directory / TRANSFER_FILE
    return _transfer(str(bundle.directory), path.stat().st_mtime if path.is_file() else 0.0)


@st.cache_data(show_spinner=False)
def _transfer(directory: str, changed: float) -> dict[str, Any] | None:
    from classifier.results.performance import read_transfer

    return read_transfer(Path(directory))


@st.cache_data(show_spinner=False)
def _examples(directory: str, changed: float) -> dict[str, Example]:
    return bundle_examples(read_bundle(directory))


def example_thumbnail(path: str) -> bytes:
    """An example photo cut to 4:3, so a grid of them lines up (once per photo and version of it)."""
    return _thumbnail(path, Path(path).stat().st_mtime)


@st.cache_data(show_spinner=False, max_entries=500)
def _thumbnail(path: str, changed: float) -> bytes:
    return thumbnail(Path(path))
