"""Interpolation weights by EM on a validation text (``admmq interpolate``).

With the components fixed and ``p_kt = P_k(w_t | h_t)`` the probability
component ``k`` gives validation token ``t``, EM for the weights of
``P(w|h) = sum_k lambda_k P_k(w|h)`` alternates::

    E-step   r_kt     = lambda_k p_kt / sum_j lambda_j p_jt
    M-step   lambda_k = (1/T) sum_t r_kt

Every step keeps the weights on the simplex and never lowers the validation
log-likelihood ``L(lambda) = sum_t log sum_k lambda_k p_kt``; ``L`` is concave in
``lambda``, so the fixed point is the maximum and does not depend on where EM
starts.  Iteration stops when ``L`` per token gains less than ``tolerance``
nats, or after ``max_iterations``.  Each iteration's validation perplexity (of
the full mixture, every token) is reported.

EM uses the tokens every component scores (the words all vocabularies hold,
the unknown-word class token, and — under the ``share``/``unk`` OOV policies —
words none holds).  Tokens only some components know, and ``fixed``-cost
tokens, do not inform the weights (see :mod:`rescorer.mixture`) but count in
the perplexity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import numpy as np

from .corpus import read_sentences
from .errors import AdmmqError, PathLike
from .mixture import MixtureScorer, OovPolicy, logsumexp0, mix, normalise_weights
from .perplexity import perplexity_from, ppl_of_nll
from .progress import say
from .weightsfile import write_weights


@dataclass
class EmStep:
    iteration: int
    weights: List[float]
    loglik: float  # EM objective per EM token (nats)
    ppl: float  # validation perplexity of the full mixture with these weights


@dataclass
class EmResult:
    weights: np.ndarray
    steps: List[EmStep]
    converged: bool


def em_weights(logp: np.ndarray, init: Optional[Sequence[float]] = None, tolerance: float = 1e-7,
               max_iterations: int = 200, ppl_of: Optional[Callable[[np.ndarray], float]] = None,
               on_step: Optional[Callable[[EmStep], None]] = None) -> EmResult:
    """EM for mixture weights.

    ``logp``: (K, T) float64 natural-log probabilities of T tokens under K
    components (all finite).  ``init``: starting weights (default uniform).
    Step 0 is the start; each later step is one EM update.
    """
    logp = np.asarray(logp, dtype=np.float64)
    if logp.ndim != 2 or logp.shape[1] == 0:
        raise AdmmqError(f"EM needs (components, tokens) scores with tokens > 0, got shape {logp.shape}")
    K, T = logp.shape
    w = normalise_weights(init if init is not None else np.ones(K), K)
    if not np.isfinite(logp).all():
        raise AdmmqError("EM got a non-finite log-probability (a component gives probability 0 to a token)")

    def loglik(weights: np.ndarray) -> float:
        with np.errstate(divide="ignore"):
            return float(logsumexp0(logp + np.log(weights)[:, None]).sum() / T)

    def step_of(i: int, weights: np.ndarray, ll: float) -> EmStep:
        s = EmStep(i, [float(x) for x in weights], ll, float(ppl_of(weights)) if ppl_of else ppl_of_nll(-ll))
        if on_step:
            on_step(s)
        return s

    ll = loglik(w)
    steps = [step_of(0, w, ll)]
    converged = False
    for i in range(1, max_iterations + 1):
        with np.errstate(divide="ignore"):
            joint = logp + np.log(w)[:, None]
        post = np.exp(joint - logsumexp0(joint)[None, :])  # (K, T) responsibilities r_kt
        w = post.mean(axis=1)
        w = w / w.sum()
        new = loglik(w)
        steps.append(step_of(i, w, new))
        gain, ll = new - ll, new
        if gain < tolerance:
            converged = True
            break
    return EmResult(w, steps, converged)


@dataclass
class InterpolationResult:
    names: List[str]
    kinds: List[str]
    weights: List[float]
    ppl: float
    component_ppl: List[float]
    steps: List[EmStep]
    converged: bool
    tolerance: float
    valid: str
    tokens: int
    sentences: int
    em_tokens: int
    partial: int  # tokens only some components know
    unseen: int  # tokens no component knows
    oov: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"weights": self.weights, "ppl": self.ppl, "component_ppl": self.component_ppl,
                "components": [{"kind": k, "path": n, "weight": w, "ppl": p}
                               for k, n, w, p in zip(self.kinds, self.names, self.weights, self.component_ppl)],
                "iterations": [vars(s) for s in self.steps], "converged": self.converged,
                "tolerance": self.tolerance, "valid": self.valid, "tokens": self.tokens,
                "sentences": self.sentences, "em_tokens": self.em_tokens, "partial_tokens": self.partial,
                "unseen_tokens": self.unseen, "oov": self.oov}


def interpolate(scorer: MixtureScorer, valid: PathLike, fmt: str = "plain", init: Optional[Sequence[float]] = None,
                tolerance: float = 1e-7, max_iterations: int = 200, quiet: bool = True) -> InterpolationResult:
    """Find the weights of ``scorer``'s components by EM on ``valid``; sets ``scorer.weights`` to them."""
    if not tolerance > 0:
        raise AdmmqError(f"--tolerance must be > 0, got {tolerance}")
    sents = read_sentences(valid, fmt)
    say(f"scoring {len(sents)} validation sentences with {len(scorer.components)} LMs", quiet)
    cs = scorer.component_scores([s.words for s in sents])
    tokens = int(cs.offsets[-1])
    use = cs.complete & ~cs.fixed
    if not use.any():
        raise AdmmqError("no validation token is scored by every LM (vocabularies do not overlap?)", valid)

    def ppl_of(w: np.ndarray) -> float:
        return perplexity_from(float(mix(cs, w, scorer.oov.logprob).sum()), tokens)

    def show(s: EmStep) -> None:
        say(f"EM iteration {s.iteration:3d}: valid ppl {s.ppl:.3f}  weights "
            + " ".join(f"{x:.4f}" for x in s.weights), quiet)

    if len(scorer.components) == 1:
        em = EmResult(np.ones(1), [EmStep(0, [1.0], 0.0, ppl_of(np.ones(1)))], True)
    else:
        em = em_weights(cs.logprob[:, use], init, tolerance, max_iterations, ppl_of, show)
    scorer.weights = em.weights
    comp_ppl = [perplexity_from(float(scorer.alone(cs, k).sum()), tokens) for k in range(len(scorer.components))]
    return InterpolationResult(
        names=list(scorer.names), kinds=list(scorer.kinds), weights=[float(x) for x in em.weights],
        ppl=ppl_of(em.weights), component_ppl=comp_ppl, steps=em.steps, converged=em.converged,
        tolerance=tolerance, valid=str(valid), tokens=tokens, sentences=len(sents), em_tokens=int(use.sum()),
        partial=int((~cs.complete & ~cs.unseen).sum()), unseen=int(cs.unseen.sum()), oov=scorer.oov.to_dict())


def save_weights(result: InterpolationResult, path: PathLike) -> None:
    """Write ``result`` as a weights file (see :mod:`rescorer.weightsfile`)."""
    write_weights(path, result.kinds, result.names, result.weights, OovPolicy.from_dict(result.oov),
                  result.component_ppl,
                  ppl=result.ppl, valid={"path": result.valid, "tokens": result.tokens},
                  converged=result.converged, iterations=[vars(s) for s in result.steps])
