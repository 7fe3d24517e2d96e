"""Kaldi archives of the two object types n-best lists use: float scalars and int32 vectors.

``nbest-to-linear`` writes the costs (``acwt``, ``lmwt.*``) as BaseFloat
scalars and the word ids (``words``, ``ali``) as int32 vectors, each as a text
(``ark,t``) or binary (``ark``) archive, possibly indexed by an ``scp``.
kaldiio misreads binary float scalars, cannot write scalars and lets an empty
text vector swallow the next line, so both directions are done here; the
tests check the int32-vector form against kaldiio.

Byte layout (Kaldi's ``BasicHolder`` / ``BasicVectorHolder``)::

    text   ark   key SP value [SP]  NL                  (costs)
                 key SP [id SP id SP ...] NL            (ids; "[ ... ]" brackets accepted)
    binary ark   key SP \\0 B <size byte 4|8> <float32|float64 LE>
                 key SP \\0 B \\x04 <int32 n> n x (\\x04 <int32>)
    scp          key SP path[:byte-offset]   (the offset points at the object, after "key ")

Files may be gzip-compressed; text lines may end in CRLF (stripped).
Reading returns ``Entry(key, value, where)`` in file order, ``where`` naming
the place for error messages (``path:line`` for text, ``path: entry N at byte
B`` for binary).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from rescorer.errors import AdmmqError, FormatError, PathLike
from rescorer.fileio import atomic_open, iter_lines, open_binary

SCALAR = "scalar"
INT_VECTOR = "int-vector"
KINDS = (SCALAR, INT_VECTOR)
_BINARY_MARK = b"\0B"

Value = Union[float, Tuple[int, ...]]


@dataclass(frozen=True)
class Entry:
    """One archive object: ``value`` is a float (scalar) or a tuple of ints (vector)."""

    key: str
    value: Value
    path: str
    line: Optional[int] = None  # text archives
    where: str = ""  # binary archives: "entry N at byte B"

    def error(self, message: str, cls=FormatError) -> AdmmqError:
        """An error located at this entry."""
        if self.line is not None:
            return cls(message, self.path, self.line)
        return cls(f"{self.where}: {message}" if self.where else message, self.path)


def is_binary_archive(path: PathLike) -> bool:
    """True when the first object of the archive is binary (``key \\0B...``)."""
    with open_binary(path) as fh:
        head = fh.read(4096)
    space = head.find(b" ")
    return space > 0 and head[space + 1: space + 3] == _BINARY_MARK


# ------------------------------------------------------------------ text values
def parse_text_value(fields: Sequence[str], kind: str) -> Value:
    """The value of a text object from its whitespace-separated fields; ValueError explains a bad one."""
    if kind == SCALAR:
        if len(fields) != 1:
            raise ValueError(f"expected one number, got {len(fields)} fields" if fields else
                             "missing value (expected a number)")
        try:
            x = float(fields[0])
        except ValueError:
            raise ValueError(f"value {fields[0]!r} is not a number") from None
        if not math.isfinite(x):
            raise ValueError(f"value {fields[0]!r} is not a finite number")
        return x
    items = list(fields)
    if items and items[0] == "[":
        if items[-1] != "]":
            raise ValueError("vector opened with '[' is not closed with ']'")
        items = items[1:-1]
    try:
        return tuple(int(t) for t in items)
    except ValueError:
        bad = next(t for t in items if not t.lstrip("-").isdigit())
        raise ValueError(f"{bad!r} is not an integer id") from None


def _read_text_archive(path: Path, kind: str) -> Iterator[Entry]:
    for lineno, line in iter_lines(path):
        fields = line.split()
        if not fields:
            continue
        try:
            value = parse_text_value(fields[1:], kind)
        except ValueError as exc:
            raise FormatError(f"key {fields[0]!r}: {exc}", path, lineno) from None
        yield Entry(fields[0], value, os.fspath(path), line=lineno)


# ---------------------------------------------------------------- binary values
def _take(data: bytes, pos: int, n: int, what: str, where: str, path: Path) -> bytes:
    if pos + n > len(data):
        raise FormatError(f"{where}: archive ends inside {what}", path)
    return data[pos: pos + n]


def _parse_binary_value(data: bytes, pos: int, kind: str, where: str, path: Path) -> Tuple[Value, int]:
    """Parse the binary object starting at ``data[pos]`` (after the ``\\0B`` marker); return it and the end."""
    if kind == SCALAR:
        size = _take(data, pos, 1, "a float", where, path)[0]
        if size not in (4, 8):
            raise FormatError(f"{where}: expected a binary float (size byte 4 or 8), got size byte {size}", path)
        raw = _take(data, pos + 1, size, "a float", where, path)
        x = struct.unpack("<f" if size == 4 else "<d", raw)[0]
        if not math.isfinite(x):
            raise FormatError(f"{where}: value {x} is not a finite number", path)
        return float(x), pos + 1 + size
    if _take(data, pos, 1, "a vector size", where, path) != b"\x04":
        raise FormatError(f"{where}: expected a binary int32 vector (size byte 4)", path)
    n = struct.unpack("<i", _take(data, pos + 1, 4, "a vector size", where, path))[0]
    if n < 0:
        raise FormatError(f"{where}: negative vector length {n}", path)
    raw = _take(data, pos + 5, 5 * n, "a vector", where, path)
    if raw[0::5] != b"\x04" * n:
        raise FormatError(f"{where}: expected int32 elements (size byte 4)", path)
    ids = struct.unpack(f"<{n}i", b"".join(raw[i + 1: i + 5] for i in range(0, 5 * n, 5)))
    return tuple(ids), pos + 5 + 5 * n


def _read_all(path: Path) -> bytes:
    with open_binary(path) as fh:
        try:
            return fh.read()
        except (OSError, EOFError) as exc:
            raise FormatError(f"cannot read: {exc}", path) from None


def _read_binary_archive(path: Path, kind: str) -> Iterator[Entry]:
    data = _read_all(path)
    pos, n = 0, 0
    while pos < len(data):
        n += 1
        where = f"entry {n} at byte {pos}"
        space = data.find(b" ", pos)
        if space < 0:
            raise FormatError(f"{where}: archive ends inside a key", path)
        try:
            key = data[pos:space].decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{where}: key is not valid UTF-8", path) from None
        if not key or key != key.strip():
            raise FormatError(f"{where}: empty or malformed key {key!r}", path)
        if data[space + 1: space + 3] != _BINARY_MARK:
            raise FormatError(f"{where}: key {key!r} is followed by a text object in a binary "
                              f"archive (mixed text/binary archives are not supported)", path)
        value, pos = _parse_binary_value(data, space + 3, kind, where, path)
        yield Entry(key, value, os.fspath(path), where=where)


# ------------------------------------------------------------------------- scp
def _split_rxfilename(spec: str) -> Tuple[str, Optional[int]]:
    head, sep, tail = spec.rpartition(":")
    if sep and tail.isdigit():
        return head, int(tail)
    return spec, None


def _resolve(target: str, scp: Path) -> Path:
    """Kaldi resolves scp paths against the working directory; fall back to the scp's own directory."""
    p = Path(target)
    if p.is_absolute() or p.exists():
        return p
    alt = scp.parent / p
    return alt if alt.exists() else p


def _read_scp(path: Path, kind: str) -> Iterator[Entry]:
    cache: Dict[Path, bytes] = {}
    for lineno, line in iter_lines(path):
        fields = line.split(maxsplit=1)
        if not fields:
            continue
        if len(fields) != 2:
            raise FormatError(f"expected 'key path[:offset]', got {line!r}", path, lineno)
        key, spec = fields[0], fields[1].strip()
        if spec.endswith("|") or spec == "-":
            raise FormatError(f"piped or stdin scp entries are not supported ({spec!r})", path, lineno)
        target, offset = _split_rxfilename(spec)
        file = _resolve(target, path)
        data = cache.get(file)
        if data is None:
            if not file.exists():
                raise FormatError(f"archive {target!r} does not exist", path, lineno)
            data = cache[file] = _read_all(file)
        pos = offset or 0
        if pos >= len(data):
            raise FormatError(f"offset {pos} is beyond the end of {target!r} ({len(data)} bytes)", path, lineno)
        where = f"line {lineno} ({spec})"
        if data[pos: pos + 2] == _BINARY_MARK:
            value, _ = _parse_binary_value(data, pos + 2, kind, where, path)
        else:
            end = data.find(b"\n", pos)
            raw = data[pos: end if end >= 0 else len(data)]
            try:
                value = parse_text_value(raw.decode("utf-8").split(), kind)
            except (UnicodeDecodeError, ValueError) as exc:
                raise FormatError(f"key {key!r}: {exc}", path, lineno) from None
        yield Entry(key, value, os.fspath(path), line=lineno)


def read_archive(path: PathLike, kind: str) -> List[Entry]:
    """All objects of a text or binary archive, or of an ``.scp`` index, in file order."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    p = Path(path)
    if p.name.endswith(".scp"):
        return list(_read_scp(p, kind))
    if is_binary_archive(p):
        return list(_read_binary_archive(p, kind))
    return list(_read_text_archive(p, kind))


# ------------------------------------------------------------------- writing
def format_float(x: float) -> str:
    """Shortest text that reads back as the same float64."""
    return repr(float(x))


def _binary_value(value: Value, kind: str) -> bytes:
    if kind == SCALAR:
        return _BINARY_MARK + b"\x04" + struct.pack("<f", float(value))  # type: ignore[arg-type]
    ids = list(value)  # type: ignore[arg-type]
    return _BINARY_MARK + b"\x04" + struct.pack("<i", len(ids)) + b"".join(
        b"\x04" + struct.pack("<i", int(i)) for i in ids)


def _text_value(value: Value, kind: str) -> str:
    if kind == SCALAR:
        return format_float(value)  # type: ignore[arg-type]
    return "".join(f"{int(i)} " for i in value).rstrip()  # type: ignore[union-attr]


def write_archive(path: PathLike, items: Sequence[Tuple[str, Value]], kind: str, binary: bool = False,
                  scp: Optional[PathLike] = None) -> None:
    """Write ``(key, value)`` pairs as a text or binary archive (atomically), optionally with an scp.

    Binary scalars are float32 (Kaldi's BaseFloat).  The scp gives each key
    ``<archive path>:<byte offset of the object>`` with the archive path as given.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    offsets: List[Tuple[str, int]] = []
    if binary:
        with atomic_open(path, "wb") as fh:
            pos = 0
            for key, value in items:
                head = f"{key} ".encode("utf-8")
                body = _binary_value(value, kind)
                offsets.append((key, pos + len(head)))
                fh.write(head + body)
                pos += len(head) + len(body)
    else:
        with atomic_open(path) as fh:
            pos = 0
            for key, value in items:
                head = f"{key} "
                line = f"{head}{_text_value(value, kind)}\n"
                offsets.append((key, pos + len(head.encode("utf-8"))))
                fh.write(line)
                pos += len(line.encode("utf-8"))
    if scp is not None:
        with atomic_open(scp) as fh:
            for key, off in offsets:
                fh.write(f"{key} {os.fspath(path)}:{off}\n")
