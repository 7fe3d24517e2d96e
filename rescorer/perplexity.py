"""Perplexity from a log-likelihood, safe for any value, and its display.

``exp`` of a per-token loss above ``OVERFLOW_NATS`` (about 709.78 nats, the
log of the largest double) does not fit in a float: :func:`math.exp` raises
``OverflowError`` there.  A diverging training run can have such a loss while
it is still finite, so every perplexity that is shown, logged or plotted is
computed here: beyond float range it is ``inf``, a NaN loss gives ``nan``, and
the caller's divergence check decides what that means.
"""

from __future__ import annotations

import math
import sys

OVERFLOW_NATS = math.log(sys.float_info.max)  # per-token loss whose perplexity is the largest double


def ppl_of_nll(nll_per_token: float) -> float:
    """``exp(nll_per_token)``: ``inf`` beyond float range, ``nan`` for NaN; never raises."""
    x = float(nll_per_token)
    if math.isnan(x):
        return math.nan
    return math.exp(x) if x < OVERFLOW_NATS else math.inf


def perplexity_from(logprob: float, tokens: int) -> float:
    """``exp(-logprob / tokens)`` (natural log); ``nan`` without tokens; ``inf`` beyond float range."""
    return ppl_of_nll(-logprob / tokens) if tokens else math.nan


def format_ppl(ppl: float) -> str:
    """A perplexity for a log or progress line: ``123.45``, ``1.23e+50`` from a million on, ``inf``, ``nan``."""
    return f"{ppl:.2f}" if abs(ppl) < 1e6 else f"{ppl:.3g}"
