"""Kaldi n-best directories, both ways, and reading or converting either n-best form.

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

:func:`read_nbest` and :func:`convert_nbest` take a directory or a single
file (:mod:`rescorer.nbest.lists`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from rescorer.errors import AdmmqError, FormatError, MismatchError, PathLike
from rescorer.fileio import atomic_open, iter_lines, read_lines
from rescorer.nbest.kaldi_archive import INT_VECTOR, SCALAR, Entry, is_binary_archive, read_archive, write_archive
from rescorer.nbest.lists import (COSTS, NBestList, build_nbest, entry_place, read_nbest_file, split_key,
                                  write_nbest_file)

WORDS, WORDS_TEXT, SYMBOLS = "words", "words_text", "words.txt"
ARCHIVE_FORMATS = ("text", "binary", "scp")


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
            raise e.error(f"key {e.key!r} appears twice (first at {entry_place(index[e.key])})")
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
                  f"{entry_place(extra[0])}") if extra else ""
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


def _text_columns(path: Path, expect_keys: Optional[List[str]] = None) -> Optional[Tuple[List[str], List[List[str]]]]:
    """Keys and value fields of a text archive whose keys are ``expect_keys`` in that order (when given);
    None for anything the careful reader should see (binary, scp, blank keys, another order)."""
    if path.name.endswith(".scp") or is_binary_archive(path):
        return None
    keys, values = [], []
    for line in read_lines(path):
        fields = line.split()
        if fields:
            keys.append(fields[0])
            values.append(fields[1:])
    if expect_keys is not None and keys != expect_keys:
        return None
    return keys, values


def _read_dir_fast(d: Path, text_path: Optional[Path], int_path: Optional[Path], symbols, sym_path) -> \
        Optional[NBestList]:
    """The directory read in bulk when every archive is text with the keys in one order and every value
    well formed, else None (the careful reader then reads it and names the first problem)."""
    first = _text_columns(text_path or int_path)  # type: ignore[arg-type]
    if first is None or not first[0]:
        return None
    keys, fields = first
    if text_path is not None:
        words = [tuple(f) for f in fields]
    if int_path is not None:
        if symbols is None:
            return None
        ids = fields if text_path is None else (_text_columns(int_path, keys) or (None, None))[1]
        if ids is None:
            return None
        flat = [x for f in ids for x in f]
        try:
            id_array = np.array(flat, dtype=np.int64)
        except ValueError:  # "[ ... ]" brackets or a bad id
            return None
        if text_path is not None:  # the ids must spell words_text
            if [len(f) for f in ids] != [len(w) for w in words]:
                return None
            mapped = np.array([symbols.get(w, -1) for ws in words for w in ws], dtype=np.int64)
            if not np.array_equal(mapped, id_array):
                return None
        else:
            by_id = {num: w for w, num in symbols.items()}
            try:
                flat_words = [by_id[i] for i in id_array.tolist()]
            except KeyError:
                return None
            ends = np.cumsum([len(f) for f in ids]).tolist()
            words = [tuple(flat_words[a:b]) for a, b in zip([0] + ends[:-1], ends)]
    costs: Dict[str, np.ndarray] = {}
    for name in COSTS:
        p = find_archive(d, name)
        if p is None:
            continue
        col = _text_columns(p, keys)
        if col is None or any(len(f) != 1 for f in col[1]):
            return None
        try:
            values = np.array([f[0] for f in col[1]], dtype=np.float64)
        except ValueError:
            return None
        if not np.isfinite(values).all():
            return None
        costs[name] = values
    if "lmwt.lmonly" not in costs and "lmwt.withlm" in costs and "lmwt.nolm" in costs:
        costs["lmwt.lmonly"] = costs["lmwt.withlm"] - costs["lmwt.nolm"]  # as lmrescore_nbest.sh does
    return build_nbest(keys, words, costs, None, os.fspath(d), symbols)


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
    try:
        fast = _read_dir_fast(d, text_path, int_path, symbols, sym_path)
    except AdmmqError:  # malformed keys and the like: the careful reader names the place
        fast = None
    if fast is not None:
        return fast
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
