"""Scoring word sequences with an n-gram LM file: kenlm when installed, the built-in reader otherwise.

:class:`NgramScorer` gives the same per-word scores as
:class:`rescorer.lm.scoring.NeuralScorer` (natural-log probability of every word
and of the final ``</s>``, in a :class:`~rescorer.lm.scoring.WordScores`), so the
two line up position by position for interpolation and rescoring.

Backends (``--ngram-backend``):

* ``kenlm`` — kenlm's Python module (``pip install ufal.kenlm``, or ``kenlm``):
  the reference implementation; reads ARPA text and kenlm binary files.
* ``builtin`` — :mod:`rescorer.ngram.arpa`: ARPA text (plain or gzip) only, numpy
  arrays, vectorised lookups.
* ``auto`` — kenlm if it can be imported, else built-in.

Both give the same scores (tested to 1e-4; both store float32).

Vocabulary conventions, identical for both backends:

* ``<s>`` starts every sentence as context only; ``</s>`` is scored at the end.
  ``<s>``/``</s>`` appearing *inside* a sentence are out of vocabulary.
* The unknown word is the ARPA's ``<unk>``, else its ``<UNK>``; a text token
  spelled ``<unk>`` or ``<UNK>`` is that class (in vocabulary: it is what the
  LM was trained on).  Words that are not 1-grams are scored as the unknown
  word and flagged ``oov``; with no unknown word in the file their log10
  probability is -100 (kenlm's convention).  What a rescorer charges for such
  words is decided by :class:`rescorer.ngram.mixture.OovPolicy`, not here.
* ``case``: ``keep`` (default; ARPA words are case-sensitive), or ``lower`` /
  ``upper`` to map text words before lookup (special symbols untouched), for
  an upper-case ARPA (e.g. WSJ) with lower-case text.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from rescorer.ngram.arpa import BOS, EOS, KENLM_MISSING_UNK_LOG10, UNK_SPELLINGS, ArpaModel
from rescorer.ngram.arpa_reader import read_arpa
from rescorer.errors import AdmmqError, FormatError, PathLike
from rescorer.fileio import open_binary
from rescorer.progress import progress_bar
from rescorer.lm.word_scores import WordScores

BACKENDS = ("auto", "kenlm", "builtin")
CASES = ("keep", "lower", "upper")
LN10 = math.log(10.0)
_SPECIAL = frozenset((BOS, EOS) + UNK_SPELLINGS)


def kenlm_module():
    """The kenlm module, or None when it is not installed."""
    try:
        import kenlm  # noqa: F401
    except ImportError:
        return None
    return kenlm


def resolve_backend(backend: str) -> str:
    """``auto`` -> ``kenlm`` when importable, else ``builtin``; ``kenlm`` without the module is an error."""
    if backend not in BACKENDS:
        raise AdmmqError(f"n-gram backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "builtin":
        return backend
    if kenlm_module() is None:
        if backend == "kenlm":
            raise AdmmqError("--ngram-backend kenlm: the kenlm Python module is not installed "
                             "(pip install ufal.kenlm)")
        return "builtin"
    return "kenlm"


class _Builtin:
    def __init__(self, path: PathLike, quiet: bool):
        size = Path(path).stat().st_size
        with progress_bar(f"reading {Path(path).name}", None, quiet=quiet or size < (64 << 20)) as task:
            self.model: ArpaModel = read_arpa(path, progress=task)
        self.order = self.model.order
        self.unk = self.model.unk
        self.has_unk = self.model.has_unk
        ids = dict(self.model.index)
        ids.pop(BOS, None)
        ids.pop(EOS, None)
        for u in UNK_SPELLINGS:
            ids[u] = self.model.unk_id
        self._ids = ids

    def known(self, word: str) -> bool:
        return word in self._ids

    def log10(self, sentences: Sequence[Sequence[str]], lengths: np.ndarray):
        """(total,) log10 scores (words + </s> per sentence) and (total,) oov mask."""
        m = self.model
        get = self._ids.get
        flat = [w for s in sentences for w in s]
        wid = np.fromiter((get(w, -1) for w in flat), dtype=np.int64, count=len(flat))
        oov_words = wid < 0
        wid[oov_words] = m.unk_id
        n = len(sentences)
        sent_len = lengths + 2  # <s> words </s>
        starts = np.zeros(n, dtype=np.int64)
        starts[1:] = np.cumsum(sent_len)[:-1]
        T = int(sent_len.sum())
        ids = np.empty(T, dtype=np.int64)
        is_word = np.ones(T, dtype=bool)
        is_word[starts] = False
        is_word[starts + sent_len - 1] = False
        ids[starts] = m.index[BOS]
        ids[starts + sent_len - 1] = m.index[EOS]
        ids[is_word] = wid
        history = np.arange(T, dtype=np.int64) - np.repeat(starts, sent_len)
        lp = m.log10_probs(ids, history)
        scored = history > 0
        oov = np.zeros(T, dtype=bool)
        oov[is_word] = oov_words
        return lp[scored], oov[scored]


class _Kenlm:
    def __init__(self, path: PathLike, quiet: bool):
        kenlm = kenlm_module()
        config = kenlm.Config()
        config.show_progress = not quiet and sys.stderr.isatty()
        config.arpa_complain = kenlm.ARPALoadComplain.NONE
        self.model = self._load(kenlm, path, config)
        self.order = self.model.order
        # kenlm reads either spelling, <unk> or <UNK>, as its unknown word (vocabulary index 0), and
        # gives log10 -100 to it when the file has none
        self.unk = "<unk>"
        self.has_unk = self.model.score("<unk>", bos=False, eos=False) > KENLM_MISSING_UNK_LOG10 + 1e-6

    @staticmethod
    def _load(kenlm, path: PathLike, config):
        try:
            return kenlm.Model(os.fspath(path), config)
        except (OSError, RuntimeError) as exc:  # kenlm raises OSError with its C++ message
            msg = " ".join(str(exc).split())
        if "gzip support was not compiled in" in msg:
            # prebuilt kenlm wheels (ufal.kenlm) read no gzip: load from a temporary plain copy
            with tempfile.NamedTemporaryFile(suffix=".arpa") as tmp:
                with open_binary(path) as src:
                    shutil.copyfileobj(src, tmp, 1 << 22)
                tmp.flush()
                try:
                    return kenlm.Model(tmp.name, config)
                except (OSError, RuntimeError) as exc:
                    msg = " ".join(str(exc).split())
        raise FormatError(f"kenlm cannot load this n-gram LM: {msg[:300]}", path)

    def known(self, word: str) -> bool:
        if word in UNK_SPELLINGS:
            return True
        return word not in (BOS, EOS) and word in self.model

    def log10(self, sentences: Sequence[Sequence[str]], lengths: np.ndarray):
        model, unk, known = self.model, self.unk, self.known
        out = np.empty(int(lengths.sum()) + len(sentences), dtype=np.float64)
        oov = np.zeros(out.size, dtype=bool)
        pos = 0
        for s in sentences:
            mapped: List[str] = []
            for i, w in enumerate(s):
                if w in UNK_SPELLINGS:
                    mapped.append(unk)
                elif known(w):
                    mapped.append(w)
                else:
                    mapped.append(unk)
                    oov[pos + i] = True
            k = len(s) + 1
            out[pos: pos + k] = [r[0] for r in model.full_scores(" ".join(mapped), bos=True, eos=True)]
            pos += k
        return out, oov


class NgramScorer:
    """Per-word natural-log scores of word sequences under an n-gram LM file (ARPA, gzip ARPA, kenlm binary)."""

    kind = "ngram"

    def __init__(self, path: PathLike, backend: str = "auto", case: str = "keep", quiet: bool = True):
        if case not in CASES:
            raise AdmmqError(f"n-gram case mapping must be one of {', '.join(CASES)}, got {case!r}")
        p = Path(path)
        if not p.exists():
            raise AdmmqError("no such file", p)
        if p.is_dir():
            raise AdmmqError("is a directory, expected an n-gram LM file", p)
        self.path = os.fspath(p)
        self.backend = resolve_backend(backend)
        self.case = case
        self._impl = _Kenlm(p, quiet) if self.backend == "kenlm" else _Builtin(p, quiet)

    @property
    def order(self) -> int:
        return self._impl.order

    @property
    def unk(self) -> str:
        """The unknown-word symbol: the file's (``<unk>`` or ``<UNK>``); kenlm, which reads both, says ``<unk>``."""
        return self._impl.unk

    @property
    def arpa_model(self) -> Optional[ArpaModel]:
        """The built-in backend's :class:`~rescorer.ngram.arpa.ArpaModel` (None with kenlm)."""
        return getattr(self._impl, "model", None) if self.backend == "builtin" else None

    @property
    def has_unk(self) -> bool:
        """False for a closed-vocabulary file (no unknown word; OOV log10 p = -100)."""
        return self._impl.has_unk

    def _map(self, word: str) -> str:
        if self.case == "keep" or word in _SPECIAL:
            return word
        return word.lower() if self.case == "lower" else word.upper()

    def is_oov(self, word: str) -> bool:
        """True if ``word`` is not in the n-gram's vocabulary (it would be scored as the unknown word)."""
        return not self._impl.known(self._map(word))

    def score(self, sentences: Sequence[Sequence[str]], dedup: bool = True) -> WordScores:
        """Per-word log-probabilities (natural log) of ``sentences``; see :class:`~rescorer.lm.scoring.WordScores`.

        ``dedup`` is accepted for symmetry with the neural scorer; n-gram scoring needs none.
        """
        if self.case != "keep":
            sentences = [[self._map(w) for w in s] for s in sentences]
        lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
        offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(lengths + 1)
        if not len(sentences):
            return WordScores(np.zeros(0), offsets, np.zeros(0, dtype=bool))
        lp10, oov = self._impl.log10(sentences, lengths)
        return WordScores(lp10 * LN10, offsets, oov)

    def __repr__(self) -> str:
        return f"NgramScorer({self.path!r}, order={self.order}, backend={self.backend})"
