"""Data-parallel training across processes on one machine: `python -m train --processes N`.

The path fastai documents (`Learner.distrib_ctx`, on Hugging Face Accelerate): N processes each run the
whole recipe on the same seed, so they build the same data split and the same starting network; inside
each fit, Accelerate wraps the network in torch's DistributedDataParallel (gradients averaged across
the processes after every batch) and fastai's `DistributedDL` gives each process its share of every
epoch's batches (so a step sees N x --batch-size photos). Validation metrics are gathered from all the
processes. The first process alone writes checkpoints, the bundle and the report.

Processes talk through torch.distributed: gloo on CPUs (each process on its share of the cores), nccl
with one GPU each where there are at least N.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

if TYPE_CHECKING:
    from fastai.learner import Learner

    from train.recipe import TrainConfig


Result = TypeVar("Result")


def train_across(
    train: Callable[[TrainConfig, bool], Result], config: TrainConfig, quiet: bool = False
) -> Result:
    """Run `train` (`train.pipeline.train`, passed in) in `config.processes` processes here; the first
    one's result, or the first exception a process raised (a bad dataset's one-line error stays one line)."""
    results = mp.get_context("spawn").SimpleQueue()
    port = _free_port()
    try:
        mp.spawn(_process, args=(train, config, quiet, port, results), nprocs=config.processes, join=True)
    except (mp.ProcessRaisedException, mp.ProcessExitedException):
        if results.empty():
            raise
        raise results.get() from None
    return results.get()


def _process(
    rank: int,
    train: Callable[[TrainConfig, bool], Result],
    config: TrainConfig,
    quiet: bool,
    port: int,
    results: Any,
) -> None:
    world = config.processes
    cores = len(os.sched_getaffinity(0))
    threads = str(max(1, cores // world))  # N processes on one thread each beat N fighting over all
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        OMP_NUM_THREADS=threads,
    )
    torch.set_num_threads(int(threads))
    gpus = torch.cuda.is_available() and torch.cuda.device_count() >= world
    if gpus:
        torch.cuda.set_device(rank)
    dist.init_process_group("nccl" if gpus else "gloo", rank=rank, world_size=world)
    try:
        result = train(config, quiet)
        if rank == 0:
            results.put(result)
    except Exception as exc:
        results.put(exc)
        raise
    finally:
        dist.destroy_process_group()


def is_main() -> bool:
    """Whether this process writes the run's files: the only one, or the first of a group."""
    return not dist.is_initialized() or dist.get_rank() == 0


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """This process by itself: fastai gathers every prediction from all the processes while WORLD_SIZE
    names several, and after the fit the first process evaluates and exports alone."""
    world = os.environ.pop("WORLD_SIZE", None)
    try:
        yield
    finally:
        if world is not None:
            os.environ["WORLD_SIZE"] = world


def same_everywhere(value: Any) -> Any:
    """The first process's `value` in every process (one learning rate for all, whatever each found)."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def data_parallel(learn: Learner) -> Iterator[None]:
    """A fit inside runs data-parallel across the group's processes (nothing changes without one)."""
    if not dist.is_initialized():
        yield
        return
    from fastai.distributed import DistributedDL  # adds Learner.distrib_ctx

    cpu = dist.get_backend() == "gloo"
    broadcast = DistributedDL._broadcast
    if cpu:  # fastai's moves the batch order to a CUDA tensor, which only nccl needs
        DistributedDL._broadcast = _broadcast_on_cpu
    try:
        # sync_bn off: torch's SyncBatchNorm runs on GPUs only, and the recipe keeps the backbone's
        # batch-norm statistics anyway (--freeze-bn, the default).
        with learn.distrib_ctx(sync_bn=False, cpu=cpu):
            yield
    finally:
        DistributedDL._broadcast = broadcast


def _broadcast_on_cpu(self: Any, t: list[int], rank: int) -> list[int]:
    tensor = torch.tensor(t, dtype=torch.long)
    dist.broadcast(tensor, rank)
    return tensor.tolist()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
