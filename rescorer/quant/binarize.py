"""Binarized LSTM LM baselines (Liu, Cao, Yu, NAACL 2018), as the ADMM paper describes them.

``bin``: every weight matrix (embedding, LSTM, output layer) is replaced by
its binary version ``W_b = h·sign(W)`` in the forward pass; the
straight-through gradient ∂L/∂W_b reaches the full-precision latent weights
W, zeroed where |W| > 1, and W is clipped to [−1, 1] after every update.

``h`` is a fixed constant per matrix, 1/√C for an (R, C) matrix (C = the
fan-in of a linear layer, the vector size of an embedding), as BinaryConnect
binarizes to ±H with a fixed Glorot-style H.  It is not trained, and one
float per matrix is all it costs (the deployed matrix is the α·{±1} table of
layer tying with α = h).  With h = 1, an LSTM LM without normalisation
saturates: ±1 embeddings times ±1 input weights give gate pre-activations of
standard deviation ≈ √E, and the ±1 output layer logits of ≈ √H; our 1×200
bin-lin run with h = 1 reached a training perplexity of 1e15 in its first
epoch.

``bin-lin``: the same, with the "partially quantized linear layers" added
after the embedding and before the output layer (the model's
``input_linear`` / ``output_linear``: ``y = scale ⊙ (W_b x) + b`` with a
binary W_b and full-precision per-output ``scale`` and bias ``b``, trained
like the LSTM biases).

Starting ``bin-lin`` from a trained full-precision LM (``--init-from``): the linear layers start
orthogonal, so the started model computes the fp model's function (:mod:`rescorer.quant.linear_layers`).
"""

from __future__ import annotations

import math

import torch

from rescorer.lm.model import LSTMLM
from rescorer.lm.quantized import QuantizedMatrix
from rescorer.quant.straight_through import StraightThroughMethod

SIGN_BASIS = torch.tensor([[-1.0], [1.0]])  # code 0 -> -1, code 1 -> +1


def binary_magnitude(weight: torch.Tensor) -> float:
    """The fixed magnitude h = 1/√C of an (R, C) matrix's binary weights."""
    return 1.0 / math.sqrt(weight.shape[1])


def binarize(weight: torch.Tensor) -> QuantizedMatrix:
    """h·sign(W) with sign(0) = +1, as a QuantizedMatrix (codes (R, C) uint8, basis ±1, α = h)."""
    codes = (weight >= 0).to(torch.uint8)
    alpha = torch.full((1, 1), binary_magnitude(weight), device=weight.device)
    return QuantizedMatrix(codes, SIGN_BASIS.to(weight.device), alpha)


class BinMethod(StraightThroughMethod):
    name = "bin"

    def quantize(self, name: str, weight: torch.Tensor) -> QuantizedMatrix:
        return binarize(weight)

    def forward_weight(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        h = binary_magnitude(weight)
        return torch.where(weight >= 0, h, -h).to(weight.dtype)

    def adjust_gradient(self, name: str, weight: torch.Tensor, grad: torch.Tensor) -> None:
        grad.mul_(weight.abs() <= 1)  # straight-through estimator of sign: zero outside [-1, 1]

    def after_step(self, model: LSTMLM) -> None:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n in self.quantized_names(model):
                params[n].clamp_(-1.0, 1.0)


class BinLinMethod(BinMethod):
    name = "bin-lin"

    #: the model always has the two linear layers (:meth:`TrainingMethod.adapt_model_config`)
    always_linear_layers = True
