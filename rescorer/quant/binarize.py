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

Starting ``bin-lin`` from a trained full-precision LM (``--init-from``): a
binary matrix cannot be the identity, but it can be orthogonal.  Each added
layer starts at W = H/√n for a Hadamard matrix H (n × n, entries ±1,
H·Hᵀ = n·I), whose binary version h·sign(W) is H/√n itself; the matrix
after it absorbs the inverse (LSTM input weights W_ih·Wᵀ, output layer
D·Wᵀ), so the started model computes exactly the fp model's function.
Hadamard matrices come from Sylvester's doubling and Paley's first
construction (n − 1 a prime ≡ 3 mod 4, e.g. n = 200 from 199), combined by
Kronecker products; other sizes are a one-line error.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Dict

import torch

from rescorer.errors import AdmmqError
from rescorer.lm.model import LSTMLM, ModelConfig
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

    def adapt_model_config(self, cfg: ModelConfig) -> ModelConfig:
        return replace(cfg, input_linear=True, output_linear=True)

    def adapt_init_weights(self, weights: Dict[str, torch.Tensor], cfg: ModelConfig,
                           source: str) -> Dict[str, torch.Tensor]:
        """An fp model's weights with the two linear layers inserted as orthogonal binary matrices
        (see the module docstring); the function the model computes is unchanged."""
        if "input_linear.weight" in weights:  # already a bin-lin model
            return weights
        if cfg.tie_embeddings:
            raise AdmmqError(f"{source}: bin-lin cannot start from a model with tied embeddings (the output "
                             f"linear layer would change the embedding)")
        out = dict(weights)
        for layer, dim, after in (("input_linear", cfg.embed_dim, "lstm.weight_ih_l0"),
                                  ("output_linear", cfg.hidden_dim, "decoder.weight")):
            w = hadamard(dim, source) / math.sqrt(dim)  # (n, n) orthogonal, binary: h·sign(w) = w
            out[f"{layer}.weight"] = w
            out[f"{layer}.scale"] = torch.ones(dim)
            out[f"{layer}.bias"] = torch.zeros(dim)
            out[after] = weights[after] @ w.T  # (·, n): absorbs the inverse Wᵀ
        return out


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(math.isqrt(n)) + 1))


def _paley(n: int) -> torch.Tensor:
    """Paley's construction I: Hadamard matrix of order n = q + 1, q prime, q ≡ 3 (mod 4)."""
    q = n - 1
    squares = {(x * x) % q for x in range(1, q)}
    chi = torch.tensor([0.0] + [1.0 if x in squares else -1.0 for x in range(1, q)])
    idx = torch.arange(q)
    jac = chi[(idx.unsqueeze(0) - idx.unsqueeze(1)) % q]  # Jacobsthal matrix Q[i, j] = χ(j − i), skew
    s = torch.zeros(n, n)
    s[0, 1:] = 1.0
    s[1:, 0] = -1.0
    s[1:, 1:] = jac
    return s + torch.eye(n)


def hadamard(n: int, source: str = "model") -> torch.Tensor:
    """An (n, n) matrix of ±1 with H·Hᵀ = n·I (Sylvester, Paley I and their Kronecker products)."""
    if n == 1:
        return torch.ones(1, 1)
    if n % 4 == 0 and _is_prime(n - 1) and (n - 1) % 4 == 3:
        return _paley(n)
    if n % 2 == 0:
        try:
            half = hadamard(n // 2, source)
        except AdmmqError:
            half = None
        if half is not None:
            return torch.kron(torch.tensor([[1.0, 1.0], [1.0, -1.0]]), half)
    raise AdmmqError(f"{source}: bin-lin --init-from needs a Hadamard matrix of order {n} (the embedding or "
                     f"hidden size), which this build cannot construct (it knows 2^k·(p+1), p prime ≡ 3 mod 4)")
