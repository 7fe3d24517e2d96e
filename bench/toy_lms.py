"""Small LMs built by simple, documented rules, without training: for the benchmarks and the tests.

* :func:`quantize_model`: the weight matrices of an :class:`~rescorer.lm.model.LSTMLM` projected onto a
  quantization set (not a training method, and not ADMM's exact projection):

  - scaled sets ``alpha * {q_1..q_L}`` (K = 1): ``alpha`` = mean |w| of the group (the whole matrix for
    layer tying, each row for node tying); each weight takes the code of the nearest level ``alpha * q_l``;
  - multi-bit (K = k): greedy residual binarisation, row-wise: ``alpha_i`` = mean |r| of the row,
    ``b_i = sign(r)`` (0 counts as +1), ``r -= alpha_i b_i``; code bit i is 1 where ``b_i = +1``;
    basis = the (2^k, k) table of ±1 patterns.

* :func:`backoff_arpa`: a *normalised* back-off ARPA model of a toy corpus (absolute discounting, back-off
  weights computed so that every distribution sums to one) — an oracle for the ARPA back-off definition
  and a quick n-gram for the benchmarks, not an LM estimator for users (``recipes/common/make_4gram.sh``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Dict, List, Sequence, Tuple, Union

import torch

from rescorer.lm.model import LSTMLM
from rescorer.lm.quantized import QuantizedMatrix

SETS = {"binary": [-1.0, 1.0], "ternary": [-1.0, 0.0, 1.0], "pow2": [-2.0, -1.0, 1.0, 2.0],
        "pow4": [-4.0, -2.0, -1.0, 1.0, 2.0, 4.0], "pow8": [-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0]}


def project_scaled(w: torch.Tensor, levels: Sequence[float], tying: str) -> QuantizedMatrix:
    """Nearest level of alpha * levels, alpha = mean |w| per matrix ("layer") or per row ("node")."""
    q = torch.tensor(levels, dtype=torch.float32)
    alpha = w.abs().mean().reshape(1, 1) if tying == "layer" else w.abs().mean(dim=1, keepdim=True)
    codes = (w.unsqueeze(-1) - alpha.unsqueeze(-1) * q).abs().argmin(dim=-1).to(torch.uint8)
    return QuantizedMatrix(codes, q.reshape(-1, 1), alpha.float())


def project_multibit(w: torch.Tensor, k: int) -> QuantizedMatrix:
    """Greedy k-bit residual binarisation, alpha per row: (R, k)."""
    r = w.clone()
    codes = torch.zeros(w.shape, dtype=torch.int64)
    alphas = []
    for i in range(k):
        a = r.abs().mean(dim=1, keepdim=True)
        b = torch.where(r >= 0, 1.0, -1.0)
        r = r - a * b
        codes |= (b > 0).long() << i
        alphas.append(a)
    basis = torch.tensor([[1.0 if (c >> i) & 1 else -1.0 for i in range(k)] for c in range(1 << k)])
    return QuantizedMatrix(codes.to(torch.uint8), basis, torch.cat(alphas, dim=1))


Scheme = Union[str, Dict[str, str]]


def quantize_model(model: LSTMLM, scheme: Scheme, tying: str = "layer") -> Dict[str, QuantizedMatrix]:
    """Every weight matrix quantized with ``scheme`` (a key of SETS, or "multibit2"/"multibit3"; or a dict
    matrix name -> scheme, for mixed precision)."""
    out = {}
    with torch.no_grad():
        for name in model.weight_matrix_names():
            w = dict(model.named_parameters())[name].detach().float()
            s = scheme if isinstance(scheme, str) else scheme[name]
            if s.startswith("multibit"):
                out[name] = project_multibit(w, int(s[len("multibit"):]))
            else:
                out[name] = project_scaled(w, SETS[s], tying)
    return out


def backoff_arpa(sentences: Sequence[Sequence[str]], order: int, discount: float = 0.5) -> str:
    """A normalised back-off ARPA model of ``sentences`` (closed vocabulary: no ``<unk>``).

    p(w|h) = (c(h w) - D) / c(h) for listed n-grams; bo(h) makes every
    conditional distribution over the vocabulary plus ``</s>`` sum to one.
    Raises ValueError when a history has seen every word (no mass left to back off to).
    """
    counts: List[Dict[Tuple[str, ...], int]] = [defaultdict(int) for _ in range(order + 1)]
    for s in sentences:
        toks = ["<s>"] + list(s) + ["</s>"]
        for n in range(1, order + 1):
            for i in range(len(toks) - n + 1):
                gram = tuple(toks[i:i + n])
                if n == 1 and gram == ("<s>",):
                    continue
                if n > 1 and "<s>" in gram[1:]:
                    continue
                counts[n][gram] += 1
    vocab = sorted(w for (w,) in counts[1])  # words and </s>
    total = sum(counts[1].values())
    prob: List[Dict[Tuple[str, ...], float]] = [dict() for _ in range(order + 1)]
    bow: List[Dict[Tuple[str, ...], float]] = [dict() for _ in range(order + 1)]
    for (w,), c in counts[1].items():
        prob[1][(w,)] = c / total

    def p(w: str, h: Tuple[str, ...]) -> float:
        if (h + (w,)) in prob[len(h) + 1]:
            return prob[len(h) + 1][h + (w,)]
        if not h:
            return 0.0
        return bow[len(h)].get(h, 1.0) * p(w, h[1:])

    for n in range(2, order + 1):
        ctx_count: Dict[Tuple[str, ...], int] = defaultdict(int)
        followers: Dict[Tuple[str, ...], List[str]] = defaultdict(list)
        for gram, c in counts[n].items():
            ctx_count[gram[:-1]] += c
            followers[gram[:-1]].append(gram[-1])
        for gram, c in counts[n].items():
            prob[n][gram] = (c - discount) / ctx_count[gram[:-1]]
        for h, ws in followers.items():
            left = discount * len(ws) / ctx_count[h]
            lower = 1.0 - sum(p(w, h[1:]) for w in ws)
            if lower <= 1e-9:
                raise ValueError(f"history {h} has seen every word")
            bow[n - 1][h] = left / lower
    lines = ["\\data\\"]
    listed = [None] + [sorted(prob[n]) for n in range(1, order + 1)]
    listed[1] = [("<s>",)] + listed[1]
    for n in range(1, order + 1):
        lines.append(f"ngram {n}={len(listed[n])}")
    for n in range(1, order + 1):
        lines += ["", f"\\{n}-grams:"]
        for gram in listed[n]:
            lp = -99.0 if gram == ("<s>",) else math.log10(prob[n][gram])
            entry = f"{lp:.10f}\t{' '.join(gram)}"
            if n < order and gram in bow[n]:
                entry += f"\t{math.log10(bow[n][gram]):.10f}"
            lines.append(entry)
    lines += ["", "\\end\\", ""]
    assert vocab  # the model covers these words (and </s>)
    return "\n".join(lines)
