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
read together (the model's LSTM kernel over all of them, each to its own
length; models whose LSTM runs the native cell step position by position), so
the loop runs over chain depth, never per utterance; the hypotheses
themselves keep their batching and prefix sharing
(:mod:`rescorer.lm.prefix_scoring` starts a tree per distinct start state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from rescorer.lm.step_lm import StepLM

State = Tuple[torch.Tensor, torch.Tensor]
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


@torch.no_grad()
def history_states(step_lm: StepLM, units, history: History, start: np.ndarray) -> Tuple[State, int]:
    """End states of the entries the sentences starting at ``start`` need.

    Returns ((L, K + 1, H) h, c) — row 0 the zero state, row ``k + 1`` entry
    ``k``'s end state (zeros where not needed) — and the LSTM steps taken.
    """
    L, H, dev = step_lm.cfg.layers, step_lm.cfg.hidden_dim, step_lm.device
    K = len(history)
    h_tab = torch.zeros(L, K + 1, H, device=dev)
    c_tab = torch.zeros(L, K + 1, H, device=dev)
    keep = history.needed(np.asarray(start, dtype=np.int64))
    if not keep.any():
        return (h_tab, c_tab), 0
    inputs = entry_inputs(units, history, keep)
    depth = history.depth()
    model = step_lm.model
    fused = not (step_lm.cfg.act_bits or model.native_lstm)
    steps = 0
    for d in range(int(depth[keep].max()) + 1):
        level = np.flatnonzero(keep & (depth == d))
        lens = np.array([inputs[k].size for k in level], dtype=np.int64)
        order = np.argsort(-lens, kind="stable")  # longest first: the active rows of step t are a prefix
        level, lens = level[order], lens[order]
        tokens = np.zeros((level.size, int(lens.max())), dtype=np.int64)
        for r, k in enumerate(level.tolist()):
            tokens[r, : lens[r]] = inputs[k]
        tok = torch.from_numpy(tokens).to(dev)
        rows_from = torch.from_numpy(history.after[level] + 1).to(dev)
        h, c = h_tab[:, rows_from].clone(), c_tab[:, rows_from].clone()
        if fused:  # the model's own LSTM kernel over the level's sequences, each to its length
            x = pack_padded_sequence(model.embed(tok), torch.from_numpy(lens), batch_first=True)
            _, (h, c) = model.lstm(x, (h, c))
        else:  # one step at a time (models that quantize the LSTM's inputs run the native cell)
            active = (lens[None, :] > np.arange(tokens.shape[1])[:, None]).sum(axis=1)  # rows reading at t
            for t in range(tokens.shape[1]):
                n = int(active[t])
                _, (h[:, :n], c[:, :n]) = step_lm.step(tok[:n, t], (h[:, :n], c[:, :n]))
        steps += int(lens.sum())
        rows_to = torch.from_numpy(level + 1).to(dev)
        h_tab[:, rows_to] = h
        c_tab[:, rows_to] = c
    return (h_tab, c_tab), steps


def start_states(table: State, start: np.ndarray, device: Optional[torch.device] = None) -> State:
    """The (L, B, H) initial states of sentences starting after entries ``start`` (B,) (-1: zeros)."""
    rows = torch.from_numpy(np.asarray(start, dtype=np.int64) + 1).to(table[0].device)
    h, c = table[0][:, rows], table[1][:, rows]
    return (h.to(device), c.to(device)) if device is not None else (h, c)
