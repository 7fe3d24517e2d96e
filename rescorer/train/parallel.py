"""``admmq train --nj N``: data-parallel training in N local processes.

Spawns the ranks with :func:`rescorer.train.distributed.spawn`; each rank
joins the process group (:func:`~rescorer.train.distributed.init_from_env`)
and runs :func:`rescorer.train.loop.train` with its :class:`Dist`; rank 0
alone writes TensorBoard events.  The launcher sits above both the training
loop and the process-group plumbing, which therefore do not import each other.
"""

from __future__ import annotations

import os
from typing import Optional

from rescorer.train.distributed import init_from_env, spawn
from rescorer.train.loop import TrainResult, train
from rescorer.train.tensorboard_sink import tensorboard_sink


def _train_rank(kwargs: dict, tensorboard_dir: Optional[str]):
    """One process of a run: joins the process group when there is one (torchrun, ``--nj``), else
    runs alone; rank 0 alone writes TensorBoard events."""
    dist = init_from_env(kwargs.get("device") or (kwargs["cfg"].device if kwargs.get("cfg") else "auto"))
    sinks = [s for s in (tensorboard_sink(tensorboard_dir),) if s is not None] if dist.is_main else []
    return train(**kwargs, sinks=sinks, dist=dist)


def launch(nproc: int = 1, tensorboard_dir: Optional[str] = None, **kwargs) -> Optional[TrainResult]:
    """Run :func:`rescorer.train.loop.train` (same keyword arguments) in this process, as one rank under
    torchrun, or in ``nproc`` local processes; returns the result on rank 0, None on the other ranks."""
    if nproc > 1:
        return train_parallel(nproc, tensorboard_dir, **kwargs)
    result = _train_rank(kwargs, tensorboard_dir)
    return result if os.environ.get("RANK", "0") == "0" else None


def train_parallel(nproc: int, tensorboard_dir: Optional[str] = None, **kwargs):
    """:func:`rescorer.train.loop.train` (same keyword arguments) data-parallel in ``nproc`` local processes.

    Returns rank 0's :class:`rescorer.train.loop.TrainResult`.
    """
    return spawn(nproc, _train_rank, (kwargs, tensorboard_dir))
