"""Exact low-bit output layer for CPU scoring: the integer codes as fp16 weights (fbgemm).

A quantized model's output matrix is ``W = diag(scale) @ Q`` with small integer
``Q`` (:func:`rescorer.lm.int8_output.int8_rows`: one scale per row, K stacked
matrices for multi-bit ±1 patterns).  Integers up to 2048 are exact in fp16, so
fbgemm's fp16-weight GEMM (``torch.ops.quantized.linear_dynamic_fp16``: fp16
weights widened to fp32 in its packed kernel, fp32 activations and fp32
accumulation) computes ``h @ Q^T`` with no approximation — the weights take
half the memory of fp32 and come pre-packed: the product alone ran 70-72
GFLOP/s against MKL's 53-56 for 256-512 rows x 200 x 10k on the 2-core AVX2
machine (whole rescoring: 1.04-1.23x, see the README).  Then ``logits = (h @ Q^T) * scale + b`` in one pass.

The scores equal the fp32 path up to float rounding (summation order), so
:class:`CodesOutput` is the default output layer for a quantized model on the
CPU (``admmq rescore`` without ``--int8``); :func:`codes_output` returns None
where it does not apply (float output matrix, no fbgemm, not on the CPU).
"""

from __future__ import annotations

from typing import Optional

import torch

from rescorer.lm.int8_output import int8_rows, output_quantized_matrix
from rescorer.lm.model import LSTMLM

FP16_EXACT_INT = 2048  # every integer of magnitude <= 2^11 is an fp16 number


def fp16_kernels_available() -> bool:
    return "fbgemm" in torch.backends.quantized.supported_engines and \
        hasattr(torch.ops.quantized, "linear_prepack_fp16")


class CodesOutput:
    """``logits = (h @ Q^T) * scale + b`` with Q the integer codes in fbgemm's packed fp16 form."""

    exact = True
    name = "fp16-codes"

    def __init__(self, model: LSTMLM, ints: torch.Tensor, scales: torch.Tensor):
        assert int(ints.abs().max()) <= FP16_EXACT_INT, int(ints.abs().max())
        self.rows = model.cfg.output_size
        self.k = ints.shape[0] // self.rows
        assert self.k * self.rows == ints.shape[0], (ints.shape, self.rows)
        self.packed = torch.ops.quantized.linear_prepack_fp16(ints.float(), None)
        self.scales = scales.float()
        self.bias = model.decoder.bias.detach().float()

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        """(n, H) float -> (n, V) float32 logits."""
        y = torch.ops.quantized.linear_dynamic_fp16(h.float().contiguous(), self.packed)
        if self.k == 1:
            return torch.addcmul(self.bias, y, self.scales)
        y = (y * self.scales).reshape(y.shape[0], self.k, self.rows).sum(dim=1)
        return y.add_(self.bias)

    def describe(self) -> str:
        return (f"exact low-bit output layer: integer codes as fp16 weights (fbgemm), "
                f"{self.k} matrix{'es' if self.k > 1 else ''}, fp32 activations")


def codes_output(model: LSTMLM, quantized: Optional[dict]) -> Optional[CodesOutput]:
    """A :class:`CodesOutput` for the model's quantized output matrix, or None where it does not apply."""
    if not quantized or not fp16_kernels_available() or next(model.parameters()).device.type != "cpu":
        return None
    q = output_quantized_matrix(model, quantized)
    exact = int8_rows(q) if q is not None else None
    if exact is None:
        return None
    ints, scales = exact
    return CodesOutput(model, ints, scales)
