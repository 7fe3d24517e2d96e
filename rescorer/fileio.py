"""Reading text files (plain or gzip) and writing outputs atomically.

Sentences of a text file come in two formats:

* ``plain`` — one sentence a line (PTB style); blank lines are skipped;
* ``kaldi`` — Kaldi ``text`` files, ``<utt-id> w1 w2 ...`` (a line with only the
  id is an empty sentence).

:func:`kaldi_text_notice` says when a file about to be read as plain text looks
like a Kaldi ``text`` file.

Outputs are first written to a temporary file in the destination directory,
flushed to disk and then renamed over the destination, so a killed process
never leaves a partly written output behind.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterator, List, Optional, Tuple

from rescorer.errors import AdmmqError, FormatError, PathLike


def _open_binary(path: PathLike) -> IO[bytes]:
    p = Path(path)
    if not p.exists():
        raise AdmmqError("no such file", p)
    if p.is_dir():
        raise AdmmqError("is a directory, expected a file", p)
    fh = open(p, "rb")  # opened once and peeked, so a pipe (``<(zcat ...)``) loses nothing
    if fh.peek(2)[:2] == b"\x1f\x8b":
        gz = gzip.GzipFile(fileobj=fh, mode="rb")
        gz.myfileobj = fh  # GzipFile closes `myfileobj` on close, as when it opens a path itself
        return gz  # type: ignore[return-value]
    return fh


def open_binary(path: PathLike) -> IO[bytes]:
    """Open ``path`` for reading bytes, transparently un-gzipping gzip files (missing file: :class:`AdmmqError`)."""
    return _open_binary(path)


def open_text(path: PathLike) -> IO[str]:
    """Open ``path`` for reading text (UTF-8), transparently un-gzipping gzip files.

    Missing files and directories raise :class:`AdmmqError`.
    """
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8", errors="strict", newline=None)


def iter_lines(path: PathLike) -> Iterator[Tuple[int, str]]:
    """Yield ``(line_number, line)`` (1-based; ``\n`` and ``\r\n`` stripped) of a text file, plain or gzip.

    Bytes that are not UTF-8 raise :class:`FormatError` naming the line.
    """
    lineno = 0
    with _open_binary(path) as fh:
        try:
            for lineno, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise FormatError(f"not valid UTF-8 ({exc.reason} at byte {exc.start + 1})", path,
                                      lineno) from None
                yield lineno, line.rstrip("\r\n")
        except (OSError, EOFError) as exc:  # truncated or corrupt gzip
            raise FormatError(f"cannot read: {exc}", path, lineno + 1) from None


def read_lines(path: PathLike) -> List[str]:
    """All lines of a text file, plain or gzip, read at once (``\n`` and ``\r\n`` stripped).

    The same lines as :func:`iter_lines`, several times faster on large files; on bad
    UTF-8 or a corrupt gzip it raises :func:`iter_lines`' error (naming the line).
    """
    try:
        with _open_binary(path) as fh:
            text = fh.read().decode("utf-8")
    except (UnicodeDecodeError, OSError, EOFError):
        for _ in iter_lines(path):  # raises the located error
            pass
        raise FormatError("cannot read", path) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.rstrip("\r") for ln in lines]


def existing_ancestor(path: PathLike) -> Path:
    """The nearest of ``path`` and its parents that exists (``.`` for a relative path with none)."""
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists() or q.is_symlink():
            return q
    return Path(".")


def check_writable(path: PathLike) -> None:
    """Fail early (before any work) if ``path`` cannot be created or replaced.

    Missing parent directories are fine (the writer creates them, :func:`atomic_path`) when the nearest
    existing one is a writable directory.
    """
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise AdmmqError("is a directory, expected an output file name", p)
    base = existing_ancestor(parent)
    if not base.is_dir():
        raise AdmmqError("is not a directory (expected an output directory)", base)
    if not os.access(base, os.W_OK | os.X_OK):
        raise AdmmqError("output directory is not writable", base)


def make_output_dir(path: PathLike) -> Path:
    """Create the output directory ``path`` (and its parents) or fail with one clear line; check it is writable."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise AdmmqError("exists and is not a directory", p) from None
    except OSError as exc:
        raise AdmmqError(f"cannot create the output directory: {exc.strerror}", p) from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise AdmmqError("output directory is not writable", p)
    return p


def check_free_space(directory: PathLike, need_bytes: int, what: str) -> None:
    """Fail before the work starts when ``directory``'s file system has less than ``need_bytes`` free."""
    free = shutil.disk_usage(directory).free
    if free < need_bytes:
        raise AdmmqError(f"not enough free disk space for {what}: {free / 2**20:.1f} MiB free, about "
                         f"{need_bytes / 2**20:.1f} MiB needed", directory)


def remove_stale_temps(directory: PathLike, names) -> int:
    """Remove temporary files that a killed writer of ``names`` left in ``directory`` (``.NAME.*.tmp``)."""
    removed = 0
    for name in names:
        for tmp in Path(directory).glob(f".{name}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed += 1
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Give a temporary path beside ``path`` (its missing parent directories created); on success rename it
    over ``path``.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    dest = Path(path)
    check_writable(dest)
    if str(dest.parent):
        make_output_dir(dest.parent)  # every -o creates its missing parent directories
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=str(dest.parent or "."))
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, dest)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and exc.errno is not None:
            raise AdmmqError(f"cannot write: {exc.strerror}", dest) from None
        raise


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", encoding: str = "utf-8") -> Iterator[IO]:
    """Open a file for writing that appears at ``path`` only when closed without error."""
    with atomic_path(path) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": "\n"}
        with open(tmp, mode, **kwargs) as fh:
            yield fh


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
