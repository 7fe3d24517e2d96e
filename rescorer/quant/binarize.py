"""Binarized LSTM LM baselines (Liu, Cao, Yu, NAACL 2018), as the ADMM paper describes them.

``bin``: every weight matrix (embedding, LSTM, output layer) is replaced by
sign(W) ∈ {−1, +1} in the forward pass; the straight-through gradient reaches
the full-precision latent weights W, zeroed where |W| > 1, and W is clipped to
[−1, 1] after every update (BinaryConnect-style).  Deployed: the ±1 matrices.

``bin-lin``: the same, with the "partially quantized linear layers" added
after the embedding and before the output layer (the model's
``input_linear`` / ``output_linear``: ``y = scale ⊙ (W_b x) + b`` with a
binary W_b and full-precision per-output ``scale`` and bias ``b``).  The
scales start at 1/√fan_in so that ±1 inputs times ±1 weights keep unit
variance; they, the biases and the LSTM biases are trained in full precision.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from ..model import LSTMLM, ModelConfig
from .qmatrix import QuantizedMatrix
from .straight_through import StraightThroughMethod

SIGN_BASIS = torch.tensor([[-1.0], [1.0]])  # code 0 -> -1, code 1 -> +1


def binarize(weight: torch.Tensor) -> QuantizedMatrix:
    """sign(W) with sign(0) = +1, as a QuantizedMatrix (codes (R, C) uint8, α = 1)."""
    codes = (weight >= 0).to(torch.uint8)
    return QuantizedMatrix(codes, SIGN_BASIS.to(weight.device), torch.ones(1, 1, device=weight.device))


class BinMethod(StraightThroughMethod):
    name = "bin"

    def quantize(self, name: str, weight: torch.Tensor) -> QuantizedMatrix:
        return binarize(weight)

    def forward_weight(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        return torch.where(weight >= 0, 1.0, -1.0).to(weight.dtype)

    def adjust_gradient(self, name: str, weight: torch.Tensor, grad: torch.Tensor) -> None:
        grad.mul_(weight.abs() <= 1)  # straight-through estimator of sign: zero outside [-1, 1]

    def after_step(self, model: LSTMLM) -> None:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n in self.quantized_names(model):
                params[n].clamp_(-1.0, 1.0)


class BinLinMethod(BinMethod):
    name = "bin-lin"

    def adapt_model_config(self, cfg: ModelConfig) -> ModelConfig:
        return replace(cfg, input_linear=True, output_linear=True)

    def setup(self, model: LSTMLM) -> None:
        with torch.no_grad():
            for layer in (model.input_linear, model.output_linear):
                layer.scale.fill_(1.0 / math.sqrt(layer.weight.shape[1]))
