"""Where a command's wall time went: named phases, and the time before the command started.

``admmq rescore`` records its phases (reading the lists, loading the LMs,
scoring, choosing the weights and WER, writing) in ``summary.json`` under
``timing``, with ``startup``: the seconds from the process's start to the
command's first line (Python, imports).  ``bench/rescore_profile.py`` prints
them as a table.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Dict, Iterator, Optional


def seconds_since_process_start() -> Optional[float]:
    """Wall seconds since this process started (Linux ``/proc``; 10 ms resolution), else None."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        with open("/proc/uptime", "rb") as fh:
            uptime = float(fh.read().split()[0])
        start_ticks = int(fields[19])  # field 22 of stat(5); fields[0] is field 3
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class Phases:
    """Accumulated wall seconds per phase name, in the order first seen."""

    def __init__(self, startup: Optional[float] = None):
        self.seconds: Dict[str, float] = {}
        if startup is not None:
            self.seconds["startup"] = startup
        self.t0 = time.perf_counter()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def to_dict(self) -> Dict[str, float]:
        """The phases, and ``in_command``: seconds since this object was made."""
        d = {k: round(v, 4) for k, v in self.seconds.items()}
        d["in_command"] = round(time.perf_counter() - self.t0, 4)
        return d
