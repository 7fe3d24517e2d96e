"""The new LM's cost of every n-best hypothesis, and the cost parts rescoring combines.

For hypothesis ``h`` with ``n`` words (see :mod:`rescorer.nbest.rescore`)::

    lm(h)    = (1 - b) * (-ln P_LM(w_1 .. w_n </s>)) + b * lmwt.lmonly(h)
    total(h) = acoustic_scale * acwt(h) + lm_scale * (lmwt.nolm(h) + lm(h) + wip * n)

:class:`Components` holds these parts, (N,) each; :func:`segment_argmin`
picks the best hypothesis of each utterance.

LM scoring sends all distinct word sequences of the whole list (and of the dev
list) to the LM at once, sorted by length (lexicographically when the LM
scores on prefix trees: its ``sentence_order`` is ``prefix``), in chunks of about
``chunk_tokens`` tokens (the progress bar advances per chunk); the LM batches
each chunk under its own memory bound.  A hypothesis' score does not depend on
its chunk or batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from rescorer.errors import AdmmqError
from rescorer.lm.batch_control import lm_work
from rescorer.lm.carry_over import SentenceContext
from rescorer.nbest.lists import NBestList
from rescorer.progress import progress_bar


@dataclass
class LMScores:
    """``logprob``: (N,) float64 ln P(words </s>); ``oov``: (N,) int64 words scored as unknown.

    ``distinct``: sentences sent to the LM; ``tokens``: words + ``</s>`` of all N sentences.
    """

    logprob: np.ndarray
    oov: np.ndarray
    distinct: int
    tokens: int
    seconds: float
    work: List[dict] = field(default_factory=list)  # per neural LM: steps, softmax rows, how (batch_control.lm_work)

    def rates(self) -> dict:
        """Speed over all N sentences (duplicates included) and their words + ``</s>``."""
        t = max(self.seconds, 1e-9)
        return {"seconds": round(self.seconds, 3), "sentences": len(self.logprob),
                "distinct_sentences": self.distinct, "hypotheses_per_s": round(len(self.logprob) / t, 1),
                "words_per_s": round(self.tokens / t, 1), "lm_work": self.work}


def score_sentences(lm, sentences: Sequence[Tuple[str, ...]], chunk_tokens: int = 32768,
                    quiet: bool = False, context: Optional[SentenceContext] = None) -> LMScores:
    """Log-probabilities of all ``sentences``: each distinct one scored once, length-sorted, in big chunks.

    ``context``: carry-over start states (:mod:`rescorer.lm.carry_over`); a sentence is then distinct
    per start state, and sentences of one start state are sent together.
    """
    t0 = time.perf_counter()
    start = context.start if context is not None else np.full(len(sentences), -1, dtype=np.int64)
    first: Dict[Tuple[int, Tuple[str, ...]], int] = {}
    where = np.empty(len(sentences), dtype=np.int64)
    for i, s in enumerate(sentences):
        where[i] = first.setdefault((int(start[i]), tuple(s)), len(first))
    unique = [k[1] for k in first]
    start_u = np.array([k[0] for k in first], dtype=np.int64)
    if getattr(lm, "sentence_order", "length") == "prefix":  # prefix-shared LSTM: neighbours share prefixes
        order = sorted(range(len(unique)), key=lambda j: (start_u[j], unique[j]))
    else:
        order = sorted(range(len(unique)), key=lambda j: len(unique[j]))
    logprob_u = np.zeros(len(unique), dtype=np.float64)
    oov_u = np.zeros(len(unique), dtype=np.int64)
    with progress_bar("scoring hypotheses", total=len(unique), quiet=quiet) as bar:
        start = 0
        while start < len(order):
            stop, tokens = start, 0
            while stop < len(order) and (stop == start or tokens + len(unique[order[stop]]) + 1 <= chunk_tokens):
                tokens += len(unique[order[stop]]) + 1
                stop += 1
            idx = order[start:stop]
            batch = [unique[j] for j in idx]
            scores = lm.score(batch) if context is None else \
                lm.score(batch, context=SentenceContext(context.history, start_u[idx]))
            assert len(scores) == len(idx), (len(scores), len(idx))
            logprob_u[idx] = scores.totals()
            oov_u[idx] = np.add.reduceat(scores.oov.astype(np.int64), scores.offsets[:-1]) if scores.oov.size \
                else 0
            bar.advance(len(idx))
            elapsed = time.perf_counter() - t0
            bar.update(info=f"{stop / max(elapsed, 1e-9):.0f} sent/s")
            start = stop
    return LMScores(logprob_u[where], oov_u[where], len(unique), sum(len(s) + 1 for s in sentences),
                    time.perf_counter() - t0, lm_work(lm))


def segment_argmin(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Index of the smallest value of each segment ``offsets[u]:offsets[u+1]`` (first on ties): (U,)."""
    starts = offsets[:-1]
    mins = np.minimum.reduceat(values, starts)
    hit = values <= np.repeat(mins, np.diff(offsets))
    return np.minimum.reduceat(np.where(hit, np.arange(len(values)), len(values)), starts)


@dataclass
class Components:
    """Per-hypothesis cost parts, each (N,) float64 (``words``: (N,) int64)."""

    acwt: np.ndarray
    graph: np.ndarray
    lm: np.ndarray  # the LM cost used: new LM, mixed with the old one when old_lm_weight > 0
    lm_new: np.ndarray  # -ln P_LM
    words: np.ndarray
    offsets: np.ndarray

    def total(self, acoustic_scale: float, lm_scale: float, wip: float) -> np.ndarray:
        return acoustic_scale * self.acwt + lm_scale * (self.graph + self.lm + wip * self.words)


def components(nb: NBestList, logprob: np.ndarray, old_lm_weight: float) -> Tuple[Components, List[str]]:
    """The cost parts of every hypothesis of ``nb`` and notes on what was absent."""
    notes = []
    n = len(nb)
    acwt = nb.cost("acwt")
    if acwt is None:
        notes.append(f"{nb.source}: no acwt; acoustic cost taken as 0 (LM-only ranking)")
        acwt = np.zeros(n)
    graph = nb.cost("lmwt.nolm")
    if graph is None:
        notes.append(f"{nb.source}: no lmwt.nolm; graph cost without the old LM taken as 0")
        graph = np.zeros(n)
    lm_new = -np.asarray(logprob, dtype=np.float64)
    lm = lm_new
    if old_lm_weight:
        old = nb.cost("lmwt.lmonly")
        if old is None:
            raise AdmmqError(f"{nb.source}: --old-lm-weight needs the old LM cost (lmwt.lmonly, or lmwt.withlm "
                             f"and lmwt.nolm)")
        lm = (1.0 - old_lm_weight) * lm_new + old_lm_weight * old
    return Components(acwt, graph, lm, lm_new, nb.lengths(), nb.offsets), notes
