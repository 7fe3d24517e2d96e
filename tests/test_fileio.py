"""Reading text inputs that are pipes (``<(zcat ...)``, FIFOs): gzip detection must not lose bytes."""

import gzip
import os
import threading

import pytest

from rescorer.errors import AdmmqError
from rescorer.fileio import iter_lines

needs_fifo = pytest.mark.skipif(not os.path.exists("/dev/fd"), reason="no /dev/fd on this system")


def fifo_with(tmp_path, data: bytes):
    """A pipe named as /dev/fd/N (what bash's ``<(...)`` gives), fed by a thread."""
    r, w = os.pipe()

    def write():
        with os.fdopen(w, "wb") as fh:
            fh.write(data)
    t = threading.Thread(target=write, daemon=True)
    t.start()
    return f"/dev/fd/{r}", t, r


@needs_fifo
@pytest.mark.parametrize("compress", [False, True])
def test_text_from_a_pipe_keeps_every_line(tmp_path, compress):
    text = "".join(f"line {i} of the text\n" for i in range(2000)).encode()
    path, t, fd = fifo_with(tmp_path, gzip.compress(text) if compress else text)
    lines = list(iter_lines(path))
    t.join(5)
    os.close(fd)
    assert len(lines) == 2000 and lines[0] == (1, "line 0 of the text") and lines[-1][1] == "line 1999 of the text"


def test_missing_parent_directories_are_checked_early_and_created_on_write(tmp_path):
    from rescorer.fileio import atomic_open, check_writable

    dest = tmp_path / "a" / "b" / "out.txt"
    check_writable(dest)  # the nearest existing directory is writable: fine, and nothing is created yet
    assert not (tmp_path / "a").exists()
    with atomic_open(dest) as fh:
        fh.write("x\n")
    assert dest.read_text() == "x\n" and not list(dest.parent.glob(".*.tmp"))
    (tmp_path / "f").write_text("")
    with pytest.raises(AdmmqError, match="is not a directory"):
        check_writable(tmp_path / "f" / "c" / "out.txt")
