"""Mini-batches for training and scoring.

Sentence-level batches (the paper's setup, and how rescoring scores
hypotheses): every sentence starts from a zero LSTM state, the input is
``<s> w1 .. wn`` and the target ``w1 .. wn </s>``.  Sentences of a batch are
padded at the end; padded input positions hold ``</s>`` and padded targets
``IGNORE`` (-100), so they never reach the loss.  Because the LSTM is causal,
padding after a sentence cannot change that sentence's outputs.

Streaming (``--bptt``) batches cut the corpus, as one long stream
``<s> w1 .. wn </s> <s> ...``, into ``batch_size`` parallel streams and chunks
of ``bptt`` steps; the LSTM state is carried from chunk to chunk.  Targets
that would be ``<s>`` are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence

import numpy as np
import torch

from rescorer.lm.corpus import EncodedCorpus

IGNORE = -100


@dataclass
class Batch:
    """``inputs``/``targets``: (B, T) int64; ``index``: which sentences (B,) (None for streams).

    ``norm`` is what the summed loss is divided by before the gradient step:
    the number of predicted tokens (``loss_norm="token"``) or of sentences /
    streams (``"sentence"``: each sentence's log-likelihood summed, averaged
    over the batch — the convention under which the paper's SGD lr 1 works).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    ntokens: int
    index: Optional[np.ndarray] = None
    carry_state: bool = False
    norm: float = 0.0

    def __post_init__(self) -> None:
        if not self.norm:
            self.norm = float(self.ntokens)

    def normalised(self, loss_norm: str) -> "Batch":
        """This batch with ``norm`` set for ``loss_norm`` (``token`` or ``sentence``)."""
        if loss_norm == "token":
            self.norm = float(self.ntokens)
        elif loss_norm == "sentence":
            self.norm = float(self.inputs.shape[0])
        else:
            raise ValueError(f"loss_norm must be 'token' or 'sentence', got {loss_norm!r}")
        return self

    def to(self, device) -> "Batch":
        if self.inputs.device == torch.device(device):
            return self
        return Batch(self.inputs.to(device, non_blocking=True), self.targets.to(device, non_blocking=True),
                     self.ntokens, self.index, self.carry_state, self.norm)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The order sentences are visited in an epoch: a permutation fixed by (seed, epoch)."""
    if not shuffle:
        return np.arange(n)
    rng = np.random.default_rng([seed, epoch])
    return rng.permutation(n)


def make_batch(corpus: EncodedCorpus, index: Sequence[int], bos: int, eos: int) -> Batch:
    """Pad the sentences ``index`` of ``corpus`` into one sentence-level batch."""
    index = np.asarray(index, dtype=np.int64)
    starts = corpus.offsets[index]
    lens = corpus.offsets[index + 1] - starts
    T = int(lens.max()) + 1 if len(index) else 1
    B = len(index)
    inputs = np.full((B, T), eos, dtype=np.int64)
    targets = np.full((B, T), IGNORE, dtype=np.int64)
    inputs[:, 0] = bos
    for b in range(B):
        n = int(lens[b])
        seq = corpus.ids[starts[b]: starts[b] + n]
        inputs[b, 1: n + 1] = seq
        targets[b, :n] = seq
        targets[b, n] = eos
    return Batch(torch.from_numpy(inputs), torch.from_numpy(targets), int(lens.sum()) + B, index)


def sentence_batches(corpus: EncodedCorpus, batch_size: int, order: np.ndarray, bos: int, eos: int,
                     start: int = 0) -> Iterator[Batch]:
    """Consecutive groups of ``batch_size`` sentences of ``order``, from batch number ``start``."""
    for b0 in range(start * batch_size, len(order), batch_size):
        yield make_batch(corpus, order[b0: b0 + batch_size], bos, eos)


def num_sentence_batches(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size


def length_sorted_batches(corpus: EncodedCorpus, batch_tokens: int, bos: int, eos: int,
                          max_sentences: int = 4096) -> Iterator[Batch]:
    """Batches for scoring: sentences sorted by length, each batch at most ``batch_tokens`` padded tokens.

    A sentence longer than ``batch_tokens`` forms a batch of its own.
    """
    lens = corpus.lengths() + 1
    order = np.argsort(-lens, kind="stable")
    i = 0
    n = len(order)
    while i < n:
        T = int(lens[order[i]])
        k = max(1, min(max_sentences, batch_tokens // max(T, 1)))
        yield make_batch(corpus, order[i: i + k], bos, eos)
        i += k


def stream_batches(corpus: EncodedCorpus, order: np.ndarray, batch_size: int, bptt: int, bos: int, eos: int,
                   start: int = 0) -> Iterator[Batch]:
    """Streaming batches (B = ``batch_size`` streams, chunks of ``bptt`` steps) over sentences in ``order``."""
    parts: List[np.ndarray] = []
    for i in order:
        parts.append(np.array([bos], dtype=np.int64))
        parts.append(corpus.sentence(int(i)))
        parts.append(np.array([eos], dtype=np.int64))
    stream = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    per = (len(stream) - 1) // batch_size
    if per < 1:
        return
    x = stream[: per * batch_size].reshape(batch_size, per)
    y = stream[1: per * batch_size + 1].reshape(batch_size, per).copy()
    y[y == bos] = IGNORE
    for k, t0 in enumerate(range(0, per, bptt)):
        if k < start:
            continue
        xi = torch.from_numpy(np.ascontiguousarray(x[:, t0: t0 + bptt]))
        yi = torch.from_numpy(np.ascontiguousarray(y[:, t0: t0 + bptt]))
        yield Batch(xi, yi, int((yi != IGNORE).sum()), None, carry_state=True)


def num_stream_batches(corpus: EncodedCorpus, batch_size: int, bptt: int) -> int:
    total = int(corpus.ids.size + 2 * len(corpus))
    per = (total - 1) // batch_size
    return (per + bptt - 1) // bptt if per >= 1 else 0
