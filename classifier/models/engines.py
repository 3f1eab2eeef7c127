"""Where prediction runs: `local` (threads in this process, the default) or `ray` (Ray Data), same rows.

    python -m classifier predict --engine ray --out labels.csv photos/            # a local Ray, this machine
    python -m classifier predict --engine ray --address ray://HEAD:10001 ...      # a Ray cluster

Both engines take the photos `classifier.intake.inputs.expand_inputs` lists and run the same `Predictor` (the
bundle's compiled network from `classifier.models.runtimes.load_model`, the detector and its crops, the place and
taxonomy rules); the rows differ only in `classified_at`, the time each was made.

The Ray engine is a Ray Data pipeline of three steps:

1. the photos, cut into the batches the local engine makes (`batch_size` photos in input order, so each
   forward pass sees the same photos and gives the same numbers), one dataset row per batch;
2. `map_batches` with Ray tasks: each task reads and decodes its photos (`Predictor.decode`: files,
   zip entries, URLs, object-store paths, each failure an error row's reason), in parallel across the
   cluster's CPUs;
3. `map_batches` with an actor pool: each actor loads the model once (the bundle's files reach a node
   through Ray's object store when it does not see the bundle's folder) and turns decoded batches into
   rows (`Predictor.predict_decoded`), on a GPU each where the cluster has them.

Rows come back to this process as the batches finish and are written **in input order** (a batch that
finishes early waits for the ones before it), so the CSV or JSON, the sequences and the progress bar are
the local engine's. A batch whose actor dies is run again by Ray Data on a restarted actor; a batch that
comes back twice is written once, and any photo that never comes back (none should) is an error row
naming the engine, so no row is lost or doubled.

Resources: on CPUs the pool has one actor per CPU (or `--workers`), each on one torch thread, taking 3/4
of a CPU in Ray's accounting and the decoding tasks a 1/4 each, so that both steps always have room to
run (an actor pool that claims every CPU leaves the decoding tasks none, and the run waits forever). On
a cluster with GPUs the pool has one actor per GPU, and decoding has the CPUs.

Without an address, a local Ray is started for the run with this machine's CPUs and stopped after it
(in a process that already has Ray running, that one is used and left running). With `--address` the run
joins a running cluster (`ray start --head`, the cluster launcher, KubeRay): the nodes need the
project's dependencies (its Docker image has them); this checkout's `classifier` package travels with
the job. Local photo paths must then be visible at the same path on the nodes (a shared file system);
URLs are fetched, and object-store objects (s3://, gs://) read, where the batch runs, so the nodes need
the store's credentials.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import re
import socket
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from classifier.intake.decoding import file_sha256
from classifier.intake.images import one_line
from classifier.models.bundles import MODEL_FILE, Bundle, BundleError
from classifier.models.predictors import PredictorOptions
from classifier.models.runtimes import load_model
from classifier.schema.rows import Row

if TYPE_CHECKING:
    from classifier.intake.items import InputItem

LOCAL, RAY = "local", "ray"
ENGINES = (LOCAL, RAY)
# Ray's accounting of a CPU (see the module docstring): an actor 3/4, a decoding task 1/4.
ACTOR_CPUS, DECODE_CPUS = 0.75, 0.25
# Batches a dataset block holds: enough blocks for every actor to have several in flight and for the
# last ones to end together, few enough that Ray's cost per task stays small next to the photos' (about
# 16-64 photos a block). Measured, 1,000 frames on 2 quiet cores: 16 blocks an actor, 0.62 of the local
# engine's speed; 4 an actor (64-photo blocks), 0.46: an actor sat idle through the last blocks.
BLOCKS_PER_ACTOR, MAX_BATCHES_PER_BLOCK = 16, 16
LOCAL_OBJECT_STORE_BYTES = 1 << 30  # a local Ray's shared memory for blocks in flight
# What `ray.init(address=...)` joins: a head's GCS (HOST:PORT), Ray Client (ray://HOST:PORT), or auto.
ADDRESS = re.compile(r"auto|(ray://)?[\w.\-]+:\d{1,5}|(ray://)?\[[0-9a-fA-F:]+\]:\d{1,5}")
ADDRESS_TIMEOUT_S = 5.0
RUN_THREADS_TIMEOUT_S = 10.0  # the most a run waits, at its end, for Ray Data's threads to stop
LOST = "the Ray engine returned no row for this photo (its batch was lost); run it again."


class EngineError(Exception):
    """An engine that cannot start or run (no Ray, a cluster that cannot be reached); one line."""


class LocalEngine:
    """Today's path: `Predictor.predict_many` on threads in this process."""

    name = LOCAL

    def __init__(self, bundle: Bundle, options: PredictorOptions, *, workers: int | None = None) -> None:
        self.predictor = options.build(bundle, workers=workers)

    def predict_many(self, items: Iterable[InputItem]) -> Iterator[Row]:
        return self.predictor.predict_many(items)

    def close(self) -> None:
        pass


def open_engine(
    name: str,
    bundle: Bundle,
    options: PredictorOptions,
    *,
    workers: int | None = None,
    address: str | None = None,
) -> LocalEngine | RayEngine:
    """The engine `name`, ready to predict; `EngineError` (one line) when it cannot start."""
    if name == LOCAL:
        if address:
            raise EngineError("--address is for --engine ray.")
        return LocalEngine(bundle, options, workers=workers)
    if name == RAY:
        if address is not None:
            _check_address(address)
        return RayEngine(bundle, options, workers=workers, address=address)
    raise EngineError(f"no engine {name!r}; choose one of {', '.join(ENGINES)}.")


# ------------------------------------------------------------------------------------------------- Ray


def _check_address(address: str) -> None:
    """A well-formed address where something answers: Ray itself retries a dead one for minutes."""
    if not ADDRESS.fullmatch(address):
        raise EngineError(
            f"--address {address}: give HOST:PORT (a cluster's head), ray://HOST:10001 (Ray Client) or auto."
        )
    if address == "auto":  # Ray finds this machine's running cluster, or says at once there is none
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=ADDRESS_TIMEOUT_S).close()
    except OSError as exc:
        raise EngineError(
            f"--address {address}: nothing answers there ({one_line(str(exc) or type(exc).__name__)}); start the cluster's head "
            "(`ray start --head` prints its address) or check the host and port."
        ) from None


def start_local_ray(num_cpus: int | None = None) -> None:
    """Start a Ray on this machine for this process (its workers import this checkout's code)."""
    import ray

    from classifier.models.runtimes import default_workers

    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(
        num_cpus=num_cpus or default_workers(),
        include_dashboard=False,
        object_store_memory=LOCAL_OBJECT_STORE_BYTES,
        logging_level=logging.WARNING,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )


@dataclass(frozen=True)
class _BundleFiles:
    """A bundle as it travels to the actors: its report (in `bundle`) and its model file's bytes."""

    bundle: Bundle
    sha256: str
    model: bytes


def _join_run_threads(before: set[threading.Thread]) -> None:
    """Wait for the threads Ray Data started for a run to end (about 0.1 s after its iterator is closed,
    measured). After Ctrl-C, `ray.shutdown()` came 40 ms later while one still ran: it touched the
    shut-down worker, and Ray ended the whole process with status 1."""
    deadline = time.monotonic() + RUN_THREADS_TIMEOUT_S
    for thread in set(threading.enumerate()) - before:
        # Ray Data's block prefetcher parks until the iterator is collected, touching nothing meanwhile.
        if thread.name != "Prefetcher":
            thread.join(max(0.0, deadline - time.monotonic()))


class RayEngine:
    """Batch prediction as a Ray Data pipeline (see the module docstring)."""

    name = RAY

    def __init__(
        self,
        bundle: Bundle,
        options: PredictorOptions,
        *,
        workers: int | None = None,
        address: str | None = None,
    ) -> None:
        try:
            import ray
        except ImportError:  # an install without the project's full dependencies
            raise EngineError("--engine ray needs Ray: pip install 'ray[data]'.") from None
        self.bundle, self.options = bundle, options
        # Checked and compiled here first, so a bad model is one line before any cluster work.
        classifying, detecting = options.precisions(bundle)
        model = load_model(bundle, device="cpu", isolate=True, runtime=options.runtime, precision=classifying)
        self.sha256 = file_sha256(bundle.model_path)
        if bundle.model_sha256 and self.sha256 != bundle.model_sha256:  # changed since load_model read it
            raise BundleError(f"{bundle.model_path}: changed while it was being loaded; run again.")
        detector = None
        if options.detect:
            from classifier.models.detect import detector_for

            detector = detector_for(bundle, options.runtime, detecting)
        from classifier.intake.decoding import decode_size_for

        self.decode_size = decode_size_for(bundle.image_size, detector.input_size if detector else None)
        self.squish = detector is None
        del model, detector
        self.started = False
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(
                        address=address,
                        logging_level=logging.WARNING,
                        log_to_driver=False,
                        runtime_env={"py_modules": [str(Path(__file__).resolve().parents[1])]},
                    )
                else:
                    start_local_ray()
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"the Ray cluster at {address}" if address else "a local Ray"
                raise EngineError(
                    f"could not start or join {where}: {one_line(str(exc) or type(exc).__name__)}"
                ) from None
            self.started = True
        resources = ray.cluster_resources()
        self.cpus, self.gpus = float(resources.get("CPU", 1.0)), int(resources.get("GPU", 0))
        self.actors = workers or (self.gpus or max(1, int(self.cpus)))
        from classifier.models.predict import CPU_BATCH_SIZE, GPU_BATCH_SIZE

        self.batch_size = options.batch_size or (GPU_BATCH_SIZE if self.gpus else CPU_BATCH_SIZE)
        self.files = ray.put(_BundleFiles(bundle, self.sha256, bundle.model_path.read_bytes()))
        self.lost = 0  # photos that never came back (error rows)

    def predict_many(self, items: Iterable[InputItem]) -> Iterator[Row]:
        """One row per item, in input order, streamed as the cluster finishes batches."""
        import ray.data

        from classifier.models.predict import _row

        items = list(items)
        if not items:
            return
        batches = [
            {"start": start, "items": pickle.dumps(items[start : start + self.batch_size])}
            for start in range(0, len(items), self.batch_size)
        ]
        waiting: dict[int, list[Row]] = {}
        done = 0  # rows written: every batch before `done` is out
        before = set(threading.enumerate())
        # iter(): `iter_batches` gives an iterable, without `close`; its generator has one.
        iterator = iter(
            self._dataset(batches).iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1)
        )
        try:
            for block in iterator:
                for start, blob in zip(block["start"].tolist(), block["rows"], strict=True):
                    if start >= done and start not in waiting:  # else a retried batch, back twice
                        waiting[start] = pickle.loads(blob)
                while done in waiting:
                    rows = waiting.pop(done)
                    done += len(rows)
                    yield from rows
        except ray.exceptions.RayError as exc:
            raise EngineError(f"the Ray run failed: {one_line(str(exc) or type(exc).__name__)}") from None
        finally:
            iterator.close()
            _join_run_threads(before)
        for index in range(done, len(items)):  # never expected: Ray Data retries failed batches
            self.lost += 1
            yield _row(items[index], _decoded_error(LOST))

    def _dataset(self, batches: list[dict[str, Any]]) -> Any:
        """The pipeline of the module docstring over `batches`, one dataset row each."""
        import ray.data

        per_block = max(1, min(MAX_BATCHES_PER_BLOCK, len(batches) // (self.actors * BLOCKS_PER_ACTOR)))
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the CLI draws its own bar, over rows
        context.execution_options.preserve_order = False  # rows are put back in order below
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        if self.gpus and self.actors <= self.gpus:
            actor_resources: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1}
            decode_resources: dict[str, Any] = {"num_cpus": 1}
        else:  # a pool that fits in 3/4 of the CPUs, whatever --workers asked for
            share = min(ACTOR_CPUS, ACTOR_CPUS * self.cpus / self.actors)
            actor_resources, decode_resources = {"num_cpus": share}, {"num_cpus": DECODE_CPUS}
        return (
            ray.data.from_items(batches, override_num_blocks=-(-len(batches) // per_block))
            .map_batches(
                _decode_batches,
                batch_size=None,
                fn_kwargs={"size": self.decode_size, "squish": self.squish},
                **decode_resources,
            )
            .map_batches(
                _ClassifyBatches,
                batch_size=None,
                compute=ray.data.ActorPoolStrategy(size=self.actors),
                fn_constructor_kwargs={
                    "files": [self.files],
                    "options": self.options,
                    "device": "cuda" if "num_gpus" in actor_resources else "cpu",
                    "batch_size": self.batch_size,
                },
                **actor_resources,
            )
        )

    def close(self) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False


def _decoded_error(reason: str) -> Any:
    from classifier.intake.decoding import Decoded

    return Decoded(error=reason)


def _decode_batches(block: dict[str, Any], size: int, squish: bool) -> dict[str, Any]:
    """Ray task: read and decode every photo of each batch (errors become the rows' reasons). Imports no
    torch (classifier.intake.decoding), so a fresh worker starts in a fraction of a second."""
    from classifier.intake.decoding import decode_item
    from classifier.intake.inputs import close_archives

    decoded = []
    try:
        for blob in block["items"]:
            items = pickle.loads(blob)
            pairs = [(item, decode_item(item, size, squish=squish)) for item in items]
            decoded.append(pickle.dumps(pairs, protocol=pickle.HIGHEST_PROTOCOL))
    finally:
        close_archives()  # a Ray worker lives on after the task: no zip stays open in it
    return {"start": block["start"], "decoded": decoded}


class _ClassifyBatches:
    """Ray actor: the model, loaded once; decoded batches in, rows out."""

    def __init__(
        self,
        files: list[Any],
        options: PredictorOptions,
        device: str,
        batch_size: int,
    ) -> None:
        import ray
        import torch

        shipped: _BundleFiles = ray.get(files[0])
        if device == "cpu":
            torch.set_num_threads(1)  # one actor per core: see Predictor.predict_many
        bundle = _bundle_on_this_node(shipped)
        options = dataclasses.replace(options, batch_size=batch_size)
        self.predictor = options.build(bundle, device=device, workers=0)

    def __call__(self, block: dict[str, Any]) -> dict[str, Any]:
        out = []
        for blob in block["decoded"]:
            rows = self.predictor.predict_decoded(pickle.loads(blob))
            for row in rows:
                row.probabilities = ()  # never written (the CLI drops them too); keeps blocks small
            out.append(pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL))
        return {"start": block["start"], "rows": out}


def _bundle_on_this_node(files: _BundleFiles) -> Bundle:
    """The bundle's folder when this node sees it with the same model file (a local Ray, a shared file
    system); else a copy of the shipped files in this node's temporary folder, written once per node."""
    bundle = files.bundle
    try:
        if file_sha256(bundle.directory / MODEL_FILE) == files.sha256:
            return bundle
    except OSError:
        pass
    folder = Path(tempfile.gettempdir()) / "wildlife-ray-bundles" / files.sha256
    target = folder / MODEL_FILE
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as handle:
            handle.write(files.model)
        os.replace(handle.name, target)  # whole, even when two actors of the node write at once
    return dataclasses.replace(bundle, directory=folder)
