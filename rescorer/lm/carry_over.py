"""Cross-sentence LSTM state ("carry-over"): a sentence scored from the state left by earlier ones.

Kaldi's ``steps/pytorchnn`` n-best rescoring starts each utterance's LSTM
state from the state at the end of the previous utterance's first-pass best
hypothesis.  Here that is a :class:`History`: K earlier sentences (entries),
entry ``k`` read from the state after entry ``after[k]`` (-1: the zero
state), so the entries form chains (one per recording or speaker, or Kaldi's
single chain through a file).  A :class:`SentenceContext` says, per scored
sentence, which entry's end state it starts from (-1: zero state); the
sentence itself is then scored as usual, ``<s> w_1 .. w_n`` in, ``w_1 .. w_n
</s>`` out.

What an entry feeds the LSTM (its *input*):

* ``kaldi=False``: ``<s> w_1 .. w_n``, then ``</s>`` when the model has a
  sentence-end symbol of its own (admmq's models: ``... </s> <s> ...`` is what
  ``--bptt`` streaming training reads between sentences).  A model whose one
  symbol marks both ends (``Vocab.sent_boundary``: Kaldi's ``<s>``, the
  PyTorch example's ``<eos>``) reads it once, as the next sentence's ``<s>``.
* ``kaldi=True``: exactly ``compute_sentence_scores.py``: ``<s> w_1 .. w_n``
  followed by ``pad_to[k] - n - 1`` padding symbols — Kaldi re-runs the first
  hypothesis' row of its zero-padded batch, so the carried state has also read
  the padding up to the longest hypothesis of that utterance.  The padding is
  row 0 of the model's vocabulary file, ``<eps>`` in a Kaldi ``words.txt``
  (``</s>`` when the vocabulary has no ``<eps>``).

:func:`history_states` computes the end state of every entry some sentence
needs, in one batched pass: entries at the same depth of their chains are
read together (PyTorch: the model's LSTM kernel over all of them, each to its
own length; the compiled kernels and models whose LSTM runs the native cell:
the stepper position by position), so
the loop runs over chain depth, never per utterance; the hypotheses
themselves keep their batching and prefix sharing
(:mod:`rescorer.lm.prefix_scoring` starts a tree per distinct start state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Sequence, Tuple

import numpy as np

State = Tuple[Any, Any]  # (h, c) numpy arrays (the compiled kernels) or tensors (PyTorch)
KALDI_PAD = "<eps>"  # row 0 of a Kaldi words.txt: what compute_sentence_scores.py pads its batches with


@dataclass(frozen=True, eq=False)
class History:
    """Chains of earlier sentences (see the module docstring).

    ``words``: K entries (word tuples); ``after``: (K,) int64, ``after[k] < k`` (-1: zero state);
    ``pad_to``: (K,) int64 input length (``<s>`` + words + padding) under Kaldi's rule; ``kaldi``:
    read the entries as ``compute_sentence_scores.py`` does.
    """

    words: Tuple[Tuple[str, ...], ...]
    after: np.ndarray
    pad_to: np.ndarray
    kaldi: bool = False

    def __post_init__(self) -> None:
        K = len(self.words)
        assert self.after.shape == (K,) and self.pad_to.shape == (K,), (K, self.after.shape, self.pad_to.shape)
        assert (self.after < np.arange(K)).all() and (self.after >= -1).all(), "entries must follow their chains"

    def __len__(self) -> int:
        return len(self.words)

    def depth(self) -> np.ndarray:
        """Position of each entry in its chain (0: read from the zero state): (K,) int64."""
        d = np.zeros(len(self), dtype=np.int64)
        for k, a in enumerate(self.after.tolist()):  # after[k] < k: one pass
            if a >= 0:
                d[k] = d[a] + 1
        return d

    def needed(self, start: np.ndarray) -> np.ndarray:
        """Entries whose end state the sentences starting at ``start`` need (directly or up their chain): (K,) bool."""
        need = np.zeros(len(self), dtype=bool)
        need[start[start >= 0]] = True
        for k in range(len(self) - 1, -1, -1):
            if need[k] and self.after[k] >= 0:
                need[self.after[k]] = True
        return need

    def restrict(self, start: np.ndarray) -> Tuple["History", np.ndarray]:
        """Only the entries the sentences starting at ``start`` need, renumbered, and their new ``start``."""
        keep = self.needed(start)
        new = np.full(len(self) + 1, -1, dtype=np.int64)  # new[k + 1]: entry k's new number (-1 when dropped)
        new[1:][keep] = np.arange(int(keep.sum()))
        sub = History(tuple(w for w, k in zip(self.words, keep) if k), new[self.after[keep] + 1],
                      self.pad_to[keep], self.kaldi)
        return sub, new[np.asarray(start, dtype=np.int64) + 1]

    @staticmethod
    def concat(parts: Sequence["History"]) -> Tuple["History", List[int]]:
        """One history of several (all with the same ``kaldi``) and each part's entry offset."""
        offsets, words, after, pad = [], [], [], []
        n = 0
        for h in parts:
            offsets.append(n)
            words.extend(h.words)
            after.append(np.where(h.after >= 0, h.after + n, -1))
            pad.append(h.pad_to)
            n += len(h)
        assert len({h.kaldi for h in parts}) <= 1, "cannot join Kaldi-rule and admmq histories"
        cat = (lambda xs: np.concatenate(xs).astype(np.int64) if xs else np.zeros(0, dtype=np.int64))  # noqa: E731
        return History(tuple(words), cat(after), cat(pad), parts[0].kaldi if parts else False), offsets


@dataclass(frozen=True, eq=False)
class SentenceContext:
    """Per scored sentence, the :class:`History` entry its state starts after: ``start`` (N,) int64, -1 = zero."""

    history: History
    start: np.ndarray

    def take(self, index) -> "SentenceContext":
        """The context of the sentences ``index`` (same history)."""
        return SentenceContext(self.history, self.start[np.asarray(index, dtype=np.int64)])


def entry_inputs(units, history: History, keep: np.ndarray) -> List[np.ndarray]:
    """The unit ids each kept entry feeds the LSTM, ``<s>`` first (module docstring); others empty."""
    bos, eos = units.bos_id, units.eos_id
    vocab = getattr(units, "vocab", None)
    one_symbol = getattr(vocab, "sent_boundary", None) is not None
    pad = getattr(vocab, "index_of", {}).get(KALDI_PAD, eos)
    out: List[np.ndarray] = []
    for k, words in enumerate(history.words):
        if not keep[k]:
            out.append(np.zeros(0, dtype=np.int64))
            continue
        ids = [np.array([bos], dtype=np.int64), np.asarray(units.encode_sentence(words), dtype=np.int64)]
        if history.kaldi:
            n = 1 + ids[1].size
            ids.append(np.full(max(int(history.pad_to[k]) - n, 0), pad, dtype=np.int64))
        elif not one_symbol:
            ids.append(np.array([eos], dtype=np.int64))
        out.append(np.concatenate(ids))
    return out


def history_states(step_lm, units, history: History, start: np.ndarray) -> Tuple[State, int]:
    """End states of the entries the sentences starting at ``start`` need.

    ``step_lm`` is a stepper of :mod:`rescorer.lm.prefix_scoring` (the compiled kernels on numpy or
    PyTorch); one with ``read_sequences`` (PyTorch's fused LSTM) reads each depth's entries in one call.
    Returns ((L, K + 1, H) h, c) in the stepper's array type — row 0 the zero state, row ``k + 1``
    entry ``k``'s end state (zeros where not needed) — and the LSTM steps taken.
    """
    K = len(history)
    table = step_lm.new_state(K + 1)
    table[0][...] = 0
    table[1][...] = 0
    keep = history.needed(np.asarray(start, dtype=np.int64))
    if not keep.any():
        return table, 0
    inputs = entry_inputs(units, history, keep)
    depth = history.depth()
    read = getattr(step_lm, "read_sequences", None)
    steps = 0
    for d in range(int(depth[keep].max()) + 1):
        level = np.flatnonzero(keep & (depth == d))
        lens = np.array([inputs[k].size for k in level], dtype=np.int64)
        order = np.argsort(-lens, kind="stable")  # longest first: the active rows of step t are a prefix
        level, lens = level[order], lens[order]
        tokens = np.zeros((level.size, int(lens.max())), dtype=np.int64)
        for r, k in enumerate(level.tolist()):
            tokens[r, : lens[r]] = inputs[k]
        rows_from = history.after[level] + 1
        hc = read(tokens, lens, table, rows_from) if read is not None else None
        h, c = hc if hc is not None else _read_stepwise(step_lm, tokens, lens, table, rows_from)
        steps += int(lens.sum())
        table[0][:, level + 1] = h
        table[1][:, level + 1] = c
    return table, steps


def _read_stepwise(step_lm, tokens: np.ndarray, lens: np.ndarray, table: State, rows_from: np.ndarray) -> State:
    """End states of (B, T) unit rows (lengths ``lens`` (B,), non-increasing), row b read from ``table`` row
    ``rows_from[b]``, one stepper step per position: (L, B, H) h and c."""
    h_out, c_out = step_lm.new_state(tokens.shape[0])
    active = (lens[None, :] > np.arange(tokens.shape[1])[:, None]).sum(axis=1)  # rows reading at t
    prev, parents = table, rows_from
    for t in range(tokens.shape[1]):
        n = int(active[t])
        _, state = step_lm.step(np.ascontiguousarray(tokens[:n, t]), prev, np.ascontiguousarray(parents[:n]))
        done = np.flatnonzero(lens[:n] == t + 1)
        if done.size:
            h_out[:, done] = state[0][:, done]
            c_out[:, done] = state[1][:, done]
        prev, parents = state, np.arange(n)
    return h_out, c_out
