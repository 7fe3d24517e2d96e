"""Alternating multi-bit quantization (Xu et al., ICLR 2018), row-wise, with straight-through training.

Each row w (C,) of a weight matrix is approximated by ``Σ_{i<k} α_i b_i``
with b_i ∈ {−1, +1}^C (greedy start, then alternating codes and least-squares
α: the quantizer itself is :mod:`rescorer.lm.alternating_quant`).

As a :class:`~rescorer.lm.quantized.QuantizedMatrix`: codes (R, C) uint8 =
pattern index, basis = the (2^k, k) sign table, alpha (R, k).

``multibit`` trains latent weights with the quantized weights in the forward
pass and straight-through (identity) gradients.  ``act_bits`` > 0 also
quantizes the LSTM's matrix inputs — x_t and h_{t−1} — online with the same
quantizer (2 alternating cycles, identity straight-through gradient); the
model then runs its native LSTM cell (``ModelConfig.act_bits``), in training
and in every later use of the checkpoint.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from rescorer.lm.alternating_quant import dequantize_rows, multibit_quantize, sign_table
from rescorer.lm.model import ModelConfig
from rescorer.quant.method import MethodConfig
from rescorer.lm.quantized import QuantizedMatrix
from rescorer.quant.straight_through import StraightThroughMethod


class MultibitMethod(StraightThroughMethod):
    name = "multibit"
    default_epochs = 20

    def __init__(self, cfg: MethodConfig):
        super().__init__(cfg)
        self.table = sign_table(cfg.bits)

    def adapt_model_config(self, cfg: ModelConfig) -> ModelConfig:
        return replace(cfg, act_bits=self.cfg.act_bits)

    def quantize(self, name: str, weight: torch.Tensor) -> QuantizedMatrix:
        codes, alpha = multibit_quantize(weight.float(), self.cfg.bits, self.cfg.cycles)
        return QuantizedMatrix(codes.to(torch.uint8), self.table.to(weight.device), alpha.float())

    def forward_weight(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        codes, alpha = multibit_quantize(weight, self.cfg.bits, self.cfg.cycles)
        return dequantize_rows(codes, alpha, sign_table(self.cfg.bits, weight.device, weight.dtype))
