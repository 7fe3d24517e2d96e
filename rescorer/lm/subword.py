"""SentencePiece subword units.

In subword mode the LSTM predicts SentencePiece pieces, but every score admmq
reports is still the score of a *word* sequence: each word is segmented on its
own, deterministically (no sampling), so a word sequence has exactly one piece
sequence and

    log P(w_1 .. w_n </s>) = sum over the pieces of every word + log P(</s> | ...)

is exact for that word sequence.  Per-word scores (needed for interpolation
with an n-gram) are the sums of each word's pieces.

The SentencePiece model itself (its serialized bytes) is stored inside the
checkpoint, so loading needs no extra files.
"""

from __future__ import annotations

import io
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from rescorer.errors import AdmmqError, FormatError, PathLike
from rescorer.lm.vocab import BOS, EOS, UNK, Vocab


def _processor(model_proto: bytes):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    try:
        sp.LoadFromSerializedProto(model_proto)
    except Exception as exc:  # sentencepiece raises RuntimeError/OSError with C++ text
        raise FormatError(f"not a SentencePiece model ({exc})") from None
    return sp


class SubwordUnits:
    """Maps words to SentencePiece pieces and pieces to LSTM ids.

    ``vocab`` follows the layout of :class:`rescorer.lm.vocab.Vocab`
    (``</s>`` = 0, ``<unk>`` = 1, pieces, ``<s>`` last).
    """

    kind = "spm"

    def __init__(self, model_proto: bytes):
        self.model_proto = bytes(model_proto)
        self._sp = _processor(self.model_proto)
        n = self._sp.get_piece_size()
        pieces = [self._sp.id_to_piece(i) for i in range(n)]
        keep = [p for i, p in enumerate(pieces)
                if not (self._sp.is_control(i) or self._sp.is_unknown(i)) and p not in (BOS, EOS, UNK)]
        self.vocab = Vocab(keep, unk=UNK)
        # sentencepiece id -> our id (control/unknown pieces -> <unk>)
        self._map = np.array([self.vocab.index(p) if p in self.vocab else self.vocab.unk_id for p in pieces],
                             dtype=np.int64)
        self._cache: Dict[str, np.ndarray] = {}

    # ----------------------------------------------------------- properties
    @property
    def eos_id(self) -> int:
        return self.vocab.eos_id

    @property
    def unk_id(self) -> int:
        return self.vocab.unk_id

    @property
    def bos_id(self) -> int:
        return self.vocab.bos_id

    @property
    def output_size(self) -> int:
        return self.vocab.output_size

    def __len__(self) -> int:
        return len(self.vocab)

    # -------------------------------------------------------------- encoding
    def _word(self, word: str) -> np.ndarray:
        ids = self._cache.get(word)
        if ids is None:
            ids = self._map[np.asarray(self._sp.encode(word, out_type=int), dtype=np.int64)]
            if ids.size == 0:  # sentencepiece drops pure whitespace; keep the word visible
                ids = np.array([self.vocab.unk_id], dtype=np.int64)
            if len(self._cache) < 1_000_000:
                self._cache[word] = ids
        return ids

    def encode_sentence(self, words: Sequence[str]) -> np.ndarray:
        """Piece ids of ``words`` (no ``<s>``/``</s>``): (n_pieces,) int64."""
        if not words:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([self._word(w) for w in words])

    def units_per_word(self, words: Sequence[str]) -> Optional[np.ndarray]:
        """Number of pieces of each word: (n_words,) int64."""
        return np.array([len(self._word(w)) for w in words], dtype=np.int64)

    def is_oov(self, word: str) -> bool:
        """A word is out of vocabulary when one of its pieces is the unknown piece."""
        return bool((self._word(word) == self.vocab.unk_id).any())

    # ----------------------------------------------------------- serialising
    def to_state(self) -> dict:
        import torch

        return {"kind": self.kind, "model_proto": torch.frombuffer(bytearray(self.model_proto), dtype=torch.uint8)}

    @classmethod
    def from_state(cls, state: dict) -> "SubwordUnits":
        proto = state["model_proto"]
        return cls(bytes(proto.numpy().tobytes()) if hasattr(proto, "numpy") else bytes(proto))

    @classmethod
    def from_file(cls, path: PathLike) -> "SubwordUnits":
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            raise AdmmqError("no such file", path) from None
        try:
            return cls(data)
        except FormatError as exc:
            raise FormatError(exc.message, path) from None

    @classmethod
    def train(cls, sentences: Iterable[Sequence[str]], vocab_size: int, model_type: str = "unigram",
              seed_sentences: int = 2_000_000) -> "SubwordUnits":
        """Train a SentencePiece model on word sequences (in memory)."""
        import sentencepiece as spm

        lines: List[str] = []
        for i, words in enumerate(sentences):
            if i >= seed_sentences:
                break
            if words:
                lines.append(" ".join(words))
        if not lines:
            raise AdmmqError("no text to train a SentencePiece model on")
        buf = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines), model_writer=buf, vocab_size=vocab_size,
                model_type=model_type, character_coverage=1.0, bos_id=-1, eos_id=-1, unk_id=0,
                user_defined_symbols=[], hard_vocab_limit=False, minloglevel=2,
                split_by_whitespace=True, num_threads=1,
            )
        except RuntimeError as exc:
            raise AdmmqError(f"SentencePiece training failed: {exc}") from None
        return cls(buf.getvalue())


def units_from_state(state: dict):
    """Rebuild word or subword units stored by ``to_state()``."""
    kind = state.get("kind")
    if kind == "word":
        return Vocab.from_state(state)
    if kind == "spm":
        return SubwordUnits.from_state(state)
    raise FormatError(f"unknown unit kind {kind!r} in stored vocabulary")
