"""Data-parallel training over several processes (``torchrun`` or ``admmq train --nj N``).

Every process (rank) holds the whole model.  Each global mini-batch — the
same ``batch_size`` sentences a single process would take, in the same
order — is sharded by sentence: rank ``r`` of ``W`` takes sentences
``r, r+W, r+2W, ...`` of it.  The loss stays the *global* batch's summed
log-likelihood divided by the *global* norm (sentences or tokens of the
whole batch), so after the backward pass the ranks' gradients are summed
(one flat all-reduce, :meth:`Dist.sum_gradients`) and every rank holds the
gradient the single process would have computed — before clipping, before
ADMM's penalty term γ(Θ − Q + λ) (added once, on every rank, to the same
summed gradient) and before the optimizer step.  So all ranks take the same
step and hold the same Θ; at the end of each epoch Θ is broadcast from
rank 0 anyway (floating-point insurance) before the ADMM projection and the
multiplier update, which therefore compute the same Q and λ on every rank.

Validation is sharded the same way and its (nll, tokens) summed.  Only
rank 0 writes logs and checkpoints (atomically); each rank's random-number
state is gathered into the checkpoint so a distributed run resumes exactly.

Backends: ``gloo`` on CPU, ``nccl`` on CUDA (device ``cuda:LOCAL_RANK``).
The only difference from single-process training is the order of
floating-point sums (per-rank partial sums, then the all-reduce), see the
test for the tolerance this implies.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Sequence

import numpy as np
import torch

from rescorer.lm.batching import Batch, make_batch
from rescorer.lm.corpus import EncodedCorpus
from rescorer.errors import AdmmqError


@dataclass(frozen=True)
class Dist:
    """This process's place in a data-parallel run; ``world == 1`` is a plain single-process run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------ collectives
    def sum_gradients(self, model: torch.nn.Module) -> None:
        """Sum every parameter's ``.grad`` over the ranks (one flat all-reduce; missing grads count as 0)."""
        if not self.active:
            return
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        torch.distributed.all_reduce(flat)
        i = 0
        for p in params:
            n = p.grad.numel()
            p.grad.copy_(flat[i: i + n].view_as(p.grad))
            i += n

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` summed over the ranks (a new tensor; the input is unchanged)."""
        if not self.active:
            return value
        out = value.detach().clone()
        torch.distributed.all_reduce(out)
        return out

    def broadcast_parameters(self, model: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank."""
        if not self.active:
            return
        with torch.no_grad():
            for t in list(model.parameters()) + list(model.buffers()):
                torch.distributed.broadcast(t.data, src=0)

    def gather_objects(self, obj: Any) -> List[Any]:
        """Every rank's ``obj`` (a list, by rank) on every rank."""
        if not self.active:
            return [obj]
        out: List[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    # ---------------------------------------------------------------- shards
    def shard(self, n: int) -> np.ndarray:
        """Which of ``n`` items (sentences of a batch or of a corpus) this rank takes: ``rank::world``."""
        return np.arange(self.rank, n, self.world)


SINGLE = Dist()


def sharded_sentence_batches(corpus: EncodedCorpus, batch_size: int, order: np.ndarray, bos: int, eos: int,
                             start: int, loss_norm: str, dist: Dist) -> Iterator[Batch]:
    """This rank's part of each global batch of :func:`rescorer.lm.batching.sentence_batches`.

    ``norm`` is the global batch's (its sentences, or its predicted tokens) and
    ``ntokens`` the global count too, so the summed gradients and the summed
    losses equal the single-process ones.  A rank may get no sentence (a last
    batch smaller than the world): its batch has zero rows and contributes 0.
    """
    lens = corpus.lengths()
    for b0 in range(start * batch_size, len(order), batch_size):
        index = order[b0: b0 + batch_size]
        ntokens = int(lens[index].sum()) + len(index)
        norm = float(len(index)) if loss_norm == "sentence" else float(ntokens)
        mine = make_batch(corpus, index[dist.shard(len(index))], bos, eos)
        mine.ntokens, mine.norm = ntokens, norm
        yield mine


# ------------------------------------------------------------------ start-up
def backend_for(device: str) -> str:
    return "nccl" if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()) else "gloo"


def init_from_env(device: str = "auto") -> Dist:
    """The :class:`Dist` of this process: from ``torchrun``'s environment (``WORLD_SIZE`` > 1), else single.

    Initialises the default process group (gloo on CPU, nccl on CUDA) when needed.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if not torch.distributed.is_initialized():
        backend = backend_for(device)
        if backend == "nccl":
            torch.cuda.set_device(local)
        torch.distributed.init_process_group(backend=backend)
        if backend == "gloo" and "OMP_NUM_THREADS" not in os.environ:  # share the cores, don't oversubscribe
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    return Dist(rank, world, local)


def device_for(dist: Dist, device: str) -> str:
    """The device name of this rank: ``cuda:LOCAL_RANK`` for CUDA runs, else ``device``."""
    if dist.active and backend_for(device) == "nccl":
        return f"cuda:{dist.local_rank}"
    return device


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(local_rank: int, nproc: int, port: int, fn: Callable, args: Sequence[Any], queue) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(nproc),
                       "RANK": str(local_rank), "LOCAL_RANK": str(local_rank)})
    try:
        result = fn(*args)
        error = None
    except AdmmqError as exc:
        result, error = None, str(exc)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if local_rank == 0 or error is not None:
        queue.put((local_rank, result, error))


def spawn(nproc: int, fn: Callable, args: Sequence[Any] = ()) -> Any:
    """Run ``fn(*args)`` in ``nproc`` fresh processes on this machine; return rank 0's result.

    Each process sees torchrun's environment variables (``init_from_env`` picks
    them up).  An :class:`AdmmqError` in any rank is raised here as one line.
    """
    if nproc < 1:
        raise AdmmqError(f"--nj must be at least 1, got {nproc}")
    ctx = torch.multiprocessing.get_context("spawn")
    queue = ctx.SimpleQueue()
    try:
        torch.multiprocessing.start_processes(_worker, args=(nproc, free_port(), fn, tuple(args), queue),
                                              nprocs=nproc, join=True, start_method="spawn")
    except torch.multiprocessing.ProcessRaisedException as exc:
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise AdmmqError(f"a training process failed: {last}") from None
    except torch.multiprocessing.ProcessExitedException as exc:
        raise AdmmqError(f"a training process exited with status {exc.exit_code}") from None
    results = {}
    while not queue.empty():
        rank, result, error = queue.get()
        if error is not None:
            raise AdmmqError(f"rank {rank}: {error}")
        results[rank] = result
    if 0 not in results:
        raise AdmmqError("the training processes ended without a result")
    return results[0]
