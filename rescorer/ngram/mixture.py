"""Linear interpolation of language models, with an explicit policy for out-of-vocabulary words.

A :class:`MixtureScorer` combines any number of component scorers (LSTM
checkpoints or packed files via :class:`~rescorer.lm.scoring.NeuralScorer`,
n-gram files via :class:`~rescorer.ngram.ngram_lm.NgramScorer`) per word::

    P(w | h) = sum_k lambda_k P_k(w | h)

and returns the same :class:`~rescorer.lm.scoring.WordScores` as its components
(natural log, one entry per word plus the final ``</s>``).  One component
(weight 1) is allowed: it is how a single LM is scored under the same policy.

Vocabulary mapping (each component has its own vocabulary):

* The unknown-word *class token* — a text token spelled ``<unk>``, ``<UNK>``
  or as any component's unknown word (PTB text is full of ``<unk>``) — is
  given to every component as its own unknown word, with its full
  probability: it is what the components were trained on.
* A word some components know and others do not (e.g. in the 4-gram's
  vocabulary but not the LSTM's) is scored by the components that know it
  alone, their weights renormalised:
  ``P = sum_{k knows w} lambda_k P_k(w|h) / sum_{k knows w} lambda_k``; with an
  LSTM and one n-gram that is the n-gram's probability.  This keeps a rare
  word's n-gram probability instead of the LSTM's whole unknown-word mass;
  the mixture is then not exactly normalised over the union vocabulary (the
  excess is lambda_lstm * (P_lstm(<unk>|h) - P_ngram(words the LSTM lacks|h))),
  and exactly normalised when the vocabularies agree, as on PTB.
* A word no component knows (``oov`` in the result) costs what
  :class:`OovPolicy` says.  ``<s>`` and ``</s>`` inside a sentence count as such words.

Why an explicit OOV cost: scoring the 7,146 ptb-tts test hypotheses that hold a
word outside PTB's 10k vocabulary with PTB's ``<unk>`` probability (4.8 % of
training tokens) makes them look likely, and a PTB 4-gram then *raises* WER
from 27.9 to 29.3; with a small probability (~10^-5.3: lmplz's own unseen-word
``<unk>`` after PTB's ``<unk>`` was renamed) the same 4-gram alone gives 23.4
(LM scale and penalty tuned on ptb-tts dev; measured during development,
before ``--oov`` existed).  The default, ``share`` over 10,000 types, gives each such
word ``P(<unk>|h) / 10^4`` — for a PTB 4-gram's ``<unk>`` unigram (10^-1.3 to
10^-1.75) about 10^-5.3 to 10^-5.75 — and keeps the context dependence of the
unknown-word class, like Kaldi's ``rnnlm_compute_scores.sh`` (the class
probability times the word's share).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence

import numpy as np

from rescorer.ngram.arpa import UNK_SPELLINGS
from rescorer.errors import AdmmqError
from rescorer.lm.word_scores import WordScores

OOV_MODES = ("share", "fixed", "unk")


@dataclass(frozen=True)
class OovPolicy:
    """What a word outside every component's vocabulary costs.

    ``mode``:
      * ``share`` — each component's unknown-word probability divided among
        ``types`` unseen word types: ``log P_k(<unk>|h) - log(types)``, then mixed;
      * ``fixed`` — ``logprob`` (natural log), whatever the history;
      * ``unk``  — the unknown word's full probability (``share`` with one type;
        shown to raise WER on real n-best lists, kept for comparison).

    A component without an unknown word (a closed-vocabulary ARPA file) takes
    no part in scoring such words; if no component has one, ``fixed`` applies.
    """

    mode: str = "share"
    types: int = 10000
    logprob: float = math.log(1e-7)

    def __post_init__(self) -> None:
        if self.mode not in OOV_MODES:
            raise AdmmqError(f"OOV mode must be one of {', '.join(OOV_MODES)}, got {self.mode!r}")
        if self.types < 1:
            raise AdmmqError(f"--oov-types must be >= 1, got {self.types}")
        if not (self.logprob <= 0):
            raise AdmmqError(f"--oov-logprob must be a natural-log probability <= 0, got {self.logprob}")

    @property
    def penalty(self) -> float:
        """Natural-log amount added to a component's unknown-word score (share/unk modes)."""
        return -math.log(self.types) if self.mode == "share" else 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "OovPolicy":
        return cls(mode=str(d.get("mode", "share")), types=int(d.get("types", 10000)),
                   logprob=float(d.get("logprob", math.log(1e-7))))


def unk_symbol(scorer) -> Optional[str]:
    """A component's unknown-word symbol (n-gram: ``.unk``; neural: its vocabulary's)."""
    sym = getattr(scorer, "unk", None)
    if isinstance(sym, str):
        return sym
    return getattr(getattr(getattr(scorer, "units", None), "vocab", None), "unk", None)


def has_unk_class(scorer) -> bool:
    return bool(getattr(scorer, "has_unk", True))


@dataclass
class ComponentScores:
    """Each component's scores of the same N sentences, after the vocabulary mapping and OOV policy.

    ``logprob``: (K, total) float64 natural log; NaN where component k takes no
    part (it does not know the word).  ``offsets``: (N+1,).  ``unseen``: (total,)
    bool, the word is in no component's vocabulary.  ``fixed``: (total,) bool,
    the position costs :attr:`OovPolicy.logprob` (no component takes part).
    ``raw``: (K, total) each component's own score (its unknown word's for words
    it lacks); ``known``: (K, total) bool, the word is in component k's vocabulary.
    """

    logprob: np.ndarray
    offsets: np.ndarray
    unseen: np.ndarray
    fixed: np.ndarray
    raw: np.ndarray
    known: np.ndarray

    @property
    def complete(self) -> np.ndarray:
        """(total,) bool: every component has a score (a plain mixture term; EM uses these)."""
        return ~np.isnan(self.logprob).any(axis=0)


def mix(cs: ComponentScores, weights: np.ndarray, fixed_logprob: float) -> np.ndarray:
    """Mixture log-probability per position: (total,) float64 (see the module docstring)."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1, 1)
    part = ~np.isnan(cs.logprob)
    with np.errstate(divide="ignore"):
        logw = np.log(w)
    terms = np.where(part, cs.logprob + logw, -np.inf)
    norm_terms = np.where(part, np.broadcast_to(logw, part.shape), -np.inf)
    num = logsumexp0(terms)
    den = logsumexp0(norm_terms)
    # all participating components have weight 0: fall back to their plain average
    zero = np.isneginf(den) & part.any(axis=0)
    if zero.any():
        n = part[:, zero].sum(axis=0)
        num[zero] = logsumexp0(np.where(part[:, zero], cs.logprob[:, zero], -np.inf)) - np.log(n)
        den[zero] = 0.0
    with np.errstate(invalid="ignore"):  # -inf - -inf where no component takes part (fixed positions)
        out = num - den
    out[cs.fixed] = fixed_logprob
    return out


def logsumexp0(a: np.ndarray) -> np.ndarray:
    """log sum exp over axis 0 of a (K, T) array that may hold -inf: (T,)."""
    m = a.max(axis=0)
    safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(a - safe).sum(axis=0)) + safe


class MixtureScorer:
    """``log sum_k lambda_k P_k(w|h)`` per word, with the OOV policy (see the module docstring)."""

    kind = "mixture"

    def __init__(self, components: Sequence, weights: Sequence[float], oov: Optional[OovPolicy] = None,
                 names: Optional[Sequence[str]] = None, kinds: Optional[Sequence[str]] = None,
                 concurrent: Optional[bool] = None):
        if not components:
            raise AdmmqError("a mixture needs at least one language model")
        self.components = list(components)
        self.weights = normalise_weights(weights, len(self.components))
        self.oov = oov or OovPolicy()
        self.names = list(names) if names is not None else [getattr(c, "path", f"lm{k}")
                                                             for k, c in enumerate(components)]
        self.kinds = list(kinds) if kinds is not None else [getattr(c, "kind", "lm") for c in components]
        self._unks = [unk_symbol(c) for c in self.components]
        self.class_tokens = frozenset(UNK_SPELLINGS) | {u for u in self._unks if u}
        # None: concurrently when a component asks for it (an LSTM on a GPU), so n-grams use the CPU meanwhile
        self.concurrent = (any(getattr(c, "prefers_concurrency", False) for c in self.components)
                           if concurrent is None else bool(concurrent))

    def is_oov(self, word: str) -> bool:
        """True if no component knows ``word`` (the class token is known)."""
        return word not in self.class_tokens and all(c.is_oov(word) for c in self.components)

    def _for_component(self, k: int, sentences: List[Sequence[str]], has_class: bool) -> List[Sequence[str]]:
        unk = self._unks[k]
        if not has_class or unk is None:
            return sentences
        cls = self.class_tokens
        return [[unk if w in cls else w for w in s] if any(w in cls for w in s) else s for s in sentences]

    @property
    def sentence_order(self) -> str:
        """``prefix`` when a component scores faster on lexicographically grouped sentences, else ``length``."""
        return "prefix" if any(getattr(c, "sentence_order", "length") == "prefix" for c in self.components) \
            else "length"

    def _score_each(self, per_component: List[Sequence[Sequence[str]]], context=None) -> list:
        """Each component's WordScores; components on a GPU run in a thread beside the others (CPU n-grams).

        ``context`` (carry-over start states) goes to the components that take it (LSTMs).
        """
        comps = self.components

        def run(c, s):
            return c.score(s, context=context) if context is not None and getattr(c, "uses_context", False) \
                else c.score(s)

        if not self.concurrent or len(comps) < 2:
            return [run(c, s) for c, s in zip(comps, per_component)]
        with ThreadPoolExecutor(max_workers=len(comps)) as pool:
            futures = [pool.submit(run, c, s) for c, s in zip(comps, per_component)]
            return [f.result() for f in futures]

    @property
    def uses_context(self) -> bool:
        """Some component takes carry-over start states."""
        return any(getattr(c, "uses_context", False) for c in self.components)

    def component_scores(self, sentences: Sequence[Sequence[str]], context=None) -> ComponentScores:
        """Every component's scores of ``sentences`` under the vocabulary mapping and OOV policy."""
        sentences = [s if isinstance(s, (list, tuple)) else list(s) for s in sentences]
        has_class = any(w in self.class_tokens for s in sentences for w in s)
        scores = self._score_each([self._for_component(k, sentences, has_class)
                                   for k in range(len(self.components))], context)
        offsets = scores[0].offsets
        for k, s in enumerate(scores[1:], 1):
            if not np.array_equal(s.offsets, offsets):
                raise AdmmqError(f"component {self.names[k]} scored a different number of words")
        lp = np.stack([s.logprob for s in scores]).astype(np.float64)
        known = ~np.stack([s.oov for s in scores])
        unseen = ~known.any(axis=0)
        values = np.where(known, lp, np.nan)
        fixed = np.zeros(unseen.shape, dtype=bool)
        if unseen.any():
            if self.oov.mode == "fixed":
                fixed = unseen.copy()
            else:
                can = np.array([has_unk_class(c) for c in self.components], dtype=bool)
                if can.any():
                    values[np.ix_(can, unseen)] = lp[np.ix_(can, unseen)] + self.oov.penalty
                else:
                    fixed = unseen.copy()
        return ComponentScores(values, offsets, unseen, fixed, lp, known)

    def alone(self, cs: ComponentScores, k: int) -> np.ndarray:
        """Component ``k`` scored by itself under the same OOV policy: (total,) float64 natural log."""
        out = cs.raw[k].copy()
        lacks = ~cs.known[k]
        if self.oov.mode == "fixed" or not has_unk_class(self.components[k]):
            out[lacks] = self.oov.logprob
        else:
            out[lacks] += self.oov.penalty
        return out

    def score(self, sentences: Sequence[Sequence[str]], dedup: bool = True, context=None) -> WordScores:
        """Per-word mixture log-probabilities; ``oov`` marks words no component knows.

        ``context``: carry-over start states for the LSTM components
        (:class:`rescorer.lm.carry_over.SentenceContext`); n-grams score each sentence alone.
        """
        cs = self.component_scores(sentences, context)
        return WordScores(mix(cs, self.weights, self.oov.logprob), cs.offsets, cs.unseen)

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}: {w:.4f}" for n, w in zip(self.names, self.weights))
        return f"MixtureScorer({parts}; oov {self.oov.mode})"


def normalise_weights(weights: Sequence[float], k: int) -> np.ndarray:
    """Check ``k`` non-negative weights with a positive sum and scale them to sum to 1: (k,) float64."""
    w = np.asarray(list(weights), dtype=np.float64)
    if w.shape != (k,):
        raise AdmmqError(f"{w.size} interpolation weight(s) given for {k} language model(s)")
    if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise AdmmqError(f"interpolation weights must be >= 0 with a positive sum, got {list(w)}")
    return w / w.sum()
