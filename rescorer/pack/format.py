"""The packed low-bit LM file format: constants, layout and the in-memory forms.

The deployable form of a quantized LSTM LM.

``admmq export`` writes, and :func:`rescorer.pack.lm_file.load_lm` reads, a
self-describing file that stores every quantized matrix as its bit-packed
codes plus its small ``basis`` and ``alpha`` tables (``W[r,c] = sum_k
alpha[g(r),k] * basis[codes[r,c],k]``, see :mod:`rescorer.lm.quantized`), every
other tensor (biases, scales, unquantized matrices) in full precision, and the
model config, method config and vocabulary.  Reading it never unpickles
anything: it is a fixed preamble, a JSON header and raw little-endian buffers.

Layout (version 1; all integers little-endian)::

    offset  size  field
    0       8     magic  b"ADMMQPK\\x00"
    8       4     uint32 format version (1)
    12      4     uint32 H = length of the JSON header in bytes
    16      4     uint32 CRC-32 (zlib.crc32) of those H header bytes
    20      4     uint32 reserved, must be 0
    24      H     JSON header, UTF-8, right-padded with spaces so 24 + H is a
                  multiple of 64 (the payload starts 64-byte aligned)
    24+H    P     payload: the buffers, each at a 64-byte aligned offset,
                  zero bytes between them; no bytes after the last one

The file is exactly ``24 + H + P`` bytes.  JSON header keys:

* ``format`` ``"admmq-packed"``, ``version`` 1, ``writer`` (admmq version);
* ``model_config``, ``method_config``: as in a training checkpoint;
* ``units``: ``{"kind": "word", "unk": ..., "count": N, "tensor": "units"}``
  (the symbols, one per line, UTF-8, zlib-compressed; an imported model whose
  one symbol marks both sentence ends adds ``"sent_boundary"``, that symbol) or ``{"kind": "spm",
  "tensor": "units"}`` (the SentencePiece model bytes, zlib-compressed);
* ``alpha_dtype``: ``"float32"`` or ``"float16"``;
* ``tensors``: name -> ``{"role", "dtype", "shape", "offset", "nbytes"}``;
  offsets are relative to the payload start.  ``role`` is ``codes`` (dtype
  ``"packed"``, shape (R, C), plus ``"packing"``: ``{"scheme": "bits", "bits":
  b}`` or ``{"scheme": "base", "base": B, "per_byte": m}``, see
  :mod:`rescorer.pack.bitpack`), ``basis`` (L, K) and ``alpha`` (G, K) tables,
  ``matrix`` / ``vector`` (a full-precision model tensor, by its parameter
  name), or ``units`` (dtype ``"zlib"``, shape [uncompressed bytes]);
  dtypes: ``float32``, ``float16``, ``int64``, ``packed``, ``zlib``;
* ``quantized``: matrix name -> ``{"codes", "basis", "alpha"}`` tensor names
  and ``"levels"`` L;
* ``payload_bytes`` P and ``payload_sha256`` (hex SHA-256 of the P payload bytes).

Tensor names: a quantized matrix ``M`` stores ``M.codes``, ``M.basis``,
``M.alpha``; a full-precision tensor keeps its parameter name.  A reader
checks the magic, version, header CRC, size, payload checksum, that each
buffer lies in the payload with the size its shape, dtype and packing imply,
that each packing holds the matrix's levels and that every code is below L;
any failure is a one-line :class:`FormatError`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List

from rescorer.pack.bitpack import CodePacking
from rescorer.errors import MismatchError

if TYPE_CHECKING:  # the packed form is read without PyTorch for the CPU kernels (rescorer/pack/numpy_lm.py)
    import torch

    from rescorer.lm.quantized import QuantizedMatrix

MAGIC = b"ADMMQPK\x00"
VERSION = 1
FORMAT = "admmq-packed"
ALIGN = 64
PREAMBLE = struct.Struct("<8sIIII")  # magic, version, header length, header CRC-32, reserved (0)
_NP_DTYPES = {"float32": "<f4", "float16": "<f2", "int64": "<i8"}
ALPHA_DTYPES = {"fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16"}


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


@dataclass
class PackedModel:
    """What a packed file holds, in memory (model order: quantized matrices, then the rest)."""

    model_config: Dict[str, Any]
    method_config: Dict[str, Any]
    units_state: Dict[str, Any]
    dense: Dict[str, torch.Tensor]  # every model tensor that is not a quantized matrix
    quantized: Dict[str, QuantizedMatrix]
    packings: Dict[str, CodePacking] = field(default_factory=dict)
    alpha_dtype: str = "float32"

    @classmethod
    def from_checkpoint(cls, data: Dict[str, Any], quantized: Dict[str, QuantizedMatrix]) -> "PackedModel":
        stray = sorted(set(quantized) - set(data["model"]))
        if stray:
            raise MismatchError(f"quantized matrices {stray} are not model parameters")
        dense = {k: v for k, v in data["model"].items() if k not in quantized}
        method = dict(data.get("method_config") or {})
        self_norm = (data.get("train_config") or {}).get("self_norm")
        if self_norm:  # a self-normalised model stays one in its packed form (admmq rescore --no-normalize-probs)
            method["self_norm"] = float(self_norm)
        return cls(dict(data["model_config"]), method, data["units"], dense, quantized)


@dataclass
class EncodedFile:
    """A packed file in memory: its header and buffers; ``size`` is the file size it will have."""

    header: Dict[str, Any]
    header_bytes: bytes
    payload: bytes

    @property
    def size(self) -> int:
        return PREAMBLE.size + len(self.header_bytes) + len(self.payload)

    def chunks(self) -> List[bytes]:
        crc = zlib.crc32(self.header_bytes)
        return [PREAMBLE.pack(MAGIC, VERSION, len(self.header_bytes), crc, 0), self.header_bytes, self.payload]
