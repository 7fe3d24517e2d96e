"""Encoding LM text into flat id arrays.

The text is read by :func:`rescorer.fileio.read_sentences` (``plain`` or
``kaldi`` format).

An :class:`EncodedCorpus` keeps all sentences as one flat int64 array plus
offsets, which is compact for large corpora and slices cheaply into batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

from rescorer.errors import PathLike
from rescorer.fileio import read_sentences
from rescorer.lm.vocab import Vocab


@dataclass
class EncodedCorpus:
    """Sentences as unit ids.

    ``ids``: (total_units,) int64, all sentences back to back (no ``<s>``/``</s>``);
    ``offsets``: (n_sentences + 1,) int64, sentence ``i`` is ``ids[offsets[i]:offsets[i+1]]``.
    ``words``/``oov``: number of words and of out-of-vocabulary words.
    """

    ids: np.ndarray
    offsets: np.ndarray
    words: int = 0
    oov: int = 0

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        """Units per sentence: (n_sentences,) int64."""
        return np.diff(self.offsets)

    def sentence(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]: self.offsets[i + 1]]

    @property
    def tokens(self) -> int:
        """Predicted tokens: every unit plus one ``</s>`` per sentence."""
        return int(self.ids.size + len(self))

    def subset(self, index: Sequence[int]) -> "EncodedCorpus":
        parts = [self.sentence(int(i)) for i in index]
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        if parts:
            offsets[1:] = np.cumsum([p.size for p in parts])
        ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return EncodedCorpus(ids, offsets, words=0, oov=0)


def encode_sentences(units, sentences: Sequence[Sequence[str]]) -> EncodedCorpus:
    """Encode word sequences with ``units`` (a :class:`Vocab` or subword units)."""
    parts = []
    n_words = 0
    n_oov = 0
    for words in sentences:
        parts.append(units.encode_sentence(words))
        n_words += len(words)
        n_oov += sum(1 for w in words if units.is_oov(w))
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    if parts:
        offsets[1:] = np.cumsum([p.size for p in parts])
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return EncodedCorpus(ids.astype(np.int64, copy=False), offsets, words=n_words, oov=n_oov)


def encode_each(units, sentences: Sequence[Sequence[str]]) -> List[np.ndarray]:
    """Each sentence's unit ids, (n_i,) int64 views of one array (a word vocabulary: one lookup pass)."""
    if not isinstance(units, Vocab):  # subword units
        return [units.encode_sentence(s) for s in sentences]
    get, unk = units.index_of.get, units.unk_id
    flat = np.array([get(w, unk) for s in sentences for w in s], dtype=np.int64)
    flat[flat == units.bos_id] = unk  # <s> inside a sentence is the unknown word, as in encode_sentence
    ends = np.cumsum([len(s) for s in sentences]).tolist()
    return [flat[a:b] for a, b in zip([0] + ends[:-1], ends)]


def load_corpus(units, path: PathLike, fmt: str = "plain", max_sentences: int = 0) -> EncodedCorpus:
    """Read and encode a text file; ``max_sentences > 0`` keeps only the first ones."""
    sents = read_sentences(path, fmt)
    if max_sentences > 0:
        sents = sents[:max_sentences]
    return encode_sentences(units, [s.words for s in sents])
