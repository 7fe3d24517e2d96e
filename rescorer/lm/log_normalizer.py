"""The softmax normaliser ``log Z(h) = log sum_v exp(h . w_v + b_v)`` of an output layer, without the logits.

Scoring needs, at every prefix-tree node, the log-probability of one or a few
words: ``logit(word) - log Z(h)``.  The logit of a word is one dot product
(:meth:`LogNormalizer.target_logits`, in float64); ``log Z`` needs the whole
output layer, an (n, V) product that is ~85 % of the arithmetic of scoring.
Computing it in full and then a log-softmax writes and re-reads n x V floats
several times; here the logits never leave the cache:

* with the compiled kernel (:mod:`rescorer.lm.native_kernel`, AVX2/FMA, one
  thread): each 6 x 16 block of logits is accumulated in registers,
  exponentiated there and summed per row in float64;
* otherwise (no compiler, another CPU, or more than one PyTorch thread):
  vocabulary chunks of ``chunk`` columns, ``addmm`` into a reused buffer,
  ``exp`` in place and a float64 row sum per chunk.

Both use one fixed shift ``c`` (the normaliser at ``h = 0``, ``logsumexp(b)``)
instead of each row's maximum: ``log Z = c + log sum exp(logit - c)``, one
pass fewer.  A row whose ``log sum exp(logit - c)`` falls outside [-40, 60]
could have overflowed or lost precision; it is recomputed with its own maximum
as the shift.  So the result is the exact normaliser to float rounding
(relative ~1e-7 per term, float64 sums) for any weights.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import torch

from rescorer.lm import native_kernel

SAFE_LOG_SUM = (-40.0, 60.0)  # log sum exp(logit - shift) in this range: no overflow, no lost terms


class LogNormalizer:
    """``log Z`` of ``logits = h W^T + b`` for W (V, K) float32, b (V,).

    ``chunk``: vocabulary columns per product without the kernel; ``native``: False never uses the
    kernel, None uses it where it loads (one PyTorch thread); ``shift``: the common shift (default
    ``logsumexp(b)``).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, chunk: int = 2048, native: Optional[bool] = None,
                 shift: Optional[float] = None):
        self.weight = weight.detach().float().contiguous()
        self.bias = bias.detach().float().contiguous()
        V, K = self.weight.shape
        assert self.bias.shape == (V,), (tuple(self.bias.shape), V)
        self.V, self.K = V, K
        self.shift = float(torch.logsumexp(self.bias.double(), 0)) if shift is None else float(shift)
        lib = native_kernel.load() if native is not False and torch.get_num_threads() == 1 else None
        self.lib = lib
        if lib is not None:
            P = -(-V // 16)
            self.panels = torch.empty(P * K * 16, dtype=torch.float32)
            lib.lse_pack(self.weight.data_ptr(), V, K, self.panels.data_ptr())
            self.padded_bias = torch.full((P * 16,), float("-inf"), dtype=torch.float32)
            self.padded_bias[:V] = self.bias
            self.P = P
        else:
            self.chunks: List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = [
                (self.weight[a: a + chunk].t().contiguous(), self.bias[a: a + chunk].contiguous(),
                 (self.bias[a: a + chunk] - self.shift).contiguous()) for a in range(0, V, chunk)]
            self.buffer = torch.empty(0)
        self.retried = 0  # rows recomputed with their own maximum as the shift

    def describe(self) -> str:
        if self.lib is not None:
            return "fused log-normaliser (compiled AVX2 kernel)"
        why = native_kernel.unavailable_reason() or "more than one thread"
        return f"chunked log-normaliser (PyTorch; no compiled kernel: {why})"

    # ----------------------------------------------------------------- public
    @torch.no_grad()
    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        """(n, K) -> (n,) float64 ``log Z``."""
        h = h.detach().float().contiguous()
        n = h.shape[0]
        if n == 0:
            return torch.zeros(0, dtype=torch.float64)
        out = self._lse(h, None)
        rel = out - self.shift
        bad = ~(torch.isfinite(rel) & (rel >= SAFE_LOG_SUM[0]) & (rel <= SAFE_LOG_SUM[1]))
        if bool(bad.any()):
            idx = torch.nonzero(bad).flatten()
            hb = h.index_select(0, idx).contiguous()
            out[idx] = self._lse(hb, self._row_max(hb))
            self.retried += int(idx.numel())
        return out

    @torch.no_grad()
    def target_logits(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Logits of chosen words: (k, K) rows and (k,) word ids -> (k,) float64."""
        w = self.weight.index_select(0, targets).double()
        return (h.double() * w).sum(1) + self.bias.double().index_select(0, targets)

    # -------------------------------------------------------------- internals
    def _lse(self, h: torch.Tensor, shifts: Optional[torch.Tensor]) -> torch.Tensor:
        """``log sum exp(logits)`` per row with shift ``self.shift`` (``shifts`` None) or per-row ``shifts``."""
        n = h.shape[0]
        if self.lib is not None:
            s = torch.full((n,), self.shift, dtype=torch.float32) if shifts is None else shifts.float().contiguous()
            out = torch.empty(n, dtype=torch.float64)
            self._call(h, s, 0, out)
            return out
        total = torch.zeros(n, dtype=torch.float64)
        for wt, b, b_shifted in self.chunks:
            buf = self._buffer(n, wt.shape[1])
            if shifts is None:
                torch.addmm(b_shifted, h, wt, out=buf)
            else:
                torch.addmm(b, h, wt, out=buf)
                buf -= shifts[:, None].float()
            total += buf.exp_().sum(1, dtype=torch.float64)
        return total.log_() + (self.shift if shifts is None else shifts.double())

    def _row_max(self, h: torch.Tensor) -> torch.Tensor:
        n = h.shape[0]
        if self.lib is not None:
            out = torch.empty(n, dtype=torch.float64)
            self._call(h, torch.zeros(n, dtype=torch.float32), 1, out)
            return out.float()
        best = torch.full((n,), float("-inf"))
        for wt, b, _ in self.chunks:
            buf = self._buffer(n, wt.shape[1])
            torch.addmm(b, h, wt, out=buf)
            best = torch.maximum(best, buf.amax(1))
        return best

    def _call(self, h: torch.Tensor, shifts: torch.Tensor, mode: int, out: torch.Tensor) -> None:
        rc = self.lib.lse_rows(h.data_ptr(), h.shape[0], self.K, self.panels.data_ptr(), self.P,
                               self.padded_bias.data_ptr(), shifts.data_ptr(), mode, out.data_ptr())
        if rc != 0:
            raise MemoryError("out of memory in the log-normaliser kernel")

    def _buffer(self, n: int, cols: int) -> torch.Tensor:
        """A contiguous (n, cols) float32 scratch matrix (one allocation, reused)."""
        if self.buffer.numel() < n * cols:
            self.buffer = torch.empty(n * cols)
        return self.buffer[: n * cols].view(n, cols)


def reference_log_z(weight: torch.Tensor, bias: torch.Tensor, h: torch.Tensor) -> np.ndarray:
    """The textbook ``logsumexp(h W^T + b)`` in float64 (for tests and checks): (n,)."""
    return torch.logsumexp(h.double() @ weight.double().t() + bias.double(), dim=1).numpy()
