"""Scaled quantization tables α·{q} and the projection onto them (paper eqs. 9-12, 18-20).

A quantization set is a short ascending list of level multipliers ``q``
(``pm1`` {±1}, ``0pm1`` {0,±1}, ``pm12`` {±1,±2}, ``pm124`` {±1,±2,±4},
``pow2:n`` {0,±1,…,±2^n}, ``int:b`` the uniform b-bit grid {0,±1,…,±(2^(b-1)−1)});
a weight matrix is quantized to ``α_g·q`` with one
full-precision scale ``α_g`` per tying group (``layer``: one per matrix,
``node``: one per output row, i.e. per row of the stored (R, C) matrix).

The projection (eq. 18) minimises ``‖X − α V‖²`` over the codes ``V`` and
``α`` by alternating

* eq. 19: ``V = argmin_q |X − α q|`` — the nearest level, found by
  ``bucketize`` on the midpoints between levels;
* eq. 20: ``α = X·V / V·V`` per group — least squares for fixed codes;

until no code changes.  Each half-step minimises the objective over one
block, so the objective never increases.  Alternation alone stalls in local
optima: from α = 1 or α = mean|X| on uniform or Gaussian weights it settles
on {±1,±2,±4} codes that never use ±4, with up to 4× the optimal error.
``start="exact"`` (the default) therefore begins the alternation at the
global minimiser of the objective over α, found by sweeping the breakpoints
of the piecewise-quadratic ``min_V ‖X − αV‖²`` (:func:`optimal_alpha`); the
alternation then confirms the fixed point.  ``start="given"`` runs the plain
alternation from the α it is given (the paper: α initialised to 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import torch

from rescorer.errors import AdmmqError

NAMED_SETS = {
    "pm1": (-1.0, 1.0),
    "0pm1": (-1.0, 0.0, 1.0),
    "pm12": (-2.0, -1.0, 1.0, 2.0),
    "pm124": (-4.0, -2.0, -1.0, 1.0, 2.0, 4.0),
}
TYINGS = ("layer", "node", "none")
MAX_POW2 = 6  # pow2:6 has 15 levels
INT_BITS = range(2, 9)  # int:b, b = 2..8: 2^b - 1 uniform levels
EXACT_MAX_MAGNITUDES = 16  # beyond this, start="exact" begins at max|x| / top level (see project)
LARGE_SET_ALTERNATIONS = 10


@dataclass(frozen=True)
class QuantSet:
    """Level multipliers ``levels`` (ascending, symmetric about 0) of a named quantization set."""

    name: str
    levels: Tuple[float, ...]

    def tensor(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """(L,) levels."""
        return torch.tensor(self.levels, dtype=dtype, device=device)

    def basis(self) -> torch.Tensor:
        """(L, 1) float32: the code book of a :class:`~rescorer.lm.quantized.QuantizedMatrix`."""
        return self.tensor().unsqueeze(1)

    @property
    def magnitudes(self) -> Tuple[float, ...]:
        """Distinct |q| in ascending order (0 first when the set holds 0)."""
        return tuple(sorted({abs(q) for q in self.levels}))

    @property
    def bits(self) -> float:
        return math.log2(len(self.levels))


def parse_qset(spec: str) -> QuantSet:
    """``pm1``, ``0pm1``, ``pm12``, ``pm124``, ``pow2:n`` (levels {0, ±1, ±2, …, ±2^n}) or ``int:b``
    (the symmetric uniform grid {0, ±1, …, ±(2^(b-1) − 1)}, 2^b − 1 levels, 2 <= b <= 8)."""
    if spec in NAMED_SETS:
        return QuantSet(spec, NAMED_SETS[spec])
    if spec.startswith("int:") and spec[4:].isdigit() and int(spec[4:]) in INT_BITS:
        top = 2 ** (int(spec[4:]) - 1) - 1
        return QuantSet(spec, tuple(float(v) for v in range(-top, top + 1)))
    if spec.startswith("pow2:"):
        try:
            n = int(spec[5:])
        except ValueError:
            n = -1
        if 0 <= n <= MAX_POW2:
            pos = [float(2 ** i) for i in range(n + 1)]
            return QuantSet(spec, tuple([-p for p in reversed(pos)] + [0.0] + pos))
    raise AdmmqError(f"unknown quantization set {spec!r}; use one of {sorted(NAMED_SETS)} or pow2:n "
                     f"with 0 <= n <= {MAX_POW2}, or int:b with 2 <= b <= 8")


# ----------------------------------------------------------------- helpers
def grouped(x: torch.Tensor, tying: str) -> torch.Tensor:
    """(R, C) matrix as (G, n) tying groups: one row (layer) or the matrix rows (node)."""
    if tying == "layer":
        return x.reshape(1, -1)
    if tying == "node":
        return x.reshape(x.shape[0], -1)
    raise ValueError(f"tying must be 'layer' or 'node' for a projection, got {tying!r}")


def nearest_codes(xg: torch.Tensor, alpha: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Eq. 19: index of the nearest level of ``alpha_g * levels`` for each entry.

    xg: (G, n) float; alpha: (G,) float > 0; levels: (L,) ascending.  Returns (G, n) int64.
    """
    mids = (levels[1:] + levels[:-1]) / 2
    return torch.bucketize(xg / alpha.unsqueeze(1), mids.to(xg.dtype))


def fit_alpha(xg: torch.Tensor, codes: torch.Tensor, levels: torch.Tensor):
    """Eq. 20: least-squares scale per group for fixed codes, ``α_g = Σ x q / Σ q²``.

    Returns ((G,) alpha, (G,) bool: whether the group has a non-zero code; α is 0 where not).
    """
    q = levels.to(xg.dtype)[codes]
    den = (q * q).sum(1)
    ok = den > 0
    alpha = torch.where(ok, (xg * q).sum(1) / den.clamp_min(1e-30), torch.zeros_like(den))
    return alpha, ok


def objective(xg: torch.Tensor, codes: torch.Tensor, alpha: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Eq. 18 per group: ‖x_g − α_g q(codes)‖², (G,) float64."""
    q = levels.double()[codes]
    return ((xg.double() - alpha.double().unsqueeze(1) * q) ** 2).sum(1)


def optimal_alpha(xg: torch.Tensor, qset: QuantSet) -> torch.Tensor:
    """Global minimiser over α > 0 of ``min_V ‖x_g − α V‖²`` per group: (G,) float64.

    For α > 0 an entry of magnitude a takes the magnitude level m_j with
    ``a/α`` between the midpoints around m_j; as α grows it crosses to the
    next lower level at α = a / t_j (t_j the midpoints).  Between consecutive
    crossings the codes are fixed, so the objective is the quadratic
    ``Σx² − 2α S1 + α² S2`` (S1 = Σ a·m, S2 = Σ m²), minimised at S1/S2
    clamped to the interval.  Sorting all crossings and accumulating the
    changes of S1, S2 evaluates every interval: O(n·K log(n·K)).
    """
    a = xg.detach().abs().double()
    G, n = a.shape
    mags = torch.tensor(qset.magnitudes, dtype=torch.float64, device=a.device)
    top = mags[-1]
    if len(mags) == 1:
        return a.sum(1) / (n * top)
    t = (mags[1:] + mags[:-1]) / 2  # (K-1,)
    beta = (a.unsqueeze(2) / t).reshape(G, -1)  # crossing points (G, n(K-1))
    d1 = (a.unsqueeze(2) * (mags[:-1] - mags[1:])).reshape(G, -1)
    d2 = (mags[:-1] ** 2 - mags[1:] ** 2).repeat(n).expand(G, -1)
    beta, order = torch.sort(beta, dim=1)
    d1 = torch.gather(d1, 1, order)
    d2 = torch.gather(d2, 1, order)
    s1 = torch.cat([(top * a.sum(1)).unsqueeze(1), top * a.sum(1, keepdim=True) + torch.cumsum(d1, 1)], 1)
    s2 = torch.cat([torch.full((G, 1), n * top * top, dtype=torch.float64, device=a.device),
                    n * top * top + torch.cumsum(d2, 1)], 1)
    lo = torch.cat([torch.zeros(G, 1, dtype=torch.float64, device=a.device), beta], 1)
    hi = torch.cat([beta, torch.full((G, 1), math.inf, dtype=torch.float64, device=a.device)], 1)
    s2c = s2.clamp_min(0.0)  # rounding can leave -1e-12 where the true value is 0
    alpha = torch.where(s2c > 1e-12, s1 / s2c.clamp_min(1e-300), hi.clamp_max(1.0))
    alpha = torch.minimum(torch.maximum(alpha, lo), hi)
    f = -2 * alpha * s1 + alpha * alpha * s2c
    best = torch.argmin(f, dim=1, keepdim=True)
    return torch.gather(alpha, 1, best).squeeze(1)


def alpha_start(x: torch.Tensor, tying: str, how: str) -> torch.Tensor:
    """Initial α per group: ``one`` (the paper) or ``mean`` (mean |x| of the group). (G,) float32."""
    xg = grouped(x, tying)
    if how == "one":
        return torch.ones(xg.shape[0], dtype=torch.float32, device=x.device)
    if how == "mean":
        return xg.detach().abs().mean(1).float()
    raise AdmmqError(f"alpha init must be 'one' or 'mean', got {how!r}")


# -------------------------------------------------------------- projection
@dataclass
class Projection:
    """Result of projecting a matrix onto α·{set}: codes (R, C) uint8, alpha (G,) float32."""

    codes: torch.Tensor
    alpha: torch.Tensor
    alternations: int
    objective: float  # ‖X − α V‖² summed over groups

    def dequantize(self, qset: QuantSet) -> torch.Tensor:
        levels = qset.tensor(self.alpha.device)
        R = self.codes.shape[0]
        G = self.alpha.shape[0]
        vals = levels[self.codes.long()].reshape(G, -1) * self.alpha.unsqueeze(1)
        return vals.reshape(R, -1)


def project(x: torch.Tensor, qset: QuantSet, tying: str, alpha0: torch.Tensor, start: str = "exact",
            max_alternations: int = 100) -> Projection:
    """Project the (R, C) matrix ``x`` onto α·{qset} (eqs. 18-20), alternating codes and α until no code changes.

    ``alpha0`` (G,): the starting scales for ``start="given"`` (the previous
    iteration's α, or the α initialisation), and the fallback for any group whose
    codes all become 0 (then restarted at mean |x|).  ``start="exact"`` starts
    from :func:`optimal_alpha` instead; for sets with more than
    ``EXACT_MAX_MAGNITUDES`` magnitudes (``int:6`` .. ``int:8``) the breakpoint
    sweep would need n·K memory, so it starts at max|x| / top level (the range
    fit) and at most ``LARGE_SET_ALTERNATIONS`` alternations refine it (each
    lowers the objective; at 63+ levels what remains is tiny).
    """
    if x.dim() != 2:
        raise ValueError(f"project expects a matrix, got shape {tuple(x.shape)}")
    xg = grouped(x.detach(), tying).double()
    levels = qset.tensor(x.device, torch.float64)
    G = xg.shape[0]
    if alpha0.shape != (G,):
        raise ValueError(f"alpha0 has shape {tuple(alpha0.shape)}, expected ({G},) for {tying} tying")
    fallback = xg.abs().mean(1).clamp_min(1e-12)
    if start == "exact" and len(qset.magnitudes) > EXACT_MAX_MAGNITUDES:
        alpha = xg.abs().amax(1) / max(qset.magnitudes)
        max_alternations = min(max_alternations, LARGE_SET_ALTERNATIONS)
    elif start == "exact":
        alpha = optimal_alpha(xg, qset)
    elif start == "given":
        alpha = alpha0.double().to(x.device)
    else:
        raise ValueError(f"start must be 'exact' or 'given', got {start!r}")
    alpha = torch.where(alpha > 0, alpha, fallback)
    codes = nearest_codes(xg, alpha, levels)
    n = 0
    for n in range(1, max_alternations + 1):
        new_alpha, ok = fit_alpha(xg, codes, levels)  # eq. 20
        alpha = torch.where(ok, new_alpha, fallback)  # all-zero codes: restart that group at mean|x|
        new_codes = nearest_codes(xg, alpha, levels)  # eq. 19
        if torch.equal(new_codes, codes):
            break
        codes = new_codes
    final_alpha, ok = fit_alpha(xg, codes, levels)
    alpha = torch.where(ok, final_alpha, alpha)
    obj = float(objective(xg, codes, alpha, levels).sum())
    return Projection(codes.reshape(x.shape).to(torch.uint8), alpha.float(), n, obj)
