"""Per-word LM scores of sentences, and the part of LSTM scoring that is the same on every path.

:class:`WordScores` is what every LM component returns.  :class:`UnitLMScorer` turns
sentences into per-word scores for an LM over units (word vocabulary or
SentencePiece pieces): identical sentences once, a word's figure the sum over its
pieces, out-of-vocabulary flags; a subclass computes the per-unit log-probabilities
(:class:`rescorer.lm.scoring.NeuralScorer` in PyTorch,
:class:`rescorer.lm.kernel_scorer.KernelScorer` on the compiled CPU kernels).
No PyTorch here: ``admmq rescore`` on the kernels never imports it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from rescorer.lm.batch_control import ScoringStats


@dataclass
class WordScores:
    """Per-word scores of N sentences, flat.

    ``logprob``: (total,) float64 natural-log probability of each word and of
    each sentence's final ``</s>``; sentence ``i`` owns
    ``logprob[offsets[i]:offsets[i+1]]`` (``n_i + 1`` entries, ``</s>`` last).
    ``oov``: (total,) bool, True where the word was scored as the unknown word.
    """

    logprob: np.ndarray
    offsets: np.ndarray
    oov: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def sentence(self, i: int) -> np.ndarray:
        return self.logprob[self.offsets[i]: self.offsets[i + 1]]

    def totals(self) -> np.ndarray:
        """Sum per sentence: (N,) float64."""
        if self.logprob.size == 0:
            return np.zeros(len(self), dtype=np.float64)
        sums = np.add.reduceat(self.logprob, self.offsets[:-1])
        return sums


@dataclass(frozen=True)
class NeuralOptions:
    """How an LSTM scores (``admmq rescore --prefix-sharing/--int8/--precision/--normalize-probs/--threads``).

    ``threads``: CPU threads (0: PyTorch's default: ``OMP_NUM_THREADS``, else the cores); the compiled
    kernels run with one (:meth:`kernel_path`)."""

    prefix_sharing: bool = True
    int8: bool = False
    precision: str = "fp32"
    normalize: bool = True
    threads: int = 0

    def to_dict(self) -> dict:
        return {"prefix_sharing": self.prefix_sharing, "int8": self.int8, "precision": self.precision,
                "normalize": self.normalize}

    def kernel_path(self, device: str) -> bool:
        """Whether these options on ``device`` are what the compiled CPU kernels compute: one thread, the CPU,
        fp32, prefix sharing, no int8 (the kernels themselves must still load)."""
        one = self.threads == 1 or (self.threads == 0 and (os.environ.get("OMP_NUM_THREADS", "").strip() == "1"
                                                           or os.cpu_count() == 1))
        return device == "cpu" and one and self.precision == "fp32" and self.prefix_sharing and not self.int8


class UnitLMScorer:
    """Scores word sequences with an LM over ``units``; subclasses give ``_unit_logprobs`` and ``describe``.

    ``stats`` counts the work (:class:`ScoringStats`); ``warning`` is a line for the command to say once.
    """

    kind = "lstm"
    uses_context = True  # takes carry-over start states (score(..., context=))
    prefix_sharing = True
    device_type = "cpu"

    def __init__(self, units):
        self.units = units
        self.stats = ScoringStats()
        self.warning: Optional[str] = None
        self._step_lm = None
        self._history = None  # (history, its end-state table) of the last carry-over

    @property
    def sentence_order(self) -> str:
        """How callers should order sentences into calls: ``prefix`` (lexicographic) or ``length``."""
        return "prefix" if self.prefix_sharing else "length"

    @property
    def prefers_concurrency(self) -> bool:
        """Run beside the other mixture components (n-grams on the CPU) when the LSTM is on a GPU."""
        return self.device_type == "cuda"

    def is_oov(self, word: str) -> bool:
        return self.units.is_oov(word)

    def _unit_logprobs(self, unique: List[Tuple[str, ...]], start: Optional[np.ndarray] = None,
                       table=None) -> List[np.ndarray]:
        """Per-unit log-probabilities (``</s>`` last) of each distinct sentence: (n_i + 1,) float64 each.

        ``table``: carry-over end states ((L, K + 1, H) h, c; :func:`history_states`), sentence i
        starting from row ``start[i] + 1``."""
        raise NotImplementedError

    def _history_table(self, hist):
        """End states of every entry of ``hist`` in the stepper's array type (``history_states``)."""
        from rescorer.lm.carry_over import history_states
        return history_states(self.step_lm, self.units, hist, np.arange(len(hist)))

    def _start_table(self, context):
        """End states of every entry of ``context``'s history: one batched pass per history, reused by later
        calls (callers pass a history of the entries they need: ``History.restrict``)."""
        hist = context.history
        if self._history is None or self._history[0] is not hist:
            table, steps = self._history_table(hist)
            self.stats.history_steps += steps
            self.stats.lstm_steps += steps
            self._history = (hist, table)
        return self._history[1]

    def _oov_flags(self, sentences: Sequence[Tuple[str, ...]]) -> np.ndarray:
        """Whether each word of ``sentences`` (flat, in order) is out of the vocabulary: (words,) bool."""
        is_oov = self.units.is_oov
        oov = {w for w in {w for s in sentences for w in s} if is_oov(w)}
        return np.array([w in oov for s in sentences for w in s], dtype=bool)

    def score(self, sentences: Sequence[Sequence[str]], dedup: bool = True, context=None) -> WordScores:
        """Per-word log-probabilities of ``sentences`` (see :class:`WordScores`).

        ``context``: carry-over (a :class:`rescorer.lm.carry_over.SentenceContext`), each sentence's start state.
        """
        t0 = time.perf_counter()
        try:
            return self._score(sentences, dedup, context)
        finally:
            self.stats.seconds += time.perf_counter() - t0
            if self._step_lm is not None:
                self.stats.lstm_seconds = self._step_lm.seconds["lstm"]
                self.stats.output_seconds = self._step_lm.seconds["output"]

    def _score(self, sentences: Sequence[Sequence[str]], dedup: bool, context=None) -> WordScores:
        sentences = [tuple(s) for s in sentences]
        start = context.start if context is not None else None
        if start is not None:
            assert start.shape == (len(sentences),), (start.shape, len(sentences))
        if dedup:
            first: Dict[object, int] = {}
            unique: List[Tuple[str, ...]] = []
            where = np.empty(len(sentences), dtype=np.int64)
            firsts: List[int] = []
            for i, s in enumerate(sentences):
                key = s if start is None else (int(start[i]), s)
                j = first.get(key)
                if j is None:
                    j = first[key] = len(unique)
                    unique.append(s)
                    firsts.append(i)
                where[i] = j
            unique_start = start[np.array(firsts, dtype=np.int64)] if start is not None else None
        else:
            unique, where, unique_start = sentences, np.arange(len(sentences)), start
        table = self._start_table(context) if start is not None and (start >= 0).any() else None
        per_unit = self._unit_logprobs(unique, unique_start, table) if table is not None else \
            self._unit_logprobs(unique)
        self.stats.sentences += len(unique)
        per_word: List[np.ndarray] = []
        for s, lp in zip(unique, per_unit):
            counts = self.units.units_per_word(s)
            if counts is not None and len(s):
                starts = np.concatenate([[0], np.cumsum(counts)])  # </s> is the last unit
                lp = np.add.reduceat(lp, starts)
            per_word.append(lp)
        lens_u = np.array([len(s) + 1 for s in unique], dtype=np.int64)
        flat_u = np.concatenate(per_word) if unique else np.zeros(0)
        oov_u = np.zeros(flat_u.size, dtype=bool)  # </s> is never out of vocabulary
        is_word = np.ones(flat_u.size, dtype=bool)
        is_word[np.cumsum(lens_u) - 1] = False
        oov_u[is_word] = self._oov_flags(unique)
        lens = lens_u[where]
        offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(lens)
        starts_u = np.cumsum(lens_u) - lens_u
        take = np.repeat(starts_u[where] - offsets[:-1], lens) + np.arange(int(offsets[-1]))  # row -> unique row
        logprob, oov = flat_u[take], oov_u[take]
        return WordScores(logprob.astype(np.float64), offsets, oov)
