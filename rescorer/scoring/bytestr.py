"""sctk's text conventions: bytes, ASCII whitespace, ASCII-only case.

sclite (default ``-e`` encoding), ``rfilter1`` and ``csrfilt.sh`` (perl on bytes) treat text as
bytes: whitespace is ``[ \\t\\n\\v\\f\\r]``, case folding changes ``A-Z`` / ``a-z`` only, lengths are byte
counts.  A *byte string* here is a ``str`` holding UTF-8 bytes decoded as latin-1 (one character per
byte), so Python's string operations give the same answers as the C and perl code; note that
``str.split()`` and ``\\s`` in a regex without ``re.ASCII`` would also split on ``\\xa0`` (a UTF-8
continuation byte), which is why :func:`split_ws` exists.
"""

from __future__ import annotations

import re
from typing import List

WHITESPACE = " \t\n\v\f\r"
_WS = re.compile(r"[ \t\n\v\f\r]+")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def to_bytestr(text: str) -> str:
    """Unicode text -> its UTF-8 bytes as a latin-1 ``str``."""
    return text.encode("utf-8").decode("latin-1")


def from_bytestr(text: str) -> str:
    """Inverse of :func:`to_bytestr` (bytes that are not UTF-8 are kept as replacement characters)."""
    return text.encode("latin-1").decode("utf-8", errors="replace")


def split_ws(text: str) -> List[str]:
    """Fields separated by ASCII whitespace (no empty fields)."""
    return [t for t in _WS.split(text) if t]


def upper_ascii(text: str) -> str:
    """``tr/a-z/A-Z/``."""
    return text.translate(_UPPER)


def lower_ascii(text: str) -> str:
    """C ``tolower`` in the C locale, byte by byte."""
    return text.translate(_LOWER)


def is_space(ch: str) -> bool:
    """C ``isspace`` in the C locale."""
    return ch in WHITESPACE
