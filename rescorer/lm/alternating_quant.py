"""Alternating multi-bit quantization (Xu et al., ICLR 2018) of the rows of a matrix.

Each row w (C,) is approximated by ``Σ_{i<k} α_i b_i`` with b_i ∈ {−1, +1}^C:
one of the 2^k sign patterns per entry, i.e. one of the 2^k values ``t_j·α``
of the row, where ``t_j`` (k,) is row j of the sign table (bit i of j set →
+1, else −1).

* greedy start: r = w; for i = 1..k: α_i = mean|r|, b_i = sign(r), r −= α_i b_i;
* then ``cycles`` alternations of
  - codes: the 2^k values of each row sorted, every entry to the nearest one
    (``searchsorted`` on the midpoints: the binary search tree of the paper);
  - α: least squares for the fixed codes, the k×k normal equations
    ``(Σ_j n_j t_j t_jᵀ) α = Σ_j s_j t_j`` (n_j entries and s_j their sum with code j);
    a row keeps its previous α when the new one does not lower its error.

The training method :mod:`rescorer.quant.multibit` quantizes weight matrices
with it; a model with ``ModelConfig.act_bits`` > 0 quantizes the LSTM's matrix
inputs x_t and h_{t−1} online with :func:`quantize_activations` in every use,
so the LM itself (scoring, loading) needs it too.
"""

from __future__ import annotations

from typing import Tuple

import torch

ACT_CYCLES = 2  # alternating cycles for activations (online)


def sign_table(k: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(2^k, k): entry [j, i] = +1 if bit i of j is set, else −1."""
    j = torch.arange(2 ** k, device=device).unsqueeze(1)
    bits = (j >> torch.arange(k, device=device)) & 1
    return (bits * 2 - 1).to(dtype)


def greedy(w: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Greedy k-bit start for (R, C) rows: (codes (R, C) int64, alpha (R, k))."""
    r = w.clone()
    codes = torch.zeros(w.shape, dtype=torch.int64, device=w.device)
    alphas = []
    for i in range(k):
        a = r.abs().mean(1, keepdim=True)
        pos = r >= 0
        b = torch.where(pos, 1.0, -1.0).to(w.dtype)
        r -= a * b
        codes |= pos.long() << i
        alphas.append(a)
    return codes, torch.cat(alphas, 1)


def nearest_codes(w: torch.Tensor, alpha: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Code of the nearest of each row's 2^k values: (R, C) int64."""
    values = alpha @ table.t()  # (R, 2^k)
    sorted_vals, perm = torch.sort(values, dim=1)
    mids = ((sorted_vals[:, 1:] + sorted_vals[:, :-1]) / 2).contiguous()
    pos = torch.searchsorted(mids, w.contiguous())
    return torch.gather(perm, 1, pos)


def dequantize_rows(codes: torch.Tensor, alpha: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    return torch.gather(alpha @ table.t(), 1, codes)


def fit_alpha(w: torch.Tensor, codes: torch.Tensor, alpha: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Least-squares α (R, k) for fixed codes; rows where it does not lower the error keep ``alpha``."""
    R, L = w.shape[0], table.shape[0]
    counts = torch.zeros(R, L, dtype=w.dtype, device=w.device).scatter_add_(1, codes, torch.ones_like(w))
    sums = torch.zeros(R, L, dtype=w.dtype, device=w.device).scatter_add_(1, codes, w)
    outer = table.unsqueeze(2) * table.unsqueeze(1)  # (L, k, k)
    m = torch.einsum("rl,lij->rij", counts, outer)
    v = sums @ table  # (R, k)
    ridge = 1e-6 * w.shape[1] * torch.eye(table.shape[1], dtype=w.dtype, device=w.device)
    new = torch.linalg.solve(m + ridge, v.unsqueeze(2)).squeeze(2)
    err_old = ((w - dequantize_rows(codes, alpha, table)) ** 2).sum(1)
    err_new = ((w - dequantize_rows(codes, new, table)) ** 2).sum(1)
    return torch.where((err_new <= err_old).unsqueeze(1), new, alpha)


def multibit_quantize(w: torch.Tensor, k: int, cycles: int = 2) -> Tuple[torch.Tensor, torch.Tensor]:
    """k-bit alternating quantization of the rows of ``w`` (R, C): (codes (R, C) int64, alpha (R, k))."""
    w = w.detach()
    table = sign_table(k, w.device, w.dtype)
    codes, alpha = greedy(w, k)
    for _ in range(cycles):
        codes = nearest_codes(w, alpha, table)
        alpha = fit_alpha(w, codes, alpha, table)
    return codes, alpha


def quantize_activations(x: torch.Tensor, k: int, cycles: int = ACT_CYCLES) -> torch.Tensor:
    """Online k-bit quantization of each vector x[..., :] with an identity straight-through gradient."""
    flat = x.detach().reshape(-1, x.shape[-1])
    codes, alpha = multibit_quantize(flat, k, cycles)
    xq = dequantize_rows(codes, alpha, sign_table(k, x.device, x.dtype)).reshape(x.shape)
    return x + (xq - x).detach()
