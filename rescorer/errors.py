"""User-facing errors.

Every problem a user can cause (a missing file, a malformed line, a checkpoint
that does not match) is raised as :class:`AdmmqError` with the place it was
found.  The command line prints it as one line and exits non-zero; library
callers can catch it.
"""

from __future__ import annotations

from typing import Optional, Union
import os

PathLike = Union[str, "os.PathLike[str]"]


class AdmmqError(Exception):
    """An error caused by the user's input, reported as one line.

    ``path`` and ``line`` (1-based) locate the problem when it has a place.
    """

    def __init__(self, message: str, path: Optional[PathLike] = None, line: Optional[int] = None):
        self.message = message
        self.path = None if path is None else os.fspath(path)
        self.line = line
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


class FormatError(AdmmqError):
    """A file that does not follow the format it should (bad line, bad header, bad bytes)."""


class MismatchError(AdmmqError):
    """Two inputs that do not belong together (vocabulary vs. checkpoint, key sets, shapes)."""
