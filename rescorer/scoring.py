"""Log-probabilities of word sequences under an LSTM LM — the rescoring primitive.

For each sentence ``w_1 .. w_n`` the LM gives ``n + 1`` per-word natural-log
probabilities ``log P(w_t | <s> w_1 .. w_{t-1})`` and ``log P(</s> | ...)``.
With subword units a word's figure is the sum over its pieces (exact: each
word has one segmentation).  A word outside the vocabulary is scored as the
unknown word and flagged in ``oov``; what to charge for it is decided by the
caller (:mod:`rescorer.interpolate` and :mod:`rescorer.rescore`).

Sentences are scored in length-sorted batches of at most ``batch_tokens``
padded tokens; identical sentences are scored once.  A sentence's scores do
not depend on which batch it lands in (padding is after the sentence and the
LSTM is causal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .batching import IGNORE, length_sorted_batches
from .corpus import EncodedCorpus, encode_sentences
from .model import LSTMLM


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


@torch.no_grad()
def corpus_unit_nll(model: LSTMLM, corpus: EncodedCorpus, bos: int, eos: int, batch_tokens: int = 8192,
                    device: Optional[torch.device] = None) -> List[np.ndarray]:
    """Negative log-probability (nats) of every unit and final ``</s>``, per sentence.

    Returns a list of N (len_i + 1,) float64 arrays.
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: List[Optional[np.ndarray]] = [None] * len(corpus)
    try:
        for batch in length_sorted_batches(corpus, batch_tokens, bos, eos):
            b = batch.to(device)
            nll, _ = model.token_nll(b.inputs, b.targets)
            nll = nll.double().cpu().numpy()
            mask = batch.targets.numpy() != IGNORE
            for row, idx in enumerate(batch.index):
                out[int(idx)] = nll[row][mask[row]]
    finally:
        model.train(was_training)
    return out  # type: ignore[return-value]


def corpus_nll(model: LSTMLM, corpus: EncodedCorpus, bos: int, eos: int, batch_tokens: int = 8192,
               device: Optional[torch.device] = None) -> Tuple[float, int]:
    """Total negative log-probability (nats) of a corpus and the number of predicted tokens."""
    per = corpus_unit_nll(model, corpus, bos, eos, batch_tokens, device)
    return float(sum(a.sum() for a in per)), corpus.tokens


class NeuralScorer:
    """Scores word sequences with an LSTM LM and its units (word vocabulary or SentencePiece)."""

    def __init__(self, model: LSTMLM, units, batch_tokens: int = 8192, device: Optional[str] = None):
        self.model = model
        self.units = units
        self.batch_tokens = batch_tokens
        self.device = torch.device(device) if device else next(model.parameters()).device

    def is_oov(self, word: str) -> bool:
        return self.units.is_oov(word)

    def score(self, sentences: Sequence[Sequence[str]], dedup: bool = True) -> WordScores:
        """Per-word log-probabilities of ``sentences`` (see :class:`WordScores`)."""
        sentences = [tuple(s) for s in sentences]
        if dedup:
            first: Dict[Tuple[str, ...], int] = {}
            unique: List[Tuple[str, ...]] = []
            where = np.empty(len(sentences), dtype=np.int64)
            for i, s in enumerate(sentences):
                j = first.get(s)
                if j is None:
                    j = first[s] = len(unique)
                    unique.append(s)
                where[i] = j
        else:
            unique, where = sentences, np.arange(len(sentences))
        corpus = encode_sentences(self.units, unique)
        per_unit = corpus_unit_nll(self.model, corpus, self.units.bos_id, self.units.eos_id,
                                   self.batch_tokens, self.device)
        per_word: List[np.ndarray] = []
        for s, nll in zip(unique, per_unit):
            counts = self.units.units_per_word(s)
            if counts is None or len(s) == 0:
                lp = -nll
            else:
                starts = np.concatenate([[0], np.cumsum(counts)])  # </s> is the last unit
                lp = -np.add.reduceat(nll, starts)
            per_word.append(lp)
        lens = np.array([len(sentences[i]) + 1 for i in range(len(sentences))], dtype=np.int64)
        offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(lens)
        logprob = np.concatenate([per_word[j] for j in where]) if len(where) else np.zeros(0)
        oov_u = [np.array([self.units.is_oov(w) for w in s] + [False], dtype=bool) for s in unique]
        oov = np.concatenate([oov_u[j] for j in where]) if len(where) else np.zeros(0, dtype=bool)
        return WordScores(logprob.astype(np.float64), offsets, oov)
