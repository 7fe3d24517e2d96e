"""Reading packed LM files (format: :mod:`rescorer.pack.format`): every check a one-line FormatError."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from rescorer.pack.bitpack import CodePacking, unpack_codes
from rescorer.errors import AdmmqError, FormatError, PathLike
from rescorer.pack.format import ALIGN, FORMAT, MAGIC, PREAMBLE, VERSION, _NP_DTYPES, PackedModel


# ------------------------------------------------------------------ reading
def is_packed_file(path: PathLike) -> bool:
    """True if ``path`` is a file that starts with the packed magic."""
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as fh:
        return fh.read(len(MAGIC)) == MAGIC


class _Reader:
    """Parses and checks one packed file's bytes; every failure is a FormatError naming the file.

    ``numpy``: tensors come out as numpy arrays and quantized matrices as ``(codes, basis, alpha)``
    triples of arrays (for the compiled CPU kernels, without PyTorch); else as tensors and
    :class:`~rescorer.lm.quantized.QuantizedMatrix`.
    """

    def __init__(self, path: PathLike, data: bytes, numpy: bool = False):
        self.path = Path(path)
        self.data = memoryview(data)
        self.numpy = numpy

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
        arr = arr.astype(arr.dtype.newbyteorder("="), copy=True)
        if self.numpy:
            return arr
        import torch

        return torch.from_numpy(arr)

    def matrix(self, header, start, name: str, spec: Any) -> Tuple[QuantizedMatrix, CodePacking]:
        if not isinstance(spec, dict) or not all(isinstance(spec.get(k), str) for k in ("codes", "basis", "alpha")) \
                or not _is_int(spec.get("levels")):
            self.fail(f"quantized matrix {name!r} is not described by codes/basis/alpha/levels")
        basis = self.array(header, start, spec["basis"], "basis")
        alpha = self.array(header, start, spec["alpha"], "alpha")
        basis, alpha = (basis.astype(np.float32), alpha.astype(np.float32)) if self.numpy else \
            (basis.float(), alpha.float())
        t, shape, buf = self.buffer(header, start, spec["codes"], "codes")
        packing = self.packing(t, spec["codes"])
        levels = int(basis.shape[0]) if len(basis.shape) == 2 else -1
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
        codes = codes.reshape(rows, cols)
        if len(alpha.shape) != 2 or basis.shape[1] != alpha.shape[1] or alpha.shape[0] not in (1, rows):
            self.fail(f"quantized matrix {name!r} is malformed: basis {tuple(basis.shape)} and alpha "
                      f"{tuple(alpha.shape)} disagree (alpha: 1 or {rows} rows of {basis.shape[1]})")
        if self.numpy:
            return (codes, basis, alpha), packing
        import torch

        from rescorer.lm.quantized import QuantizedMatrix
        return QuantizedMatrix(torch.from_numpy(codes), basis, alpha), packing

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
            state = {"kind": "word", "symbols": symbols, "unk": meta.get("unk")}
            if "sent_boundary" in meta:
                state["sent_boundary"] = meta["sent_boundary"]
            return state
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


def read_packed(path: PathLike, numpy: bool = False) -> Tuple[PackedModel, Dict[str, Any], int]:
    """Read and check a packed file: (model, header, file size); ``numpy``: arrays, not tensors (:class:`_Reader`)."""
    data = _read_bytes(path)
    r = _Reader(path, data, numpy)
    header, start = r.header()
    quantized: Dict[str, Any] = {}
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
