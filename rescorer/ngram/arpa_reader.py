"""Reading ARPA files (plain or gzip) into :class:`rescorer.ngram.arpa.ArpaModel`, with line-exact errors.

Sections are parsed in chunks of lines without a Python loop per line
(``bytes.split`` over the chunk, numpy fancy indexing over the tokens); a
chunk that is not perfectly regular is parsed again line by line, which
finds the first bad line and raises :class:`~rescorer.errors.FormatError`
naming it (see :mod:`rescorer.ngram.arpa` for the format and the checks).
"""

from __future__ import annotations

import re
import zlib
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from rescorer.ngram.arpa import ArpaModel, build_model
from rescorer.errors import FormatError, PathLike
from rescorer.fileio import open_binary

KENLM_BINARY_MAGIC = b"mmap lm "
_CHUNK_LINES = 1 << 16
_COUNT_RE = re.compile(rb"^ngram\s+(\d+)\s*=\s*(-?\d+)\s*$")
_SECTION_RE = re.compile(rb"^\\(\d+)-grams:\s*$")


class _Lines:
    """Bytes lines of a file with 1-based line numbers, read in large blocks, with one line of push-back."""

    def __init__(self, fh, path: PathLike):
        self.fh = fh
        self.path = path
        self.lineno = 0  # number of the last line handed out
        self._buf: List[bytes] = []
        self._pos = 0
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            chunk = self.fh.readlines(1 << 22)
        except (OSError, EOFError, zlib.error) as exc:
            raise FormatError(f"cannot read (corrupt or truncated gzip?): {exc}", self.path,
                              self.lineno + 1) from None
        if not chunk:
            self._eof = True
            return False
        self._buf, self._pos = chunk, 0
        return True

    def next(self) -> Optional[bytes]:
        if self._pos >= len(self._buf) and not self._fill():
            return None
        line = self._buf[self._pos]
        self._pos += 1
        self.lineno += 1
        return line

    def push_back(self) -> None:
        """Un-read the line just returned by :meth:`next`."""
        self._pos -= 1
        self.lineno -= 1

    def take(self, n: int) -> List[bytes]:
        """Up to ``n`` further lines (fewer only at the end of the file)."""
        out: List[bytes] = []
        while len(out) < n:
            if self._pos >= len(self._buf) and not self._fill():
                break
            k = min(n - len(out), len(self._buf) - self._pos)
            out.extend(self._buf[self._pos: self._pos + k])
            self._pos += k
        self.lineno += len(out)
        return out


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


class ArpaReader:
    """Reads one ARPA file into an :class:`ArpaModel` (use :func:`read_arpa`)."""

    def __init__(self, path: PathLike, progress=None):
        self.path = path
        self.progress = progress  # a rescorer.progress.Task, or None
        self.vocab: Dict[bytes, int] = {}

    def error(self, msg: str, line: Optional[int]) -> FormatError:
        return FormatError(msg, self.path, line)

    # -------------------------------------------------------------- header
    def _header(self, lines: _Lines) -> Tuple[List[int], List[int]]:
        first = True
        while True:
            raw = lines.next()
            if raw is None:
                raise self.error("no \\data\\ line: not an ARPA file", None)
            if first and raw.startswith(KENLM_BINARY_MAGIC):
                raise self.error("a kenlm binary file, not ARPA text: use --ngram-backend kenlm (or auto with "
                                 "kenlm installed)", 1)
            first = False
            if raw.strip() == b"\\data\\":
                break
        counts: Dict[int, Tuple[int, int]] = {}
        while True:
            raw = lines.next()
            if raw is None:
                raise self.error("file ends inside the \\data\\ section", lines.lineno)
            s = raw.strip()
            if not s:
                continue
            if s.startswith(b"\\"):
                lines.push_back()
                break
            m = _COUNT_RE.match(s)
            if not m:
                raise self.error(f"expected 'ngram N=count' in \\data\\, got {_text(raw)!r}", lines.lineno)
            n, c = int(m.group(1)), int(m.group(2))
            if n in counts:
                raise self.error(f"count of {n}-grams given twice (first on line {counts[n][1]})", lines.lineno)
            if c < 0:
                raise self.error(f"negative count {c} for {n}-grams", lines.lineno)
            counts[n] = (c, lines.lineno)
        if not counts:
            raise self.error("\\data\\ declares no 'ngram N=count' lines", lines.lineno + 1)
        order = max(counts)
        for n in range(1, order + 1):
            if n not in counts:
                raise self.error(f"\\data\\ gives no count for {n}-grams (it declares order {order})",
                                 counts[order][1])
        if counts[1][0] == 0:
            raise self.error("\\data\\ declares no 1-grams", counts[1][1])
        return [counts[n][0] for n in range(1, order + 1)], [counts[n][1] for n in range(1, order + 1)]

    # ------------------------------------------------------------- entries
    def _bulk(self, chunk: List[bytes], n: int, top: bool, start: int):
        """Parse a chunk of well-formed lines with no per-line Python loop; None if anything is off.

        Returns ids (m, n) int32, log10 p (m,) float64, log10 back-off (m,) float64.
        """
        m = len(chunk)
        toks = b" \x1e ".join(chunk).split()  # \x1e separates lines: token counts per line are checkable
        cols = self._uniform_columns(toks, m, n, top) or self._ragged_columns(toks, m, n, top)
        if cols is None:
            return None
        prob_col, word_cols, bo_col, has_bo = cols
        try:
            logp = np.fromiter(map(float, prob_col), dtype=np.float64, count=m)
            bow = np.zeros(m, dtype=np.float64)
            if has_bo is None:
                bow[:] = np.fromiter(map(float, bo_col), dtype=np.float64, count=m) if bo_col is not None else 0.0
            elif has_bo.any():
                bow[has_bo] = np.fromiter(map(float, bo_col), dtype=np.float64, count=int(has_bo.sum()))
            if not (np.all(logp <= 0) and np.all(np.isfinite(bow))):  # NaN fails both
                return None
            ids = np.empty((m, n), dtype=np.int32)
            if n == 1:
                words = list(word_cols[0])
                b"\n".join(words).decode("utf-8")
                first = len(self.vocab)
                new = dict(zip(words, range(first, first + m)))
                if len(new) != m or (self.vocab.keys() & new.keys()):
                    return None
                self.vocab.update(new)
                ids[:, 0] = np.arange(first, first + m)
            else:
                for j in range(n):
                    ids[:, j] = np.fromiter(map(self.vocab.__getitem__, word_cols[j]), dtype=np.int32, count=m)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None
        return ids, logp, bow

    @staticmethod
    def _uniform_columns(toks: List[bytes], m: int, n: int, top: bool):
        """Columns by list slicing when every line has the same number of fields (the usual case)."""
        for width in ((n + 1,) if top else (n + 2, n + 1)):
            step = width + 1
            if len(toks) == m * step - 1 and toks[width::step].count(b"\x1e") == m - 1:
                bo = toks[n + 1::step] if width == n + 2 else None
                return toks[0::step], [toks[1 + j::step] for j in range(n)], bo, None
        return None

    @staticmethod
    def _ragged_columns(toks: List[bytes], m: int, n: int, top: bool):
        """Columns by fancy indexing when only some lines carry a back-off weight."""
        arr = np.array(toks, dtype=object)
        sep = np.flatnonzero(arr == b"\x1e")
        if sep.size != m - 1:
            return None
        starts = np.zeros(m, dtype=np.int64)
        starts[1:] = sep + 1
        ends = np.empty(m, dtype=np.int64)
        ends[:-1] = sep
        ends[-1] = arr.size
        width = ends - starts
        has_bo = width == n + 2
        if top or not np.all((width == n + 1) | has_bo):
            return None
        return arr[starts], [arr[starts + 1 + j] for j in range(n)], arr[starts[has_bo] + n + 1], has_bo

    def _line(self, raw: bytes, n: int, top: bool, lineno: int):
        """Parse one entry line, raising a FormatError that says what is wrong with it."""
        parts = raw.split()
        k = len(parts)
        if k not in ((n + 1,) if top else (n + 1, n + 2)):
            want = f"{n + 1}" if top else f"{n + 1} or {n + 2}"
            form = "log10-prob " + " ".join(f"w{i}" for i in range(1, n + 1)) + ("" if top else " [back-off]")
            extra = " (the highest order has no back-off weights)" if top and k == n + 2 else ""
            raise self.error(f"expected '{form}' ({want} fields) in the {n}-grams, got {k} fields{extra}", lineno)
        try:
            lp = float(parts[0])
        except ValueError:
            raise self.error(f"log10 probability {_text(parts[0])!r} is not a number", lineno) from None
        if lp != lp or lp > 0:
            raise self.error(f"log10 probability {lp} must be a number <= 0", lineno)
        bo = 0.0
        if k == n + 2:
            try:
                bo = float(parts[-1])
            except ValueError:
                raise self.error(f"back-off weight {_text(parts[-1])!r} is not a number", lineno) from None
            if not np.isfinite(bo):
                raise self.error(f"back-off weight {bo} is not finite", lineno)
        ids = []
        for w in parts[1:n + 1]:
            i = self.vocab.get(w)
            if i is None:
                raise self.error(f"word {_text(w)!r} of this {n}-gram is not among the 1-grams", lineno)
            ids.append(i)
        return ids, lp, bo

    def _section(self, lines: _Lines, n: int, declared: int, top: bool):
        """Read the ``declared`` entries of section ``\\n-grams:`` (its header already read).

        Returns ids (count, n) int32, log10 p (count,) float32, log10 back-off (count,) float32.
        """
        ids_parts = [np.zeros((0, n), np.int32)]
        lp_parts = [np.zeros(0, np.float32)]
        bo_parts = [np.zeros(0, np.float32)]
        done = 0
        while done < declared:
            want = min(_CHUNK_LINES, declared - done)
            start = lines.lineno + 1
            chunk = lines.take(want)
            parsed = self._bulk(chunk, n, top, start) if len(chunk) == want else None
            if parsed is None:
                parsed = self._slow(chunk, n, top, start, declared, done)
            if len(chunk) < want:
                raise self.error(f"file ends after {done + len(chunk)} of the {declared} {n}-grams that "
                                 f"\\data\\ declares", lines.lineno)
            ids_parts.append(parsed[0])
            lp_parts.append(parsed[1].astype(np.float32))
            bo_parts.append(parsed[2].astype(np.float32))
            done += want
            if self.progress is not None:
                self.progress.advance(want)
        return np.concatenate(ids_parts), np.concatenate(lp_parts), np.concatenate(bo_parts)

    def _slow(self, chunk: List[bytes], n: int, top: bool, start: int, declared: int, done: int):
        """Parse line by line; the first bad line raises a FormatError naming it."""
        m = len(chunk)
        ids = np.empty((m, n), dtype=np.int32)
        logp = np.empty(m, dtype=np.float64)
        bow = np.empty(m, dtype=np.float64)
        for i, raw in enumerate(chunk):
            lineno = start + i
            s = raw.strip()
            if not s or s.startswith(b"\\"):
                what = "a blank line" if not s else repr(_text(s))
                raise self.error(f"\\data\\ declares {declared} {n}-grams but the section ends after "
                                 f"{done + i} (found {what})", lineno)
            if n == 1:
                parts = raw.split()
                if len(parts) in (2, 3):
                    if parts[1] in self.vocab:  # 1-gram ids are their positions in the section
                        raise self.error(f"duplicate 1-gram {_text(parts[1])!r} (first on line "
                                         f"{start - done + self.vocab[parts[1]]})", lineno)
                    try:
                        parts[1].decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise self.error(f"word is not valid UTF-8 ({exc.reason})", lineno) from None
                    self.vocab[parts[1]] = len(self.vocab)
            row, logp[i], bow[i] = self._line(raw, n, top, lineno)
            ids[i] = row
        return ids, logp, bow

    def read(self) -> ArpaModel:
        with open_binary(self.path) as fh:
            lines = _Lines(fh, self.path)
            declared, count_lines = self._header(lines)
            order = len(declared)
            raw_ids: List[np.ndarray] = [np.empty(0)]
            raw_lp: List[np.ndarray] = [np.empty(0)]
            raw_bo: List[np.ndarray] = [np.empty(0)]
            starts = [0]
            for n in range(1, order + 1):
                raw = lines.next()
                while raw is not None and not raw.strip():
                    raw = lines.next()
                want = f"\\{n}-grams:"
                if raw is None:
                    raise self.error(f"file ends before the {want} section", lines.lineno)
                m = _SECTION_RE.match(raw.strip())
                if not m or int(m.group(1)) != n:
                    raise self.error(f"expected the section header '{want}', got '{_text(raw.strip())}'",
                                     lines.lineno)
                starts.append(lines.lineno + 1)
                ids, lp, bo = self._section(lines, n, declared[n - 1], top=(n == order))
                raw_ids.append(ids)
                raw_lp.append(lp)
                raw_bo.append(bo)
                nxt = lines.next()
                if nxt is not None and nxt.strip() and not nxt.strip().startswith(b"\\"):
                    raise self.error(f"more {n}-grams than the {declared[n - 1]} declared on line "
                                     f"{count_lines[n - 1]}", lines.lineno)
                if nxt is not None:
                    lines.push_back()
            raw = lines.next()
            while raw is not None and not raw.strip():
                raw = lines.next()
            if raw is None:
                raise self.error("file ends without the \\end\\ line", lines.lineno)
            if raw.strip() != b"\\end\\":
                raise self.error(f"expected '\\end\\' after the {order}-grams, got '{_text(raw.strip())}'",
                                 lines.lineno)
        words = [w.decode("utf-8") for w in self.vocab]
        return build_model(self.path, words, raw_ids, raw_lp, raw_bo, declared, starts, self.error)


def read_arpa(path: PathLike, progress=None) -> ArpaModel:
    """Read an ARPA file (plain or gzip) into an :class:`ArpaModel`."""
    model = ArpaReader(path, progress).read()
    _return_freed_memory()
    return model


def _return_freed_memory() -> None:
    """Hand the parse buffers' freed heap back to the OS (glibc keeps it otherwise; resident size stays high)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def declared_counts(path: PathLike) -> List[int]:
    """The n-gram counts in an ARPA file's ``\\data\\`` section (reads only the header)."""
    with open_binary(path) as fh:
        return ArpaReader(path)._header(_Lines(fh, path))[0]


def iter_entries(path: PathLike) -> Iterator[Tuple[int, Tuple[str, ...], float, float]]:
    """Every entry of a (valid) ARPA file as ``(order, words, log10 p, log10 back-off)``; for small files and tests."""
    model = read_arpa(path)
    for n in range(1, model.order + 1):
        if n == 1:
            rows = [(i,) for i in range(len(model.logp[1]))]
        else:
            rows = _decode_keys(model, n)
        for k, row in enumerate(rows):
            lp = float(model.logp[n][k])
            if lp != lp:
                continue
            bo = float(model.bow[n][k]) if n < model.order else 0.0
            yield n, tuple(model.words[i] for i in row), lp, bo


def _decode_keys(model: ArpaModel, n: int) -> List[Tuple[int, ...]]:
    V = model.vocab_size
    prev = _decode_keys(model, n - 1) if n > 2 else [(i,) for i in range(V)]
    return [prev[int(k) // V] + (int(k) % V,) for k in model.keys[n]]
