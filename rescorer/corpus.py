"""Reading LM text and encoding it into flat id arrays.

Two text formats:

* ``plain`` — one sentence a line (PTB style); blank lines are skipped;
* ``kaldi`` — Kaldi ``text`` files, ``<utt-id> w1 w2 ...`` (a line with only the
  id is an empty sentence).

An :class:`EncodedCorpus` keeps all sentences as one flat int64 array plus
offsets, which is compact for large corpora and slices cheaply into batches.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .errors import AdmmqError, FormatError, PathLike
from .fileio import iter_lines

TEXT_FORMATS = ("plain", "kaldi")


@dataclass(frozen=True)
class Sentence:
    """One sentence of a text file: its key (utterance id, or the line number), words and line."""

    key: str
    words: Tuple[str, ...]
    line: int


def iter_sentences(path: PathLike, fmt: str = "plain") -> Iterator[Sentence]:
    """Yield the sentences of ``path`` in file order."""
    if fmt not in TEXT_FORMATS:
        raise ValueError(f"text format must be one of {TEXT_FORMATS}, got {fmt!r}")
    for lineno, line in iter_lines(path):
        fields = line.split()
        if fmt == "plain":
            if fields:
                yield Sentence(str(lineno), tuple(fields), lineno)
        else:
            if not fields:
                continue
            yield Sentence(fields[0], tuple(fields[1:]), lineno)


def read_sentences(path: PathLike, fmt: str = "plain", allow_empty: bool = False) -> List[Sentence]:
    """All sentences of ``path``; an empty file is an error unless ``allow_empty``."""
    sents = list(iter_sentences(path, fmt))
    if not sents and not allow_empty:
        raise AdmmqError("no sentences in text file", path)
    if fmt == "kaldi":
        seen = {}
        for s in sents:
            if s.key in seen:
                raise FormatError(f"utterance id {s.key!r} already used on line {seen[s.key]}", path, s.line)
            seen[s.key] = s.line
    return sents


def kaldi_text_notice(path: PathLike, known: Optional[Callable[[str], bool]] = None,
                      sample: int = 200) -> Optional[str]:
    """A one-line notice when ``path``, about to be read as plain text, looks like a Kaldi ``text`` file.

    It does when, on most of its first ``sample`` sentences, the first field looks like an utterance id
    (it holds a digit; no two lines share it) and is not a word of the LM (``known(word)`` false; without
    ``known``: the word appears nowhere else in those lines).  ``None`` otherwise, and for a file that
    cannot be read twice (a pipe).
    """
    p = Path(path)
    if not p.is_file():
        return None
    heads: List[str] = []
    rest: Counter = Counter()
    for _, line in iter_lines(p):
        fields = line.split()
        if fields:
            heads.append(fields[0])
            rest.update(fields[1:])
            if len(heads) >= sample:
                break
    if not heads or len(set(heads)) != len(heads):
        return None
    is_known = known if known is not None else (lambda w: w in rest)  # noqa: E731
    ids = [h for h in heads if any(c.isdigit() for c in h) and not is_known(h)]
    if 2 * len(ids) <= len(heads):
        return None
    return (f"{p}: looks like a Kaldi text file (the first field, e.g. {ids[0]!r}, is an utterance id the LM does "
            f"not know on {len(ids)} of the first {len(heads)} lines); reading it as plain text with the ids as "
            f"words: pass --text-format kaldi to drop them, or --text-format plain to keep this reading")


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


def load_corpus(units, path: PathLike, fmt: str = "plain", max_sentences: int = 0) -> EncodedCorpus:
    """Read and encode a text file; ``max_sentences > 0`` keeps only the first ones."""
    sents = read_sentences(path, fmt)
    if max_sentences > 0:
        sents = sents[:max_sentences]
    return encode_sentences(units, [s.words for s in sents])
