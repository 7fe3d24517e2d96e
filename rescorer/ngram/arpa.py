"""ARPA back-off n-gram language models: the compact built-in model and its scorer.

Files are read by :mod:`rescorer.ngram.arpa_reader` (:func:`~rescorer.ngram.arpa_reader.read_arpa`).

The ARPA format (plain text, or gzip)::

    \\data\\
    ngram 1=<count>
    ngram 2=<count>
    ...
    \\1-grams:
    <log10 p(w)>        w        [<log10 back-off(w)>]
    ...
    \\2-grams:
    <log10 p(w2|w1)>    w1 w2    [<log10 back-off(w1 w2)>]
    ...
    \\end\\

Any order is read; the counts in ``\\data\\`` are checked against the entries
read, and every malformed line (bad count, missing section, non-numeric or
positive log-probability, an n-gram whose words are not 1-grams, a duplicate)
raises :class:`~rescorer.errors.FormatError` naming the line.

Scoring follows the ARPA back-off definition exactly.  For a word ``w`` after
the history ``h = h_1 .. h_k`` (``k`` = min(order - 1, words since ``<s>``))::

    log p(w | h) = log p*(h w)                     if the n-gram "h w" is listed
                 = log bo(h) + log p(w | h_2..h_k)  otherwise (bo = 1 when h is not listed)

i.e. the probability of the longest listed n-gram ending in ``w`` plus the
back-off weights of every longer history.  Words that are not 1-grams are
scored as the unknown word (``<unk>``, or ``<UNK>``); a model without one gets
kenlm's convention, log10 p(<unk>) = -100.

Memory layout (16 bytes per n-gram, no Python object per n-gram): the 1-grams
are word ids ``0 .. V-1``; the n-grams of order ``n >= 2`` are one sorted
int64 array of keys ``index_of_prefix * V + id(last word)``, where
``index_of_prefix`` is the position of the (n-1)-gram prefix in order
``n - 1``'s array, with float32 log10 probabilities and back-off weights in
the same order.  Lookups are vectorised binary searches (``np.searchsorted``)
over all positions of all sentences at once.  An n-gram whose prefix is not
listed (files written by some pruning tools) gets the prefix added as a
placeholder with no probability of its own (it backs off) and back-off 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

UNK_SPELLINGS = ("<unk>", "<UNK>")
BOS = "<s>"
EOS = "</s>"
KENLM_MISSING_UNK_LOG10 = -100.0


@dataclass
class ArpaModel:
    """A back-off n-gram LM held in flat numpy arrays (see the module docstring).

    ``logp[n]``/``bow[n]``: (count_n,) float32 log10 probability / back-off of the
    n-grams of order ``n`` (index 0 unused; ``logp[1]`` is indexed by word id).
    ``keys[n]`` (n >= 2): (count_n,) int64, sorted.  NaN in ``logp`` marks a
    placeholder prefix (see :attr:`placeholders`).
    """

    path: str
    words: List[str]
    logp: List[Optional[np.ndarray]]
    bow: List[Optional[np.ndarray]]
    keys: List[Optional[np.ndarray]]
    declared: List[int]
    unk: str = "<unk>"
    has_unk: bool = True
    placeholders: int = 0
    index: Dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = {w: i for i, w in enumerate(self.words)}

    @property
    def order(self) -> int:
        return len(self.logp) - 1

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    @property
    def unk_id(self) -> int:
        return self.index[self.unk]

    def counts(self) -> List[int]:
        """N-grams held per order (1..order), placeholders included."""
        return [len(self.logp[n]) for n in range(1, self.order + 1)]

    def nbytes(self) -> int:
        """Bytes held by the numpy arrays."""
        return int(sum(a.nbytes for arrays in (self.logp, self.bow, self.keys) for a in arrays if a is not None))

    # ------------------------------------------------------------ lookup
    def find(self, n: int, prefix: np.ndarray, word: np.ndarray) -> np.ndarray:
        """Index of the n-grams ``(prefix n-1-gram, word)`` in order ``n``, -1 where not listed.

        ``prefix``: (m,) int64 indices into order ``n - 1``; ``word``: (m,) int64 word ids.
        """
        keys = self.keys[n]
        if keys.size == 0 or prefix.size == 0:
            return np.full(prefix.shape, -1, dtype=np.int64)
        q = prefix.astype(np.int64) * self.vocab_size + word
        pos = np.searchsorted(keys, q)
        np.minimum(pos, keys.size - 1, out=pos)
        return np.where(keys[pos] == q, pos, -1)

    def ids(self, words: Sequence[str]) -> np.ndarray:
        """Word ids, the unknown word's for words that are not 1-grams: (n,) int64."""
        get, unk = self.index.get, self.unk_id
        return np.fromiter((get(w, unk) for w in words), dtype=np.int64, count=len(words))

    def log10_probs(self, ids: np.ndarray, history: np.ndarray) -> np.ndarray:
        """log10 p(w_t | history) for every position of a flat token array.

        ``ids``: (T,) int64 word ids, sentences back to back, each ``<s> w_1 .. w_n </s>``;
        ``history``: (T,) int64, the number of tokens before ``t`` in its sentence
        (0 at each ``<s>``).  Returns (T,) float64; entries where ``history == 0`` are 0.
        """
        T = ids.size
        N = self.order
        idx: List[np.ndarray] = [np.empty(0, np.int64), ids.astype(np.int64)]
        for n in range(2, N + 1):
            prev = np.empty(T, dtype=np.int64)
            prev[0] = -1
            prev[1:] = idx[n - 1][:-1]
            ok = (prev >= 0) & (history >= n - 1)
            cur = np.full(T, -1, dtype=np.int64)
            cur[ok] = self.find(n, prev[ok], ids[ok])
            idx.append(cur)
        lp = self.logp[1][ids].astype(np.float64)
        match = np.ones(T, dtype=np.int64)
        for n in range(2, N + 1):
            hit = idx[n] >= 0
            vals = np.full(T, np.nan, dtype=np.float64)
            vals[hit] = self.logp[n][idx[n][hit]]
            real = ~np.isnan(vals)
            lp[real] = vals[real]
            match[real] = n
        # back-off weights of the histories longer than the match: lengths j = match .. min(N-1, history)
        for j in range(1, N):
            ctx = np.empty(T, dtype=np.int64)
            ctx[0] = -1
            ctx[1:] = idx[j][:-1]
            use = (ctx >= 0) & (history >= j) & (match <= j)
            lp[use] += self.bow[j][ctx[use]]
        lp[history == 0] = 0.0
        return lp


# ====================================================================== reading
def build_model(path, words: List[str], raw_ids: List[np.ndarray], raw_lp: List[np.ndarray],
                raw_bo: List[np.ndarray], declared: List[int], starts: List[int],
                error: Callable[[str, Optional[int]], Exception]) -> ArpaModel:
    """Index parsed sections (see the module docstring); adds placeholder prefixes where needed.

    ``raw_ids[n]``: (count_n, n) int32 word ids of the n-grams in file order;
    ``raw_lp[n]``/``raw_bo[n]``: (count_n,) float32 log10 probability / back-off;
    ``starts[n]``: the file line of the first n-gram (to name a duplicate's line);
    ``error(message, line)`` makes the exception to raise.
    """
    order = len(declared)
    V = len(words)
    index = {w: i for i, w in enumerate(words)}
    unk = next((u for u in UNK_SPELLINGS if u in index), None)
    lp1, bo1 = raw_lp[1], raw_bo[1]
    has_unk = unk is not None
    if not has_unk:  # kenlm's convention for a closed-vocabulary model
        unk = UNK_SPELLINGS[0]
        words = words + [unk]
        index[unk] = V
        V += 1
        lp1 = np.append(lp1, np.float32(KENLM_MISSING_UNK_LOG10))
        bo1 = np.append(bo1, np.float32(0.0))
    keys: List[Optional[np.ndarray]] = [None, None]
    logp: List[Optional[np.ndarray]] = [None, lp1]
    bow: List[Optional[np.ndarray]] = [None, bo1]
    placeholders = 0
    ids_n = list(raw_ids)
    lp_n = list(raw_lp)
    bo_n = list(raw_bo)
    n = 2
    while n <= order:
        ids = ids_n[n]
        prefix = ids[:, 0].astype(np.int64)
        missing_at = None
        for j in range(2, n):
            nxt = _find_in(keys[j], V, prefix, ids[:, j - 1].astype(np.int64))
            if (nxt < 0).any():
                missing_at = j
                break
            prefix = nxt
        if missing_at is not None:  # add the missing (n-1)-gram prefixes and re-index from order n-1
            rows = np.unique(ids[:, : n - 1], axis=0)
            have = _rows_present(keys, V, rows) if n - 1 >= 2 else np.ones(len(rows), bool)
            add = rows[~have]
            placeholders += len(add)
            ids_n[n - 1] = np.concatenate([ids_n[n - 1], add.astype(np.int32)])
            lp_n[n - 1] = np.concatenate([lp_n[n - 1], np.full(len(add), np.nan, np.float32)])
            bo_n[n - 1] = np.concatenate([bo_n[n - 1], np.zeros(len(add), np.float32)])
            keys = keys[: n - 1]
            logp = logp[: n - 1]
            bow = bow[: n - 1]
            n -= 1
            continue
        key = prefix * V + ids[:, n - 1].astype(np.int64)
        perm = np.argsort(key, kind="stable")
        key = key[perm]
        dup = np.flatnonzero(key[1:] == key[:-1])
        if dup.size:
            a, b = sorted((int(perm[dup[0]]), int(perm[dup[0] + 1])))
            gram = " ".join(words[i] for i in ids[b])
            if b < declared[n - 1]:
                raise error(f"duplicate {n}-gram {gram!r} (first on line {starts[n] + a})", starts[n] + b)
            raise error(f"duplicate {n}-gram {gram!r}", starts[n] + a)
        keys.append(key)
        logp.append(lp_n[n][perm])
        bow.append(bo_n[n][perm] if n < order else None)
        n += 1
    return ArpaModel(path=str(path), words=words, logp=logp, bow=bow, keys=keys, declared=list(declared),
                     unk=unk, has_unk=has_unk, placeholders=placeholders, index=index)


def _find_in(keys: np.ndarray, V: int, prefix: np.ndarray, word: np.ndarray) -> np.ndarray:
    if keys is None or keys.size == 0:
        return np.full(prefix.shape, -1, dtype=np.int64)
    q = prefix * V + word
    pos = np.searchsorted(keys, q)
    np.minimum(pos, keys.size - 1, out=pos)
    return np.where(keys[pos] == q, pos, -1)


def _rows_present(keys, V: int, rows: np.ndarray) -> np.ndarray:
    """Which (m, k) id rows (k >= 2) are listed k-grams."""
    prefix = rows[:, 0].astype(np.int64)
    ok = np.ones(len(rows), dtype=bool)
    for j in range(2, rows.shape[1] + 1):
        nxt = _find_in(keys[j], V, np.where(ok, prefix, 0), rows[:, j - 1].astype(np.int64))
        ok &= nxt >= 0
        prefix = np.where(ok, nxt, 0)
    return ok


