"""Reading text files (plain or gzip) and writing outputs atomically.

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
from pathlib import Path
from typing import IO, Iterator, Tuple

from .errors import AdmmqError, FormatError, PathLike


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
