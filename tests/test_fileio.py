"""Reading text inputs that are pipes (``<(zcat ...)``, FIFOs): gzip detection must not lose bytes."""

import gzip
import os
import threading

import pytest

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
