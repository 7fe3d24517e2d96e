"""Batch budgets for LM scoring: counts of the work done, out-of-memory recovery, precision.

:class:`BatchControl` holds the number of rows (sentences of a padded batch,
or tree nodes of a frontier slice) a scoring batch may have.  When a batch
fails with an out-of-memory error (CUDA's, or any ``RuntimeError`` saying
"out of memory"), the caller halves the batch and retries, and the budget
stays halved for the rest of the run: a 1000-best list of long hypotheses
degrades to smaller batches instead of failing.  A single row that does not
fit is an :class:`~rescorer.errors.AdmmqError` naming the bound to lower.

``before_batch`` is called with the rows of every batch before it runs; tests
set it to a function raising :class:`torch.cuda.OutOfMemoryError` to exercise
the recovery without a GPU.

:class:`ScoringStats` counts LSTM steps (padded positions of the plain path,
tree nodes of the prefix-shared one) and softmax rows, so both paths can be
compared on the same sentences.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Optional

from rescorer.errors import AdmmqError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "tf32", "bf16")


def device_name(name: Optional[str]) -> str:
    """The device ``name`` (None: auto) resolves to, as text; ``cpu``, and ``auto`` on a machine with no GPU
    driver loaded (CUDA cannot be available there), are settled without importing PyTorch."""
    if name == "cpu" or (name in (None, "auto") and not any(os.path.exists(p) for p in _GPU_DRIVERS)):
        return "cpu"
    return str(pick_device(name))


#: present when an NVIDIA (or ROCm) driver is loaded
_GPU_DRIVERS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd")


def pick_device(name: Optional[str]) -> "torch.device":
    """``auto`` (or None) is CUDA when available, else the CPU."""
    import torch

    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise AdmmqError(f"device {name!r} requested but CUDA is not available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise AdmmqError(f"unknown device {name!r} (use auto, cpu or cuda[:N])") from None


@dataclass
class ScoringStats:
    """What scoring did, summed over calls.

    ``tokens``: units + ``</s>`` of the distinct sentences (the softmax rows of
    unshared scoring); ``lstm_steps``: LSTM positions computed (padding
    included; ``history_steps`` of them read carry-over histories);
    ``softmax_rows``: output distributions computed; ``oom_splits``: batches
    halved after running out of memory; ``max_rows``: the largest batch;
    ``seconds``: wall time in ``score``, of which ``lstm_seconds`` stepping the
    LSTM and ``output_seconds`` in the output layer (prefix-shared path).
    """

    sentences: int = 0
    tokens: int = 0
    lstm_steps: int = 0
    softmax_rows: int = 0
    batches: int = 0
    oom_splits: int = 0
    max_rows: int = 0
    history_steps: int = 0  # of lstm_steps: reading carry-over histories (rescorer.lm.carry_over)
    seconds: float = 0.0
    lstm_seconds: float = 0.0
    output_seconds: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("seconds", "lstm_seconds", "output_seconds"):
            d[k] = round(d[k], 4)
        d["step_reduction"] = round(self.tokens / self.lstm_steps, 3) if self.lstm_steps else None
        return d


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or a RuntimeError that says it ran out of memory."""
    torch = sys.modules.get("torch")  # (no PyTorch loaded: no CUDA error either)
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class BatchControl:
    """A shrinking row budget, the fault hook and the counts (see the module docstring)."""

    def __init__(self, max_rows: int, before_batch: Optional[Callable[[int], None]] = None,
                 stats: Optional[ScoringStats] = None):
        if max_rows < 1:
            raise AdmmqError(f"batch budget must be >= 1 row, got {max_rows}")
        self.max_rows = int(max_rows)
        self.before_batch = before_batch
        self.stats = stats if stats is not None else ScoringStats()

    def start(self, rows: int) -> None:
        """Called before a batch of ``rows`` runs."""
        self.stats.batches += 1
        self.stats.max_rows = max(self.stats.max_rows, rows)
        if self.before_batch is not None:
            self.before_batch(rows)

    def halve(self, rows: int, exc: BaseException, what: str) -> int:
        """After ``exc`` (out of memory) on ``rows`` rows of ``what``: half of them, counted, or an error.

        Anything but an out-of-memory error is raised again; the budget is not changed.
        """
        if not is_out_of_memory(exc):
            raise exc
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
        if rows <= 1:
            raise AdmmqError(f"out of memory scoring a single {what}; lower --batch-tokens or use --device cpu "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        self.stats.oom_splits += 1
        return max(1, rows // 2)

    def shrink(self, rows: int, exc: BaseException, what: str) -> int:
        """After ``exc`` (out of memory) on a batch of ``rows``: the new budget (half), or an error."""
        self.max_rows = self.halve(rows, exc, what)
        return self.max_rows


@contextlib.contextmanager
def precision_context(precision: str, device: "torch.device") -> Iterator[None]:
    """Arithmetic for scoring: ``fp32`` (exact reference), ``tf32`` (CUDA TF32 matmuls) or ``bf16`` (autocast)."""
    if precision not in PRECISIONS:
        raise AdmmqError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        yield
        return
    import torch

    if precision == "tf32":
        if device.type != "cuda":
            raise AdmmqError(f"--precision tf32 applies to CUDA matmuls; on {device.type} use fp32 or bf16")
        old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
        return
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        yield


def lm_work(lm) -> list:
    """Each neural component's counts and settings (``lm`` a scorer or a mixture of them): a list of dicts."""
    out = []
    for c in getattr(lm, "components", [lm]):
        stats = getattr(c, "stats", None)
        if isinstance(stats, ScoringStats):
            d = stats.to_dict()
            describe = getattr(c, "describe", None)
            if describe is not None:
                d["how"] = describe()
            out.append(d)
    return out
