"""N-best lists in memory (:class:`NBestList`) and admmq's single-file form, both ways.

**Single-file form** — one hypothesis per line::

    # admmq-nbest costs: acwt lmwt.nolm lmwt.withlm lmwt.lmonly
    <utt>-<n> <cost> <cost> <cost> <cost> <word> <word> ...

The optional first line names the cost columns that follow the key (any
names; the four above are Kaldi's, others are carried along).  Without it a
line is ``<utt>-<n> <acwt> <lmwt.nolm> <words...>``: acoustic cost, then the
graph cost *without* the first-pass LM.  Blank lines are skipped; ``#`` lines
other than the first are an error.

Hypotheses are grouped by utterance (utterances in order of first
appearance, hypotheses by rank).  Malformed input is an error naming the file
and line; an utterance whose hypotheses are all empty is kept (its best
hypothesis is empty) and counted in :attr:`NBestList.warnings`.

The Kaldi n-best directory form, and the readers taking either form, are
:mod:`rescorer.nbest.kaldi_dir`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from rescorer.errors import FormatError, PathLike
from rescorer.fileio import atomic_open, iter_lines
from rescorer.nbest.kaldi_archive import Entry, format_float

COSTS = ("acwt", "lmwt.nolm", "lmwt.withlm", "lmwt.lmonly")
HEADER = "# admmq-nbest costs:"
DEFAULT_COLUMNS = ("acwt", "lmwt.nolm")


def split_key(key: str) -> Tuple[str, int]:
    """``"<utt>-<n>"`` -> ``(utt, n)``; ValueError for a key without a positive ``-<n>`` suffix."""
    utt, sep, n = key.rpartition("-")
    if not sep or not utt or not n.isdigit() or int(n) < 1:
        raise ValueError(f"key {key!r} is not '<utterance>-<n>' with n a positive integer")
    return utt, int(n)


@dataclass
class NBestList:
    """N hypotheses of U utterances, grouped by utterance and ordered by rank.

    ``keys``/``words``: (N,) lists; ``ranks``: (N,) int64; ``costs``: name -> (N,)
    float64; ``utts``: (U,) utterance ids; ``offsets``: (U+1,) int64, utterance
    ``u`` owns hypotheses ``offsets[u]:offsets[u+1]``.
    """

    keys: List[str]
    words: List[Tuple[str, ...]]
    ranks: np.ndarray
    costs: Dict[str, np.ndarray]
    utts: List[str]
    offsets: np.ndarray
    source: str = ""
    symbols: Optional[Dict[str, int]] = None
    warnings: List[str] = field(default_factory=list)
    all_empty: int = 0  # utterances whose hypotheses are all empty

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def num_utterances(self) -> int:
        return len(self.utts)

    def utt_index(self) -> np.ndarray:
        """Utterance of each hypothesis: (N,) int64."""
        return np.repeat(np.arange(len(self.utts)), np.diff(self.offsets))

    def lengths(self) -> np.ndarray:
        """Words per hypothesis: (N,) int64."""
        return np.array([len(w) for w in self.words], dtype=np.int64)

    def cost(self, name: str) -> Optional[np.ndarray]:
        return self.costs.get(name)

    def cost_names(self) -> List[str]:
        """Cost columns, Kaldi's first (in :data:`COSTS` order), then the others as added."""
        return [c for c in COSTS if c in self.costs] + [c for c in self.costs if c not in COSTS]

    def with_costs(self, extra: Dict[str, np.ndarray]) -> "NBestList":
        """A copy with more cost columns (each (N,))."""
        costs = dict(self.costs)
        for name, values in extra.items():
            values = np.asarray(values, dtype=np.float64)
            assert values.shape == (len(self),), (name, values.shape, len(self))
            costs[name] = values
        return NBestList(self.keys, self.words, self.ranks, costs, self.utts, self.offsets, self.source,
                         self.symbols, list(self.warnings), self.all_empty)


def build_nbest(keys: Sequence[str], words: Sequence[Tuple[str, ...]], costs: Dict[str, np.ndarray],
                where: Optional[Sequence[Entry]] = None, source: str = "",
                symbols: Optional[Dict[str, int]] = None) -> NBestList:
    """Group hypotheses by utterance (first appearance), rank order inside; check keys.

    ``where`` locates each key in its file for error messages; without it (keys made
    by admmq itself) an error names ``source``.
    """
    def place(i: int) -> Entry:
        return where[i] if where is not None else Entry(keys[i], None, source)

    if not keys:
        raise FormatError("no hypotheses (empty n-best list)", source)
    utt_of, rank_of = [], []
    seen: Dict[str, int] = {}
    for i, key in enumerate(keys):
        try:
            utt, n = split_key(key)
        except ValueError as exc:
            raise place(i).error(str(exc)) from None
        if key in seen:
            raise place(i).error(f"key {key!r} appears twice (first at {entry_place(place(seen[key]))})")
        seen[key] = i
        utt_of.append(utt)
        rank_of.append(n)
    first: Dict[str, int] = {}
    for u in utt_of:
        first.setdefault(u, len(first))
    order = sorted(range(len(keys)), key=lambda i: (first[utt_of[i]], rank_of[i]))
    utts = list(first)
    counts = np.bincount([first[u] for u in utt_of], minlength=len(utts))
    offsets = np.zeros(len(utts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(counts)
    nb = NBestList(keys=[keys[i] for i in order], words=[tuple(words[i]) for i in order],
                   ranks=np.array([rank_of[i] for i in order], dtype=np.int64),
                   costs={k: np.asarray(v, dtype=np.float64)[order] for k, v in costs.items()},
                   utts=utts, offsets=offsets, source=source, symbols=symbols)
    empty = [u for k, u in enumerate(utts) if all(len(nb.words[i]) == 0
                                                     for i in range(offsets[k], offsets[k + 1]))]
    if empty:
        nb.all_empty = len(empty)
        nb.warnings.append(f"{source}: {len(empty)} utterance(s) have only empty hypotheses "
                           f"(kept; their best hypothesis is empty), e.g. {empty[0]!r}")
    return nb


def entry_place(e: Entry) -> str:
    """Where an entry was read: its line, or its archive position."""
    return f"line {e.line}" if e.line is not None else e.where


# ----------------------------------------------------------- single-file form
def read_nbest_file(path: PathLike) -> NBestList:
    """Read the single-file form (see the module docstring)."""
    columns: Tuple[str, ...] = DEFAULT_COLUMNS
    keys, words, rows, where = [], [], [], []
    for lineno, line in iter_lines(path):
        fields = line.split()
        if not fields:
            continue
        if fields[0].startswith("#"):
            if lineno == 1 and line.startswith(HEADER):
                columns = tuple(line[len(HEADER):].split())
                if len(set(columns)) != len(columns):
                    raise FormatError(f"cost column names repeat: {' '.join(columns)}", path, lineno)
                continue
            raise FormatError(f"'#' lines are only allowed as the first line, as '{HEADER} NAME ...'",
                              path, lineno)
        ncol = len(columns)
        if len(fields) < 1 + ncol:
            missing = columns[len(fields) - 1]
            raise FormatError(f"key {fields[0]!r}: missing cost {missing!r} (expected {ncol} number(s) "
                              f"after the key: {' '.join(columns)})", path, lineno)
        values = []
        for name, tok in zip(columns, fields[1: 1 + ncol]):
            try:
                x = float(tok)
            except ValueError:
                raise FormatError(f"key {fields[0]!r}: cost {name!r} value {tok!r} is not a number",
                                  path, lineno) from None
            if not np.isfinite(x):
                raise FormatError(f"key {fields[0]!r}: cost {name!r} value {tok!r} is not finite", path, lineno)
            values.append(x)
        keys.append(fields[0])
        words.append(tuple(fields[1 + ncol:]))
        rows.append(values)
        where.append(Entry(fields[0], 0.0, os.fspath(path), line=lineno))
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(columns))
    costs = {name: table[:, j] for j, name in enumerate(columns)}
    if "lmwt.lmonly" not in costs and "lmwt.withlm" in costs and "lmwt.nolm" in costs:
        costs["lmwt.lmonly"] = costs["lmwt.withlm"] - costs["lmwt.nolm"]
    return build_nbest(keys, words, costs, where, os.fspath(path))


def write_nbest_file(nb: NBestList, path: PathLike) -> None:
    """Write the single-file form with a header naming every cost column."""
    names = nb.cost_names()
    cols = [nb.costs[n].tolist() for n in names]
    with atomic_open(path) as fh:
        fh.write(f"{HEADER} {' '.join(names)}\n".replace(": \n", ":\n"))
        for i, (key, ws) in enumerate(zip(nb.keys, nb.words)):
            fh.write(" ".join([key] + [format_float(c[i]) for c in cols] + list(ws)) + "\n")
