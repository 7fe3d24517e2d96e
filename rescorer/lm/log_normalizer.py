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
* otherwise (no compiler, another CPU): vocabulary chunks of ``chunk``
  columns, a numpy product into a reused buffer, ``exp`` in place and a
  float64 row sum per chunk.

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

from rescorer.lm import native_kernel

SAFE_LOG_SUM = (-40.0, 60.0)  # log sum exp(logit - shift) in this range: no overflow, no lost terms


def _f32(a) -> np.ndarray:
    """A C-contiguous float32 numpy array of ``a`` (a numpy array or a CPU tensor; no copy when it is one)."""
    a = a.detach().cpu().numpy() if hasattr(a, "detach") else a
    return np.ascontiguousarray(a, dtype=np.float32)


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


class LogNormalizer:
    """``log Z`` of ``logits = h W^T + b`` for W (V, K) float32, b (V,) (numpy arrays or CPU tensors).

    ``chunk``: vocabulary columns per product without the kernel; ``native``: False never uses the
    kernel, None uses it where it loads; ``shift``: the common shift (default ``logsumexp(b)``).
    Works on numpy arrays: (n, K) in, (n,) float64 out.
    """

    def __init__(self, weight, bias, chunk: int = 2048, native: Optional[bool] = None,
                 shift: Optional[float] = None):
        self.weight = _f32(weight)
        self.bias = _f32(bias)
        V, K = self.weight.shape
        assert self.bias.shape == (V,), (self.bias.shape, V)
        self.V, self.K = V, K
        b = self.bias.astype(np.float64)
        self.shift = float(b.max() + np.log(np.exp(b - b.max()).sum())) if shift is None else float(shift)
        lib = native_kernel.load() if native is not False else None
        self.lib = lib
        if lib is not None:
            P = -(-V // 16)
            self.panels = np.empty(P * K * 16, dtype=np.float32)
            lib.lse_pack(_ptr(self.weight), V, K, _ptr(self.panels))
            self.padded_bias = np.full(P * 16, -np.inf, dtype=np.float32)
            self.padded_bias[:V] = self.bias
            self.P = P
        else:
            self.chunks: List[Tuple[np.ndarray, np.ndarray, np.ndarray]] = [
                (np.ascontiguousarray(self.weight[a: a + chunk].T), self.bias[a: a + chunk],
                 (self.bias[a: a + chunk] - np.float32(self.shift))) for a in range(0, V, chunk)]
            self.buffer = np.empty(0, dtype=np.float32)
        self.retried = 0  # rows recomputed with their own maximum as the shift

    def describe(self) -> str:
        if self.lib is not None:
            return "fused log-normaliser (compiled AVX2 kernel)"
        return f"chunked log-normaliser (no compiled kernel: {native_kernel.unavailable_reason() or 'not asked'})"

    # ----------------------------------------------------------------- public
    def __call__(self, h) -> np.ndarray:
        """(n, K) -> (n,) float64 ``log Z``."""
        h = _f32(h)
        n = h.shape[0]
        if n == 0:
            return np.zeros(0)
        out = self._lse(h, None)
        rel = out - self.shift
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(rel) & (rel >= SAFE_LOG_SUM[0]) & (rel <= SAFE_LOG_SUM[1]))
        if bad.any():
            idx = np.flatnonzero(bad)
            hb = np.ascontiguousarray(h[idx])
            out[idx] = self._lse(hb, self._row_max(hb))
            self.retried += int(idx.size)
        return out

    def target_logits(self, h, targets: np.ndarray) -> np.ndarray:
        """Logits of chosen words: (k, K) rows and (k,) word ids -> (k,) float64."""
        h = _f32(h).astype(np.float64)
        return np.einsum("ij,ij->i", h, self.weight[targets].astype(np.float64)) + self.bias[targets]

    # -------------------------------------------------------------- internals
    def _lse(self, h: np.ndarray, shifts: Optional[np.ndarray]) -> np.ndarray:
        """``log sum exp(logits)`` per row with shift ``self.shift`` (``shifts`` None) or per-row ``shifts``."""
        n = h.shape[0]
        if self.lib is not None:
            s = np.full(n, self.shift, dtype=np.float32) if shifts is None else _f32(shifts)
            out = np.empty(n, dtype=np.float64)
            self._call(h, s, 0, out)
            return out
        total = np.zeros(n, dtype=np.float64)
        with np.errstate(over="ignore", under="ignore"):
            for wt, b, b_shifted in self.chunks:
                buf = self._buffer(n, wt.shape[1])
                np.matmul(h, wt, out=buf)
                buf += b_shifted if shifts is None else b
                if shifts is not None:
                    buf -= shifts[:, None].astype(np.float32)
                total += np.exp(buf, out=buf).sum(axis=1, dtype=np.float64)
            with np.errstate(divide="ignore"):
                return np.log(total) + (self.shift if shifts is None else shifts.astype(np.float64))

    def _row_max(self, h: np.ndarray) -> np.ndarray:
        n = h.shape[0]
        if self.lib is not None:
            out = np.empty(n, dtype=np.float64)
            self._call(h, np.zeros(n, dtype=np.float32), 1, out)
            return out.astype(np.float32)
        best = np.full(n, -np.inf, dtype=np.float32)
        for wt, b, _ in self.chunks:
            buf = self._buffer(n, wt.shape[1])
            np.matmul(h, wt, out=buf)
            buf += b
            best = np.maximum(best, buf.max(axis=1))
        return best

    def _call(self, h: np.ndarray, shifts: np.ndarray, mode: int, out: np.ndarray) -> None:
        rc = self.lib.lse_rows(_ptr(h), h.shape[0], self.K, _ptr(self.panels), self.P, _ptr(self.padded_bias),
                               _ptr(shifts), mode, _ptr(out))
        if rc != 0:
            raise MemoryError("out of memory in the log-normaliser kernel")

    def _buffer(self, n: int, cols: int) -> np.ndarray:
        """A contiguous (n, cols) float32 scratch matrix (one allocation, reused)."""
        if self.buffer.size < n * cols:
            self.buffer = np.empty(n * cols, dtype=np.float32)
        return self.buffer[: n * cols].reshape(n, cols)


def reference_log_z(weight, bias, h) -> np.ndarray:
    """The textbook ``logsumexp(h W^T + b)`` in float64 (for tests and checks): (n,)."""
    logits = _f32(h).astype(np.float64) @ _f32(weight).astype(np.float64).T + _f32(bias).astype(np.float64)
    m = logits.max(axis=1)
    return m + np.log(np.exp(logits - m[:, None]).sum(axis=1))
