"""Opt-in int8 output layer for CPU scoring (``--int8``): exact low-bit weights, 8-bit activations.

The output layer (V x H, 10k x 200 for PTB) is ~85 % of the arithmetic of
scoring a node.  A quantized model's matrix is ``W[r, c] = sum_k alpha[g(r), k]
* basis[codes[r, c], k]`` (:class:`~rescorer.lm.quantized.QuantizedMatrix`):

* scaled sets (K = 1) whose levels are integer multiples of a step ``s``
  (``{±1}``, ``{0, ±1}``, ``{±1, ±2, ±4}``, ...): ``W = (alpha * s) * q`` with
  integer ``q`` in [-127, 127] — exactly an int8 matrix with one scale per row;
* multi-bit ±1 patterns (K = k): ``W = sum_k alpha[:, k] * b_k``, k int8
  matrices of ±1 with row scales, stacked (k x the int8 work);
* anything else (an fp32 model, levels that are not integer multiples):
  the weights are rounded to int8 per row (max |w| / 127) — then the weights
  are approximate too, and :attr:`Int8Output.exact_weights` says so.

The product runs in PyTorch's quantized CPU kernels (fbgemm / oneDNN,
``torch.ops.quantized.linear_dynamic``), which quantize the activations to
8 bits: that is the approximation, with one scale per batch from the batch's
range.  The LSTM output ``h = σ(o) tanh(c)`` lies in (-1, 1); a row holding
-1 and +1 is appended to every batch, so the activation scale is always
2/255 and a sentence's scores do not depend on its batch (not so with an
``output_linear`` layer, whose outputs are unbounded).  The effect on scores
and WER is measured in ``bench/rescore_speed.py`` and the README.

Weights with |q| <= 64 run without fbgemm's ``reduce_range`` (AVX2's 16-bit
pair sums cannot saturate: 2 * 255 * 64 < 2^15); larger ones with it (7-bit
activations).
"""

from __future__ import annotations

import warnings
from typing import Optional, Tuple

import torch

from rescorer.errors import AdmmqError
from rescorer.lm.model import LSTMLM
from rescorer.lm.quantized import QuantizedMatrix


def quantized_kernels_available() -> bool:
    return bool(torch.backends.quantized.supported_engines) and hasattr(torch.ops.quantized, "linear_dynamic")


def integer_levels(levels: torch.Tensor, max_int: int = 127, tol: float = 1e-6) -> Optional[Tuple[torch.Tensor, float]]:
    """``(q, s)`` with ``levels == s * q`` for integers ``q`` (|q| <= max_int), or None."""
    lv = levels.double()
    nz = lv[lv != 0].abs()
    if nz.numel() == 0:
        return torch.zeros_like(lv, dtype=torch.int64), 1.0
    base = float(nz.min())
    for m in range(1, 17):  # step = smallest |level| / m covers e.g. {1, 1.5} (m = 2)
        s = base / m
        q = torch.round(lv / s)
        if float(q.abs().max()) <= max_int and float((q * s - lv).abs().max()) <= tol * float(nz.max()):
            return q.long(), s
    return None


def int8_rows(q: QuantizedMatrix) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """Exact int8 form of ``q``: (K*R, C) int8 matrix and (K*R,) float64 row scales, stacked by k; or None."""
    R, C = q.shape
    K = q.basis.shape[1]
    codes = q.codes.long()
    mats, scales = [], []
    for k in range(K):
        found = integer_levels(q.basis[:, k])
        if found is None:
            return None
        ints, step = found
        mats.append(ints[codes].to(torch.int8))
        alpha = q.alpha[:, k].double().expand(R) if q.alpha.shape[0] == 1 else q.alpha[:, k].double()
        scales.append(alpha * step)
    return torch.cat(mats), torch.cat(scales)


def rounded_int8_rows(w: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-row symmetric rounding of a float matrix: (R, C) int8 and (R,) float64 scales."""
    scale = (w.abs().amax(dim=1).double() / 127.0).clamp_min(1e-12)
    return torch.round(w.double() / scale[:, None]).clamp(-127, 127).to(torch.int8), scale


def output_quantized_matrix(model: LSTMLM, quantized: dict) -> Optional[QuantizedMatrix]:
    """The output layer's quantized matrix (rows of the embedding when tied), if it is quantized."""
    if model.decoder.weight is not None:
        return quantized.get("decoder.weight")
    emb = quantized.get("embedding.weight")
    if emb is None:
        return None
    V = model.cfg.output_size
    alpha = emb.alpha if emb.alpha.shape[0] == 1 else emb.alpha[:V]
    return QuantizedMatrix(emb.codes[:V], emb.basis, alpha)


class Int8Output:
    """``logits = h W^T + b`` through the int8 kernels (see the module docstring)."""

    exact = False
    name = "int8"

    def __init__(self, model: LSTMLM, quantized: Optional[dict] = None):
        if not quantized_kernels_available():
            raise AdmmqError("--int8 needs PyTorch's quantized CPU kernels (fbgemm/onednn); this build has none")
        if next(model.parameters()).device.type != "cpu":
            raise AdmmqError("--int8 is a CPU path; use --device cpu (or --precision bf16 on a GPU)")
        q = output_quantized_matrix(model, quantized or {})
        exact = int8_rows(q) if q is not None else None
        self.exact_weights = exact is not None
        ints, scales = exact if exact is not None else rounded_int8_rows(model.output_weight.detach().float())
        self.k = ints.shape[0] // model.cfg.output_size
        self.rows = model.cfg.output_size
        reduce_range = int(ints.abs().max()) > 64 if ints.numel() else False
        self.reduce_range = reduce_range
        self.bias = model.decoder.bias.detach().float()
        self.bounded = model.output_linear is None  # LSTM outputs lie in (-1, 1)
        with warnings.catch_warnings():  # PyTorch marks quantized tensor creation deprecated (2.13)
            warnings.simplefilter("ignore")
            qw = torch._make_per_channel_quantized_tensor(ints, scales, torch.zeros(ints.shape[0], dtype=torch.int64), 0)
            # one block (K = 1): the kernel adds the bias while it writes the fp32 output (one pass fewer)
            self.packed = torch.ops.quantized.linear_prepack(qw, self.bias if self.k == 1 else None)
        self.engine = torch.backends.quantized.engine
        self.levels = sorted(set(ints.unique().tolist())) if ints.numel() else []

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        """(n, H) float -> (n, V) float32 logits."""
        x = h.float()
        if self.bounded:
            pad = torch.zeros(1, x.shape[1], dtype=x.dtype)
            pad[0, 0], pad[0, -1] = -1.0, 1.0
            x = torch.cat([x, pad])
        y = torch.ops.quantized.linear_dynamic(x, self.packed, self.reduce_range)
        if self.bounded:
            y = y[:-1]
        if self.k > 1:
            return y.reshape(y.shape[0], self.k, self.rows).sum(dim=1) + self.bias
        return y

    def describe(self) -> str:
        how = "exact int8 weights" if self.exact_weights else "weights rounded to int8 per row"
        return (f"int8 output layer ({how}, {self.k} matrix{'es' if self.k > 1 else ''}, engine {self.engine}, "
                f"8-bit activations{' with reduce_range' if self.reduce_range else ''})")
