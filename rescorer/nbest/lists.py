"""Kaldi n-best lists: the n-best directory and admmq's single-file form, both ways.

**Kaldi n-best directory** — what ``lattice-to-nbest | nbest-to-linear`` and
``utils/int2sym.pl`` leave in ``archives.JOB/`` in Kaldi's
``scripts/rnnlm/lmrescore_nbest.sh`` and ``steps/pytorchnn/lmrescore_nbest_pytorchnn.sh``.
Every file is keyed ``<utt>-<n>`` (n = 1, 2, ... the rank), and any of them may be
absent except the words:

=============== =================================================================
``words``       word ids (int32 vectors), with the symbol table ``words.txt``
``words_text``  the same words as text (``int2sym.pl -f 2-``)
``acwt``        acoustic cost
``lmwt.withlm`` graph cost including the first-pass LM
``lmwt.nolm``   graph cost with the first-pass LM removed (``--lm-scale=-1``)
``lmwt.lmonly`` ``lmwt.withlm - lmwt.nolm``, the first-pass LM cost (derived when absent)
``ali``         transition-id alignments: not needed for LM rescoring, ignored
=============== =================================================================

Costs are negated natural-log scores, as Kaldi writes them.  Each file may be
a text (``ark,t``) or binary archive, gzip-compressed, or an ``NAME.scp`` with
its ``.ark`` (see :mod:`rescorer.nbest.kaldi_archive`).  All files must hold the same
key set; their order may differ (entries are matched by key).

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
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from rescorer.errors import AdmmqError, FormatError, MismatchError, PathLike
from rescorer.fileio import atomic_open, iter_lines
from rescorer.nbest.kaldi_archive import INT_VECTOR, SCALAR, Entry, format_float, read_archive, write_archive

COSTS = ("acwt", "lmwt.nolm", "lmwt.withlm", "lmwt.lmonly")
WORDS, WORDS_TEXT, SYMBOLS = "words", "words_text", "words.txt"
HEADER = "# admmq-nbest costs:"
DEFAULT_COLUMNS = ("acwt", "lmwt.nolm")
ARCHIVE_FORMATS = ("text", "binary", "scp")


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
    if where is None:
        where = [Entry(k, None, source) for k in keys]
    if not keys:
        raise FormatError("no hypotheses (empty n-best list)", source)
    utt_of, rank_of = [], []
    seen: Dict[str, int] = {}
    for i, key in enumerate(keys):
        try:
            utt, n = split_key(key)
        except ValueError as exc:
            raise where[i].error(str(exc)) from None
        if key in seen:
            raise where[i].error(f"key {key!r} appears twice (first at {_place(where[seen[key]])})")
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


def _place(e: Entry) -> str:
    return f"line {e.line}" if e.line is not None else e.where


# --------------------------------------------------------------- symbol table
def read_symbol_table(path: PathLike) -> Dict[str, int]:
    """A Kaldi ``words.txt``: word -> id (ids and words unique)."""
    table: Dict[str, int] = {}
    ids: Dict[int, int] = {}
    for lineno, line in iter_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise FormatError(f"expected 'word integer-id', got {line!r}", path, lineno)
        word, num = fields[0], int(fields[1])
        if word in table:
            raise FormatError(f"word {word!r} appears twice", path, lineno)
        if num in ids:
            raise FormatError(f"id {num} already used on line {ids[num]}", path, lineno)
        table[word] = num
        ids[num] = lineno
    if not table:
        raise FormatError("symbol table is empty", path)
    return table


def write_symbol_table(table: Dict[str, int], path: PathLike) -> None:
    with atomic_open(path) as fh:
        for word, num in sorted(table.items(), key=lambda kv: kv[1]):
            fh.write(f"{word} {num}\n")


# ------------------------------------------------------------- directory form
def find_archive(directory: Path, name: str) -> Optional[Path]:
    """``NAME.scp`` (indexing its ark), else exactly one of ``NAME``, ``NAME.gz``, ``NAME.ark``."""
    scp = directory / f"{name}.scp"
    if scp.is_file():
        return scp
    found = [p for p in (directory / name, directory / f"{name}.gz", directory / f"{name}.ark") if p.is_file()]
    if len(found) > 1:
        raise AdmmqError(f"both {found[0].name} and {found[1].name} exist; keep one", directory)
    return found[0] if found else None


def _index(entries: List[Entry]) -> Dict[str, Entry]:
    """Key -> entry; a repeated key is an error at its second place."""
    index: Dict[str, Entry] = {}
    for e in entries:
        if e.key in index:
            raise e.error(f"key {e.key!r} appears twice (first at {_place(index[e.key])})")
        index[e.key] = e
    return index


def _check_keys(entries: List[Entry]) -> None:
    """Every key is ``<utt>-<n>`` and appears once."""
    for e in entries:
        try:
            split_key(e.key)
        except ValueError as exc:
            raise e.error(str(exc)) from None
    _index(entries)


def _by_key(entries: List[Entry], ref: List[Entry], ref_name: str, other: PathLike) -> List[Entry]:
    """``entries`` (of the file ``other``) reordered to the keys of ``ref``; differing key sets are an error."""
    index = _index(entries)
    if not entries:
        raise FormatError(f"empty archive, but {ref_name} has {len(ref)} hypotheses", other)
    ref_keys = {r.key for r in ref}
    extra = [e for e in entries if e.key not in ref_keys]
    extra_note = (f"; {os.fspath(other)} has {len(extra)} key(s) not in {ref_name}, e.g. {extra[0].key!r} at "
                  f"{_place(extra[0])}") if extra else ""
    out = []
    for r in ref:
        e = index.get(r.key)
        if e is None:
            missing = sum(1 for x in ref if x.key not in index)
            raise r.error(f"key {r.key!r} has no entry in {os.fspath(other)} ({missing} key(s) missing "
                          f"there){extra_note}", MismatchError)
        out.append(e)
    if extra:
        raise extra[0].error(f"key {extra[0].key!r} is not in {ref_name} ({len(extra)} extra key(s))",
                             MismatchError)
    return out


def read_nbest_dir(directory: PathLike, words_txt: Optional[PathLike] = None) -> NBestList:
    """Read a Kaldi n-best directory (whichever of the archives are present)."""
    d = Path(directory)
    if not d.is_dir():
        raise AdmmqError("not a directory", d)
    text_path, int_path = find_archive(d, WORDS_TEXT), find_archive(d, WORDS)
    if text_path is None and int_path is None:
        raise AdmmqError(f"no {WORDS_TEXT} or {WORDS} archive: not a Kaldi n-best directory", d)
    symbols = None
    sym_path = Path(words_txt) if words_txt else find_archive(d, SYMBOLS)
    if sym_path is not None:
        symbols = read_symbol_table(sym_path)
    words_of: Dict[str, Tuple[str, ...]] = {}
    ref: List[Entry] = []
    if text_path is not None:
        ref = _read_words_text(text_path)
        if not ref:
            raise FormatError("no hypotheses (empty n-best list)", text_path)
        _check_keys(ref)
        words_of = {e.key: e.value for e in ref}  # type: ignore[misc]
    if int_path is not None:
        if symbols is None:
            raise AdmmqError(f"{int_path.name} holds word ids but there is no {SYMBOLS} (give --words-txt)", d)
        id_entries = read_archive(int_path, INT_VECTOR)
        by_id = {num: w for w, num in symbols.items()}
        if not ref:
            ref = id_entries
            if not ref:
                raise FormatError("no hypotheses (empty n-best list)", int_path)
            _check_keys(ref)
        ids_in_order = _by_key(id_entries, ref, ref[0].path, int_path)
        for e in ids_in_order:
            try:
                ws = tuple(by_id[i] for i in e.value)  # type: ignore[union-attr]
            except KeyError as exc:
                raise e.error(f"word id {exc.args[0]} is not in {sym_path}", MismatchError) from None
            if e.key in words_of and words_of[e.key] != ws:
                raise e.error(f"key {e.key!r}: ids spell {' '.join(ws)!r} but {text_path} has "
                              f"{' '.join(words_of[e.key])!r}", MismatchError)
            words_of[e.key] = ws
    costs: Dict[str, np.ndarray] = {}
    for name in COSTS:
        p = find_archive(d, name)
        if p is not None:
            entries = _by_key(read_archive(p, SCALAR), ref, ref[0].path, p)
            costs[name] = np.array([e.value for e in entries], dtype=np.float64)
    if "lmwt.lmonly" not in costs and "lmwt.withlm" in costs and "lmwt.nolm" in costs:
        costs["lmwt.lmonly"] = costs["lmwt.withlm"] - costs["lmwt.nolm"]  # as lmrescore_nbest.sh does
    keys = [e.key for e in ref]
    return build_nbest(keys, [words_of[k] for k in keys], costs, ref, os.fspath(d), symbols)


def _read_words_text(path: Path) -> List[Entry]:
    out = []
    for lineno, line in iter_lines(path):
        fields = line.split()
        if fields:
            out.append(Entry(fields[0], tuple(fields[1:]), os.fspath(path), line=lineno))
    return out


def write_nbest_dir(nb: NBestList, directory: PathLike, archive: str = "text",
                    symbols: Optional[Dict[str, int]] = None) -> List[Path]:
    """Write ``words_text``, ``words`` + ``words.txt`` (when a symbol table is known) and the Kaldi costs.

    ``archive``: ``text`` (``ark,t``), ``binary`` (``ark``) or ``scp`` (binary
    ``NAME.ark`` + ``NAME.scp``).  ``words_text`` is always text.  Returns the files written.
    """
    if archive not in ARCHIVE_FORMATS:
        raise ValueError(f"archive must be one of {ARCHIVE_FORMATS}, got {archive!r}")
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise AdmmqError("exists and is not a directory", d)
    symbols = symbols if symbols is not None else nb.symbols
    ids = None
    if symbols is not None:
        ids = []
        for key, ws in zip(nb.keys, nb.words):
            missing = [w for w in ws if w not in symbols]
            if missing:
                raise MismatchError(f"hypothesis {key!r}: word {missing[0]!r} is not in the symbol table")
            ids.append(tuple(symbols[w] for w in ws))
    d.mkdir(parents=True, exist_ok=True)
    written = []

    def put(name: str, items, kind: str) -> None:
        if archive == "scp":
            ark, scp = d / f"{name}.ark", d / f"{name}.scp"
            write_archive(ark, items, kind, binary=True, scp=scp)
            written.extend([ark, scp])
        else:
            write_archive(d / name, items, kind, binary=archive == "binary")
            written.append(d / name)

    with atomic_open(d / WORDS_TEXT) as fh:
        for key, ws in zip(nb.keys, nb.words):
            fh.write(" ".join((key,) + ws) + "\n")
    written.append(d / WORDS_TEXT)
    if ids is not None:
        put(WORDS, list(zip(nb.keys, ids)), INT_VECTOR)
        write_symbol_table(symbols, d / SYMBOLS)  # type: ignore[arg-type]
        written.append(d / SYMBOLS)
    for name in COSTS:
        if name in nb.costs:
            put(name, list(zip(nb.keys, nb.costs[name].tolist())), SCALAR)
    return written


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


def read_nbest(path: PathLike, words_txt: Optional[PathLike] = None) -> NBestList:
    """A Kaldi n-best directory or a single n-best file."""
    p = Path(path)
    if p.is_dir():
        return read_nbest_dir(p, words_txt)
    return read_nbest_file(p)


def convert_nbest(src: PathLike, dest: PathLike, to: str = "auto", archive: str = "text",
                  words_txt: Optional[PathLike] = None) -> Tuple[NBestList, str]:
    """Read ``src`` (directory or file) and write it to ``dest`` as ``to`` (``file``, ``dir``; ``auto`` = the
    other form).  Returns the list and the form written."""
    nb = read_nbest(src, words_txt)
    form = to if to != "auto" else ("file" if Path(src).is_dir() else "dir")
    if form == "file":
        write_nbest_file(nb, dest)
    else:
        write_nbest_dir(nb, dest, archive, read_symbol_table(words_txt) if words_txt else None)
    return nb, form
