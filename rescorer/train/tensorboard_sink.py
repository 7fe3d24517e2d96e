"""``admmq train --tensorboard DIR``: each epoch's log row as TensorBoard scalars.

Needs the ``tensorboard`` package (``pip install 'admmq[tensorboard]'``);
without it :func:`tensorboard_sink` raises a one-line :class:`AdmmqError`.
The writer is ``torch.utils.tensorboard.SummaryWriter``; the step of every
scalar is the epoch number.  Tags (:func:`scalar_tag`)::

    train/lr  train/loss  train/ppl  valid/ppl  valid/ppl_quantized
    time/train_seconds  time/eval_seconds  time/tokens_per_s
    method/<name>   every other numeric figure of the row (ADMM: method/admm_primal, ...)

The writer opens at the first epoch it receives with ``purge_step`` = that
epoch, so events a killed run wrote for epochs it later redoes after
``--resume`` are hidden, and each epoch appears once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from rescorer.errors import AdmmqError, PathLike

EXTRA = "pip install 'admmq[tensorboard]'"
TAGS = {
    "lr": "train/lr",
    "train_loss": "train/loss",
    "train_ppl": "train/ppl",
    "valid_ppl": "valid/ppl",
    "valid_ppl_q": "valid/ppl_quantized",
    "seconds": "time/train_seconds",
    "eval_seconds": "time/eval_seconds",
    "tokens_per_s": "time/tokens_per_s",
}
SKIP = ("epoch", "best")


def scalar_tag(column: str) -> str:
    """The TensorBoard tag of a log column."""
    return TAGS.get(column, f"method/{column}")


def _summary_writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise AdmmqError(f"--tensorboard needs the tensorboard package: {EXTRA}") from None
    return SummaryWriter


class TensorBoardSink:
    """An :class:`~rescorer.train.runlogs.EpochSink` writing TensorBoard event files into ``log_dir``."""

    def __init__(self, log_dir: PathLike):
        self.log_dir = Path(log_dir)
        self._writer_class = _summary_writer_class()
        if self.log_dir.exists() and not self.log_dir.is_dir():
            raise AdmmqError("exists and is not a directory (--tensorboard wants a directory)", self.log_dir)
        self._writer: Optional[Any] = None

    def write(self, row: Dict[str, Any]) -> None:
        step = int(row["epoch"])
        if self._writer is None:
            self._writer = self._writer_class(log_dir=str(self.log_dir), purge_step=step)
        for column, value in row.items():
            if column in SKIP or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            self._writer.add_scalar(scalar_tag(column), float(value), step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def tensorboard_sink(log_dir: Optional[PathLike]) -> Optional[TensorBoardSink]:
    """A sink for ``--tensorboard DIR`` (None when no directory is given)."""
    return TensorBoardSink(log_dir) if log_dir else None
