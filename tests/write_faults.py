"""A file wrapper that fails at a chosen point of its writes (full disk, kill -9 mid-write) for test_faults."""

import errno
import os
import signal


class FileWithFault:
    """Writes pass through to ``fh`` until ``room`` bytes (or characters) are in it; the write that crosses
    the limit stores what fits, flushes and calls ``fault()`` (which raises or kills the process)."""

    def __init__(self, fh, room, fault):
        self._fh, self.room, self.fault = fh, room, fault

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._fh.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def write(self, data):
        if len(data) <= self.room:
            self.room -= len(data)
            return self._fh.write(data)
        self._fh.write(data[: self.room])
        self._fh.flush()
        self.room = 0
        self.fault()
        return 0


def disk_full():
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def kill_self():
    os.kill(os.getpid(), signal.SIGKILL)
