"""The "partially quantized linear layers" of Bin+Lin (Liu, Cao, Yu, NAACL 2018), for any method.

The model's ``input_linear`` (after the embedding) and ``output_linear`` (before the output layer):
``y = scale ⊙ (W x) + b`` with W (n, n) quantized like every weight matrix and a full-precision
per-output ``scale`` and bias ``b`` (n,), trained like the LSTM biases.  ``bin-lin`` always has them;
ADMM gets them with ``MethodConfig.linear_layers`` (``admmq train --linear-layers``; on by default for
layer-tied {±1} and {0,±1} from a trained model: recipes/ptb/RESULTS_admm.md §16–17).  Two (n, n) binary
matrices and 4·n floats more (their scales and biases): for layer {±1} 1×200 on PTB the fp32 STD is 31.3×
the size of the binary matrices plus those 800 floats, against 32.1× without the layers.

Starting from a trained full-precision LM (``--init-from``): a binary matrix cannot be the identity, but
it can be orthogonal.  Each added layer starts at W = H/√n for a Hadamard matrix H (n × n, entries ±1,
H·Hᵀ = n·I), which a {±1} table with one scale holds exactly (α = 1/√n); the matrix after it absorbs the
inverse (LSTM input weights W_ih·Wᵀ, output layer D·Wᵀ), so the started model computes exactly the fp
model's function.  Hadamard matrices come from Sylvester's doubling and Paley's first construction
(n − 1 a prime ≡ 3 mod 4, e.g. n = 200 from 199), combined by Kronecker products; other sizes are a
one-line error.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Dict

import torch

from rescorer.errors import AdmmqError
from rescorer.lm.model_config import ModelConfig


def with_linear_layers(cfg: ModelConfig) -> ModelConfig:
    """``cfg`` with both linear layers."""
    return replace(cfg, input_linear=True, output_linear=True)


def insert_linear_layers(weights: Dict[str, torch.Tensor], cfg: ModelConfig,
                         source: str) -> Dict[str, torch.Tensor]:
    """A model's weights with the two linear layers inserted as orthogonal binary matrices (module
    docstring): the function the model computes is unchanged.  Weights that have them already are returned
    as they are."""
    if "input_linear.weight" in weights:
        return weights
    if cfg.tie_embeddings:
        raise AdmmqError(f"{source}: the linear layers cannot be added to a model with tied embeddings (the "
                         f"output linear layer would change the embedding)")
    out = dict(weights)
    for layer, dim, after in (("input_linear", cfg.embed_dim, "lstm.weight_ih_l0"),
                              ("output_linear", cfg.hidden_dim, "decoder.weight")):
        w = hadamard(dim, source) / math.sqrt(dim)  # (n, n) orthogonal, in a {±1} table: α = 1/√n
        out[f"{layer}.weight"] = w
        out[f"{layer}.scale"] = torch.ones(dim)
        out[f"{layer}.bias"] = torch.zeros(dim)
        out[after] = weights[after] @ w.T  # (·, n): absorbs the inverse Wᵀ
    return out


def can_insert(cfg: ModelConfig) -> bool:
    """Whether :func:`insert_linear_layers` can start these layers in ``cfg`` (untied, Hadamard sizes)."""
    if cfg.tie_embeddings:
        return False
    try:
        hadamard(cfg.embed_dim)
        hadamard(cfg.hidden_dim)
    except AdmmqError:
        return False
    return True


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
    raise AdmmqError(f"{source}: the linear layers (bin-lin, admm --linear-layers) need a Hadamard matrix of "
                     f"order {n} (the embedding or hidden size) to start from a trained model, which this "
                     f"build cannot construct (it knows 2^k·(p+1), p prime ≡ 3 mod 4)")
