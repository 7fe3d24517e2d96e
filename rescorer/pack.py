"""Packed low-bit LM files: the deployable form of a quantized LSTM LM.

``admmq export`` writes, and :func:`rescorer.checkpoint.load_lm` reads, a
self-describing file that stores every quantized matrix as its bit-packed
codes plus its small ``basis`` and ``alpha`` tables (``W[r,c] = sum_k
alpha[g(r),k] * basis[codes[r,c],k]``, see :mod:`rescorer.quant.qmatrix`), every
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
  (the symbols, one per line, UTF-8, zlib-compressed) or ``{"kind": "spm",
  "tensor": "units"}`` (the SentencePiece model bytes, zlib-compressed);
* ``alpha_dtype``: ``"float32"`` or ``"float16"``;
* ``tensors``: name -> ``{"role", "dtype", "shape", "offset", "nbytes"}``;
  offsets are relative to the payload start.  ``role`` is ``codes`` (dtype
  ``"packed"``, shape (R, C), plus ``"packing"``: ``{"scheme": "bits", "bits":
  b}`` or ``{"scheme": "base", "base": B, "per_byte": m}``, see
  :mod:`rescorer.bitpack`), ``basis`` (L, K) and ``alpha`` (G, K) tables,
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

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from . import __version__
from .checkpoint import (LoadedLM, build_model, quantized_from_state, read_checkpoint, resolve_lm_path,
                         units_for_model)
from .bitpack import CodePacking, choose_packing, pack_codes, unpack_codes
from .errors import AdmmqError, FormatError, MismatchError, PathLike
from .fileio import atomic_path
from .quant.qmatrix import QuantizedMatrix

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
        return cls(dict(data["model_config"]), dict(data.get("method_config") or {}), data["units"], dense,
                   quantized)


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


# ------------------------------------------------------------------ writing
def _units_buffer(state: Dict[str, Any]) -> Tuple[Dict[str, Any], bytes]:
    kind = state.get("kind")
    if kind == "word":
        symbols = list(state["symbols"])
        bad = next((s for s in symbols if "\n" in s or not s), None)
        if bad is not None:
            raise AdmmqError(f"vocabulary symbol {bad!r} cannot be stored (empty or contains a newline)")
        return {"kind": "word", "unk": state["unk"], "count": len(symbols)}, "\n".join(symbols).encode("utf-8")
    if kind == "spm":
        proto = state["model_proto"]
        raw = bytes(proto.numpy().tobytes()) if hasattr(proto, "numpy") else bytes(proto)
        return {"kind": "spm"}, raw
    raise AdmmqError(f"unknown unit kind {kind!r} in the vocabulary")


def _json_safe(d: Any) -> Any:
    """Config values as JSON (tuples become lists; anything exotic its string form)."""
    return json.loads(json.dumps(d, default=lambda o: list(o) if isinstance(o, (tuple, set)) else str(o)))


def encode_packed(pm: PackedModel, request: Optional[CodePacking] = None,
                  alpha_dtype: str = "float32") -> EncodedFile:
    """Lay out ``pm`` as a packed file; ``request`` None packs each matrix at its smallest width.

    Raises :class:`AdmmqError` naming the matrix when its levels do not fit ``request``.
    """
    alpha_dtype = ALPHA_DTYPES.get(alpha_dtype, alpha_dtype)
    if alpha_dtype not in ("float32", "float16"):
        raise AdmmqError(f"alpha dtype must be fp32 or fp16, got {alpha_dtype!r}")
    tensors: Dict[str, Dict[str, Any]] = {}
    quantized: Dict[str, Dict[str, Any]] = {}
    parts: List[bytes] = []
    offset = 0

    def add(name: str, role: str, dtype: str, shape, data: bytes, **extra) -> None:
        nonlocal offset
        pad = _align(offset) - offset
        if pad:
            parts.append(b"\x00" * pad)
        offset += pad
        tensors[name] = {"role": role, "dtype": dtype, "shape": [int(s) for s in shape], "offset": offset,
                         "nbytes": len(data), **extra}
        parts.append(data)
        offset += len(data)

    def add_float(name: str, role: str, t: torch.Tensor, dtype: str) -> None:
        arr = np.ascontiguousarray(t.detach().cpu().numpy(), dtype=_NP_DTYPES[dtype])
        if dtype == "float16" and not np.isfinite(arr).all():
            raise AdmmqError(f"{name} does not fit fp16 (|value| > 65504); use --alpha-dtype fp32")
        add(name, role, dtype, t.shape, arr.tobytes())

    for name, q in pm.quantized.items():
        packing = choose_packing(request, q.levels, name)
        codes = q.codes.detach().cpu().numpy()
        add(f"{name}.codes", "codes", "packed", codes.shape, pack_codes(codes, packing).tobytes(),
            packing=packing.to_dict())
        add_float(f"{name}.basis", "basis", q.basis.float(), "float32")
        add_float(f"{name}.alpha", "alpha", q.alpha.float(), alpha_dtype)
        quantized[name] = {"codes": f"{name}.codes", "basis": f"{name}.basis", "alpha": f"{name}.alpha",
                           "levels": q.levels}
    for name, t in pm.dense.items():
        if name in tensors:
            raise AdmmqError(f"tensor name {name!r} is used twice")
        dtype = {torch.float16: "float16", torch.int64: "int64"}.get(t.dtype, "float32")
        add_float(name, "matrix" if t.dim() == 2 else "vector", t, dtype)
    units_meta, raw = _units_buffer(pm.units_state)
    add("units", "units", "zlib", [len(raw)], zlib.compress(raw, 9))
    payload = b"".join(parts)
    header = {"format": FORMAT, "version": VERSION, "writer": f"admmq {__version__}",
              "model_config": _json_safe(pm.model_config), "method_config": _json_safe(pm.method_config),
              "units": {**units_meta, "tensor": "units"}, "alpha_dtype": alpha_dtype, "tensors": tensors,
              "quantized": quantized, "payload_bytes": len(payload),
              "payload_sha256": hashlib.sha256(payload).hexdigest()}
    text = json.dumps(header, sort_keys=True, ensure_ascii=False).encode("utf-8")
    text += b" " * (_align(PREAMBLE.size + len(text)) - PREAMBLE.size - len(text))
    return EncodedFile(header, text, payload)


def write_packed(path: PathLike, encoded: EncodedFile) -> None:
    """Write atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            for chunk in encoded.chunks():
                fh.write(chunk)


# ------------------------------------------------------------------ reading
def is_packed_file(path: PathLike) -> bool:
    """True if ``path`` is a file that starts with the packed magic."""
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as fh:
        return fh.read(len(MAGIC)) == MAGIC


class _Reader:
    """Parses and checks one packed file's bytes; every failure is a FormatError naming the file."""

    def __init__(self, path: PathLike, data: bytes):
        self.path = Path(path)
        self.data = memoryview(data)

    def fail(self, msg: str) -> None:
        raise FormatError(msg, self.path)

    def header(self) -> Tuple[Dict[str, Any], int]:
        size = len(self.data)
        if size < PREAMBLE.size:
            self.fail(f"truncated: {size} bytes, a packed file starts with a {PREAMBLE.size}-byte preamble")
        magic, version, hlen, crc, reserved = PREAMBLE.unpack_from(self.data, 0)
        if magic != MAGIC:
            self.fail(f"not an admmq packed file (magic {bytes(magic)!r}, expected {MAGIC!r})")
        if version != VERSION:
            self.fail(f"packed file version {version} is not supported (this admmq reads version {VERSION})")
        if reserved:
            self.fail(f"reserved preamble field is {reserved}, expected 0 (corrupt file?)")
        start = PREAMBLE.size + hlen
        if start > size:
            self.fail(f"truncated: {size} bytes, the header alone needs {start}")
        raw = bytes(self.data[PREAMBLE.size:start])
        if zlib.crc32(raw) != crc:
            self.fail("header checksum mismatch (corrupt file)")
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.fail(f"header is not valid JSON ({exc})")
        if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
            self.fail(f"header does not describe an {FORMAT!r} version {VERSION} file")
        for key, kind in (("model_config", dict), ("method_config", dict), ("units", dict), ("tensors", dict),
                          ("quantized", dict), ("payload_bytes", int), ("payload_sha256", str)):
            if not isinstance(header.get(key), kind):
                self.fail(f"header lacks {key!r} (or it is not a {kind.__name__})")
        if start % ALIGN:
            self.fail(f"payload offset {start} is not {ALIGN}-byte aligned")
        want = start + header["payload_bytes"]
        if size < want:
            self.fail(f"truncated: {size} bytes, the header promises {want}")
        if size > want:
            self.fail(f"{size - want} unexpected bytes after the payload (corrupt file?)")
        if hashlib.sha256(self.data[start:]).hexdigest() != header["payload_sha256"]:
            self.fail("payload checksum mismatch (corrupt file)")
        return header, start

    def buffer(self, header: Dict[str, Any], start: int, name: Any,
               role: Optional[str] = None) -> Tuple[dict, List[int], memoryview]:
        """A tensor's description, its shape and its bytes, checked against each other."""
        t = header["tensors"].get(name) if isinstance(name, str) else None
        if not isinstance(t, dict):
            self.fail(f"header names tensor {name!r} but does not describe it")
        off, nbytes, shape, dtype = t.get("offset"), t.get("nbytes"), t.get("shape"), t.get("dtype")
        if not (_is_int(off) and _is_int(nbytes) and isinstance(shape, list) and all(map(_is_int, shape))):
            self.fail(f"tensor {name!r} lacks an integer offset, nbytes or shape")
        if role is not None and t.get("role") != role:
            self.fail(f"tensor {name!r} has role {t.get('role')!r}, expected {role!r}")
        if off < 0 or nbytes < 0 or off + nbytes > header["payload_bytes"] or min(shape, default=0) < 0:
            self.fail(f"tensor {name!r} lies outside the payload")
        n = int(np.prod(shape)) if shape else 1
        if not isinstance(dtype, str):
            self.fail(f"tensor {name!r} has no dtype name")
        if dtype in _NP_DTYPES:
            expect = n * np.dtype(_NP_DTYPES[dtype]).itemsize
        elif dtype == "packed":
            expect = self.packing(t, name).nbytes(n)
        elif dtype == "zlib":
            expect = nbytes
        else:
            self.fail(f"tensor {name!r} has unknown dtype {dtype!r}")
        if nbytes != expect:
            self.fail(f"tensor {name!r}: {nbytes} bytes stored, its shape {shape} and dtype {dtype} need {expect}")
        return t, shape, self.data[start + off: start + off + nbytes]

    def packing(self, t: dict, name: str) -> CodePacking:
        try:
            return CodePacking.from_dict(t.get("packing"))
        except FormatError as exc:
            self.fail(f"tensor {name!r}: {exc.message}")

    def array(self, header, start, name, role=None) -> torch.Tensor:
        t, shape, buf = self.buffer(header, start, name, role)
        if t["dtype"] not in _NP_DTYPES:
            self.fail(f"tensor {name!r} has dtype {t['dtype']!r}, expected a number type")
        arr = np.frombuffer(buf, dtype=_NP_DTYPES[t["dtype"]]).reshape(shape)
        return torch.from_numpy(arr.astype(arr.dtype.newbyteorder("="), copy=True))

    def matrix(self, header, start, name: str, spec: Any) -> Tuple[QuantizedMatrix, CodePacking]:
        if not isinstance(spec, dict) or not all(isinstance(spec.get(k), str) for k in ("codes", "basis", "alpha")) \
                or not _is_int(spec.get("levels")):
            self.fail(f"quantized matrix {name!r} is not described by codes/basis/alpha/levels")
        basis = self.array(header, start, spec["basis"], "basis").float()
        alpha = self.array(header, start, spec["alpha"], "alpha").float()
        t, shape, buf = self.buffer(header, start, spec["codes"], "codes")
        packing = self.packing(t, spec["codes"])
        levels = int(basis.shape[0]) if basis.dim() == 2 else -1
        if levels != spec["levels"] or len(shape) != 2:
            self.fail(f"quantized matrix {name!r}: basis {tuple(basis.shape)} and codes {shape} disagree "
                      f"with its {spec['levels']} levels")
        if packing.capacity < levels:
            self.fail(f"quantized matrix {name!r} has {levels} levels but its codes are stored at "
                      f"{packing.describe()} ({packing.capacity} levels at most)")
        rows, cols = shape
        try:
            codes = unpack_codes(buf, rows * cols, packing)
        except ValueError as exc:
            self.fail(f"quantized matrix {name!r}: {exc}")
        if codes.size and int(codes.max()) >= levels:
            self.fail(f"quantized matrix {name!r} has code {int(codes.max())} but only {levels} levels")
        try:
            q = QuantizedMatrix(torch.from_numpy(codes.reshape(rows, cols)), basis, alpha)
        except ValueError as exc:
            self.fail(f"quantized matrix {name!r} is malformed: {exc}")
        return q, packing

    def units(self, header, start) -> Dict[str, Any]:
        meta = header["units"]
        t, shape, buf = self.buffer(header, start, meta.get("tensor"), "units")
        try:
            raw = zlib.decompress(buf)
        except zlib.error as exc:
            self.fail(f"vocabulary buffer does not decompress ({exc})")
        if [len(raw)] != shape:
            self.fail(f"vocabulary has {len(raw)} bytes, the header says {shape}")
        if meta.get("kind") == "word":
            try:
                symbols = raw.decode("utf-8").split("\n")
            except UnicodeDecodeError:
                self.fail("vocabulary is not UTF-8")
            if len(symbols) != meta.get("count"):
                self.fail(f"vocabulary has {len(symbols)} symbols, the header says {meta.get('count')}")
            return {"kind": "word", "symbols": symbols, "unk": meta.get("unk")}
        if meta.get("kind") == "spm":
            return {"kind": "spm", "model_proto": raw}
        self.fail(f"unknown unit kind {meta.get('kind')!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _read_bytes(path: PathLike) -> bytes:
    p = Path(path)
    if not p.exists():
        raise AdmmqError("no such file", p)
    if p.is_dir():
        raise AdmmqError("is a directory, expected a packed LM file", p)
    return p.read_bytes()


def read_packed(path: PathLike) -> Tuple[PackedModel, Dict[str, Any], int]:
    """Read and check a packed file: (model, header, file size)."""
    data = _read_bytes(path)
    r = _Reader(path, data)
    header, start = r.header()
    quantized: Dict[str, QuantizedMatrix] = {}
    packings: Dict[str, CodePacking] = {}
    tensors = header["tensors"]

    def position(name: Any) -> int:  # the writer's order (the model's) is the payload order
        t = tensors.get(name) if isinstance(name, str) else None
        return int(t["offset"]) if isinstance(t, dict) and isinstance(t.get("offset"), int) else -1

    specs = header["quantized"]
    for name in sorted(specs, key=lambda n: position(specs[n].get("codes") if isinstance(specs[n], dict) else "")):
        quantized[name], packings[name] = r.matrix(header, start, name, specs[name])
    dense = {name: r.array(header, start, name) for name in sorted(tensors, key=position)
             if isinstance(tensors[name], dict) and tensors[name].get("role") in ("matrix", "vector")}
    pm = PackedModel(header["model_config"], header["method_config"], r.units(header, start), dense, quantized,
                     packings, str(header.get("alpha_dtype", "float32")))
    return pm, header, len(data)


@torch.no_grad()
def dequantize_into(q: QuantizedMatrix, out: torch.Tensor, rows: int = 256) -> None:
    """Write ``q.dequantize()`` into ``out`` (R, C), ``rows`` rows at a time.

    The same values bit for bit (a lookup in ``q.table()``), without the
    full-size int64 index and float32 copies that ``dequantize`` makes.
    """
    assert out.is_contiguous() and tuple(out.shape) == q.shape, (tuple(out.shape), q.shape)
    table = q.table().to(out.dtype)
    for r0 in range(0, q.shape[0], rows):
        codes = q.codes[r0: r0 + rows].long()
        if table.shape[0] == 1:  # layer tying: one table (index_select is the fastest lookup here)
            torch.index_select(table[0], 0, codes.reshape(-1), out=out[r0: r0 + rows].reshape(-1))
        else:
            torch.gather(table[r0: r0 + rows], 1, codes, out=out[r0: r0 + rows])


def load_packed_lm(path: PathLike, device: str = "cpu") -> LoadedLM:
    """A ready-to-score :class:`rescorer.checkpoint.LoadedLM` (kind ``"packed"``) from a packed file."""
    pm, header, size = read_packed(path)
    weights = dict(pm.dense)
    for name, q in pm.quantized.items():  # shape-only placeholders, filled in below
        weights[name] = torch.zeros((), dtype=torch.float32).expand(q.shape)
    try:
        model = build_model(pm.model_config, weights, {}, str(path))  # checks every name and shape
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise FormatError(f"model config {pm.model_config} is malformed ({msg})", path) from None
    params = dict(model.named_parameters())
    for name, q in pm.quantized.items():
        dequantize_into(q, params[name].data)
    units = units_for_model(pm.units_state, model, path)
    model.to(device)
    meta = {"file_bytes": size, "alpha_dtype": pm.alpha_dtype, "writer": header.get("writer"),
            "bits": {name: p.label for name, p in pm.packings.items()}}
    return LoadedLM(model=model, units=units, path=str(path), kind="packed", method_config=dict(pm.method_config),
                    quantized=pm.quantized, meta=meta)


def export_packed(source: PathLike, out: PathLike, bits: Optional[CodePacking] = None,
                  alpha_dtype: str = "float32") -> EncodedFile:
    """``admmq export``: pack a training checkpoint (or re-pack a packed file) into ``out``."""
    src = resolve_lm_path(source)
    if is_packed_file(src):
        pm = read_packed(src)[0]
    else:
        data = read_checkpoint(src)
        pm = PackedModel.from_checkpoint(data, quantized_from_state(data.get("quantized"), str(src)))
    encoded = encode_packed(pm, bits, alpha_dtype)
    write_packed(out, encoded)
    return encoded
