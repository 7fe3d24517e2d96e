"""Word vocabulary: symbols, ids, ``<unk>``, sentence start/end.

Id layout (the same for every LM admmq trains):

* ids ``0 .. V-2`` are the output units of the softmax; ``</s>`` is always id 0
  and the unknown-word symbol (``<unk>`` by default) id 1;
* id ``V-1`` is ``<s>``, which is only ever an input (it is never predicted),
  so the softmax has ``V-1`` outputs: for PTB exactly the standard 10,000
  (9,999 words including ``<unk>``, plus ``</s>``).

Words outside the vocabulary map to the unknown-word id.  A vocabulary is built
from training text (most frequent first, ties in byte order, optionally capped),
or read from a Kaldi ``words.txt`` symbol table (``<eps>``, ``#0``-style
disambiguation symbols and ``<s>`` are dropped, the table's order is kept).
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from rescorer.errors import FormatError, MismatchError, PathLike
from rescorer.fileio import atomic_open, iter_lines

BOS = "<s>"
EOS = "</s>"
UNK = "<unk>"
_KALDI_SKIP = {"<eps>", "<s>"}


class Vocab:
    """A word vocabulary with ``</s>`` = 0, unknown word = 1 and ``<s>`` = ``len(self) - 1``.

    ``sent_boundary``: for a model imported from elsewhere whose one symbol marks both sentence ends
    (Kaldi ``steps/pytorchnn``'s ``<s>``, the PyTorch example's ``<eos>``), that symbol; ``</s>`` and
    ``<s>`` are then its output row and its embedding.  ``None``: separate ``<s>`` and ``</s>``.
    """

    kind = "word"

    def __init__(self, words: Sequence[str], unk: str = UNK, sent_boundary: Optional[str] = None):
        self.sent_boundary = sent_boundary
        seen = set()
        symbols = [EOS, unk]
        for w in words:
            if w in (EOS, unk, BOS):
                continue
            if w in seen:
                raise ValueError(f"duplicate word {w!r} in vocabulary")
            seen.add(w)
            symbols.append(w)
        symbols.append(BOS)
        self.symbols: List[str] = symbols
        self.unk = unk
        self.index_of: Dict[str, int] = {w: i for i, w in enumerate(symbols)}

    # ------------------------------------------------------------------ ids
    @property
    def eos_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    @property
    def bos_id(self) -> int:
        return len(self.symbols) - 1

    @property
    def vocab(self) -> "Vocab":
        """The word vocabulary itself (word units and subword units share this attribute)."""
        return self

    @property
    def output_size(self) -> int:
        """Number of softmax outputs (every symbol but ``<s>``)."""
        return len(self.symbols) - 1

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, word: str) -> bool:
        return word in self.index_of and word != BOS

    def index(self, word: str) -> int:
        """Id of ``word``; the unknown-word id if it is out of the vocabulary."""
        i = self.index_of.get(word, 1)
        return 1 if i == self.bos_id else i

    def is_oov(self, word: str) -> bool:
        """True if ``word`` is not a vocabulary word (it would be scored as the unknown word)."""
        return word not in self.index_of or word == BOS

    # -------------------------------------------------------- units protocol
    def encode_sentence(self, words: Sequence[str]) -> np.ndarray:
        """Ids of ``words`` (no ``<s>``/``</s>``): (n,) int64."""
        get = self.index_of.get
        bos = self.bos_id
        ids = [get(w, 1) for w in words]
        return np.array([1 if i == bos else i for i in ids], dtype=np.int64)

    def units_per_word(self, words: Sequence[str]) -> Optional[np.ndarray]:
        """How many units each word is encoded as; ``None`` means one unit per word."""
        return None

    # ------------------------------------------------------------ building
    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], max_size: Optional[int] = None,
              min_count: int = 1, unk: str = UNK) -> "Vocab":
        """Most frequent words first (ties in byte order).

        ``max_size`` caps the number of softmax outputs (including ``</s>`` and
        the unknown word); ``min_count`` drops rarer words.
        """
        counts: Counter = Counter()
        for words in sentences:
            counts.update(words)
        for special in (EOS, BOS, unk):
            counts.pop(special, None)
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            if max_size < 3:
                raise ValueError(f"vocabulary size cap must be >= 3, got {max_size}")
            ranked = ranked[: max_size - 2]
        return cls(ranked, unk=unk)

    @classmethod
    def from_words_txt(cls, path: PathLike, unk: str = UNK) -> "Vocab":
        """Read a Kaldi symbol table (``word id`` per line)."""
        entries = []
        ids_seen: Dict[int, int] = {}
        for lineno, line in iter_lines(path):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise FormatError(f"expected 'word integer-id', got {line!r}", path, lineno)
            word, sid = fields
            try:
                num = int(sid)
            except ValueError:
                raise FormatError(f"id {sid!r} is not an integer", path, lineno) from None
            if num in ids_seen:
                raise FormatError(f"id {num} already used on line {ids_seen[num]}", path, lineno)
            ids_seen[num] = lineno
            entries.append((num, word))
        if not entries:
            raise FormatError("symbol table is empty", path)
        entries.sort()
        words = [w for _, w in entries if w not in _KALDI_SKIP and not w.startswith("#")]
        if len(set(words)) != len(words):
            dup = next(w for w in words if words.count(w) > 1)
            raise FormatError(f"word {dup!r} appears twice", path)
        return cls(words, unk=unk)

    def write_words_txt(self, path: PathLike) -> None:
        """Write a Kaldi-style symbol table: ``<eps> 0`` then our symbols with ids shifted by one."""
        with atomic_open(path) as fh:
            fh.write("<eps> 0\n")
            for i, w in enumerate(self.symbols, 1):
                fh.write(f"{w} {i}\n")

    # --------------------------------------------------------- serialising
    def to_state(self) -> dict:
        state = {"kind": self.kind, "symbols": list(self.symbols), "unk": self.unk}
        if self.sent_boundary is not None:
            state["sent_boundary"] = self.sent_boundary
        return state

    @classmethod
    def from_state(cls, state: dict) -> "Vocab":
        symbols = list(state["symbols"])
        if len(symbols) < 3 or symbols[0] != EOS or symbols[-1] != BOS or symbols[1] != state["unk"]:
            raise MismatchError("stored vocabulary does not have the </s>, <unk>, ..., <s> layout")
        boundary = state.get("sent_boundary")
        if boundary is not None and not isinstance(boundary, str):
            raise MismatchError(f"stored sentence boundary {boundary!r} is not a symbol")
        return cls(symbols[2:-1], unk=state["unk"], sent_boundary=boundary)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Vocab) and self.symbols == other.symbols and self.unk == other.unk
                and self.sent_boundary == other.sent_boundary)

    def __repr__(self) -> str:
        return f"Vocab({self.output_size} outputs, unk={self.unk!r})"
