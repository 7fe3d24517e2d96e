"""Packing small integer codes (0 .. L-1) into bytes, and back, bit-exactly.

A matrix's codes are packed as one stream in row-major order (rows are *not*
padded); only the stream's last byte is padded, with zero bits / zero digits.
Two schemes, both little-endian:

``bits`` (``b`` = 1 .. 8 bits per code, holds ``2**b`` levels)
    Code ``i`` occupies stream bits ``[i*b, (i+1)*b)``, least significant bit
    first; stream bit ``t`` is bit ``t % 8`` (value ``1 << (t % 8)``) of byte
    ``t // 8``.  A code may straddle two bytes (``b`` = 3, 5, 6, 7).  Size
    ``ceil(n*b / 8)`` bytes.  For ``b`` dividing 8 this is the same as base
    ``2**b`` below with ``8/b`` codes per byte.

``base`` (base ``B``, ``m`` codes per byte, ``B**m <= 256``, holds ``B`` levels)
    Byte ``j`` holds codes ``j*m .. j*m+m-1`` as base-``B`` digits, least
    significant first: ``byte = sum_i code[j*m+i] * B**i``.  Size ``ceil(n/m)``
    bytes, ``8/m`` bits per code: base 3 x 5 codes = 1.6 bits (243 <= 256),
    base 5 or 6 x 3 codes = 2.67 bits (216 <= 256).  This beats the power-of-two
    width for 3, 5 and 6 levels ({0,±1}, {0,±1,±2}, {±1,±2,±4}).

:class:`CodePacking` names a scheme; :func:`pack_codes` / :func:`unpack_codes`
are the vectorised numpy kernels; :func:`parse_bits` reads ``--bits``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Optional, Union

import numpy as np

from rescorer.errors import AdmmqError, FormatError


def _digits_per_byte(base: int) -> int:
    """Largest m with base**m <= 256."""
    m = 0
    while base ** (m + 1) <= 256:
        m += 1
    return m


@dataclass(frozen=True)
class CodePacking:
    """``bits=b`` (bit stream, b in 1..8) or ``base=B`` (B in 2..256, as many digits per byte as fit)."""

    bits: int = 0
    base: int = 0

    def __post_init__(self) -> None:
        if (self.bits == 0) == (self.base == 0):
            raise ValueError(f"exactly one of bits/base must be set, got bits={self.bits} base={self.base}")
        if self.bits and not 1 <= self.bits <= 8:
            raise ValueError(f"bits must be 1..8, got {self.bits}")
        if self.base and not 2 <= self.base <= 256:
            raise ValueError(f"base must be 2..256, got {self.base}")

    @property
    def per_byte(self) -> int:
        """Codes per byte (base scheme); for the bit stream 8 / bits (may be fractional)."""
        return _digits_per_byte(self.base) if self.base else 8 // self.bits

    @property
    def capacity(self) -> int:
        """How many levels a code can take."""
        return self.base if self.base else 1 << self.bits

    @property
    def bits_per_code(self) -> float:
        return 8.0 / self.per_byte if self.base else float(self.bits)

    @property
    def label(self) -> str:
        """``"1"``, ``"3"``, ``"1.6"``, ``"2.67"``: bits per code as ``--bits`` spells it."""
        b = self.bits_per_code
        return str(int(b)) if b == int(b) else f"{b:.3g}"

    def describe(self) -> str:
        if self.base:
            return f"{self.label} bits (base {self.base}, {self.per_byte} codes per byte)"
        return f"{self.bits} bit{'s' if self.bits > 1 else ''}"

    def nbytes(self, n: int) -> int:
        """Packed size of ``n`` codes."""
        if self.base:
            return -(-n // self.per_byte)
        return -(-n * self.bits // 8)

    def to_dict(self) -> Dict[str, int]:
        if self.base:
            return {"scheme": "base", "base": self.base, "per_byte": self.per_byte}
        return {"scheme": "bits", "bits": self.bits}

    @classmethod
    def from_dict(cls, d: object) -> "CodePacking":
        """Inverse of :meth:`to_dict`; anything malformed is a :class:`FormatError`."""
        try:
            assert isinstance(d, dict)
            if d["scheme"] == "bits":
                return cls(bits=int(d["bits"]))
            if d["scheme"] == "base":
                p = cls(base=int(d["base"]))
                if int(d["per_byte"]) != p.per_byte:
                    raise ValueError(f"base {p.base} packs {p.per_byte} codes per byte, not {d['per_byte']}")
                return p
            raise ValueError(f"unknown scheme {d['scheme']!r}")
        except (AssertionError, KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"bad code packing {d!r}: {exc}") from None


# ------------------------------------------------------------------ kernels
@lru_cache(maxsize=None)
def _digit_table(base: int, m: int) -> np.ndarray:
    """(256, m) uint8: the base-``base`` digits of every byte value, least significant first."""
    v = np.arange(256, dtype=np.int64)[:, None] // (base ** np.arange(m, dtype=np.int64))[None, :]
    return (v % base).astype(np.uint8)


def _as_base(p: CodePacking) -> Optional[CodePacking]:
    """The bit stream with b | 8 is base 2**b; other widths have no byte-aligned base form."""
    if p.base:
        return p
    return CodePacking(base=1 << p.bits) if 8 % p.bits == 0 else None


def pack_codes(codes: np.ndarray, packing: CodePacking) -> np.ndarray:
    """Pack ``codes`` ((n,) or any shape, read row-major; uint8, each < capacity) -> (nbytes,) uint8."""
    flat = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1)
    n = flat.size
    if n and int(flat.max()) >= packing.capacity:
        raise ValueError(f"code {int(flat.max())} does not fit {packing.describe()} "
                         f"({packing.capacity} levels at most)")
    bp = _as_base(packing)
    if bp is not None:
        m = bp.per_byte
        padded = np.zeros(packing.nbytes(n) * m, dtype=np.uint8)
        padded[:n] = flat
        acc = np.zeros(packing.nbytes(n), dtype=np.int32)
        for i in range(m):
            acc += padded[i::m].astype(np.int32) * (bp.base ** i)
        return acc.astype(np.uint8)
    # 8 codes of b bits = b bytes: build each group as a little-endian 64-bit word, keep its low b bytes
    b, nbytes = packing.bits, packing.nbytes(n)
    groups = -(-n // 8)
    padded = np.zeros(groups * 8, dtype=np.uint64)
    padded[:n] = flat
    words = np.zeros(groups, dtype="<u8")
    for i in range(8):
        words |= padded[i::8] << np.uint64(i * b)
    return words.view(np.uint8).reshape(groups, 8)[:, :b].reshape(-1)[:nbytes].copy()


def unpack_codes(buf: Union[np.ndarray, bytes, memoryview], n: int, packing: CodePacking) -> np.ndarray:
    """Inverse of :func:`pack_codes`: ``n`` codes as (n,) uint8.

    A buffer of the wrong size, or a byte no valid packing produces (base
    scheme: value >= base**per_byte), raises ``ValueError``.
    """
    data = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf.reshape(-1)
    if data.size != packing.nbytes(n):
        raise ValueError(f"{n} codes at {packing.describe()} take {packing.nbytes(n)} bytes, got {data.size}")
    if packing.bits == 1:  # the common binary case: numpy's own little-endian bit unpacking
        return np.unpackbits(data, count=n, bitorder="little")
    bp = _as_base(packing)
    if bp is not None:
        m = bp.per_byte
        if bp.base ** m < 256 and data.size and int(data.max()) >= bp.base ** m:
            raise ValueError(f"byte value {int(data.max())} is not {m} base-{bp.base} digits")
        return _digit_table(bp.base, m)[data].reshape(-1)[:n]
    b = packing.bits
    groups = -(-n // 8)
    padded = np.zeros(groups * b, dtype=np.uint8)
    padded[: data.size] = data
    tmp = np.zeros((groups, 8), dtype=np.uint8)
    tmp[:, :b] = padded.reshape(groups, b)
    words = tmp.view("<u8").reshape(-1)
    out = np.empty(groups * 8, dtype=np.uint8)
    mask = np.uint64((1 << b) - 1)
    for i in range(8):
        out[i::8] = (words >> np.uint64(i * b)) & mask
    return out[:n]


# ------------------------------------------------------------------ choosing
DENSE = {"1.6": CodePacking(base=3), "2.67": CodePacking(base=6)}
BITS_CHOICES = ("auto", "1", "2", "3", "4", "5", "6", "7", "8", "1.6", "2.67")


def parse_bits(text: str) -> Optional[CodePacking]:
    """``--bits``: ``auto`` (None: smallest per matrix), ``1``..``8``, ``1.6`` (base 3) or ``2.67`` (base 6)."""
    t = str(text).strip().lower()
    if t == "auto":
        return None
    if t.isdigit() and 1 <= int(t) <= 8:
        return CodePacking(bits=int(t))
    try:
        f = float(t)
    except ValueError:
        f = math.nan
    for label, p in DENSE.items():
        if abs(f - p.bits_per_code) < 0.01:
            return p
    raise AdmmqError(f"--bits {text!r}: expected auto, an integer 1-8, 1.6 (5 ternary codes per byte) "
                     f"or 2.67 (3 six-level codes per byte)")


def smallest_packing(levels: int) -> CodePacking:
    """The fewest bits per code that holds ``levels`` levels (ties: the plain bit stream)."""
    best = CodePacking(bits=max(1, (max(levels, 1) - 1).bit_length()))
    if 2 < levels <= 256:
        dense = CodePacking(base=levels)
        if dense.bits_per_code < best.bits_per_code:
            best = dense
    if best.capacity < levels:
        raise AdmmqError(f"{levels} levels cannot be packed (256 at most)")
    return best


def choose_packing(request: Optional[CodePacking], levels: int, matrix: str) -> CodePacking:
    """The packing for a matrix of ``levels`` levels: ``request``, or the smallest when None.

    A request too narrow for the matrix is an :class:`AdmmqError` naming it.
    """
    if request is None:
        return smallest_packing(levels)
    if request.capacity < levels:
        need = smallest_packing(levels)
        raise AdmmqError(f"matrix {matrix!r} has {levels} levels; --bits {request.label} holds at most "
                         f"{request.capacity} (needs --bits {need.label} or more, or --bits auto)")
    return request
