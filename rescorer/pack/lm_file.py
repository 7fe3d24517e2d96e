"""Packed low-bit LM files: writing (``admmq export``) and loading for scoring.

The format — fixed preamble, JSON header, aligned raw buffers, never pickled —
is described in :mod:`rescorer.pack.format`; reading and checking a file is
:mod:`rescorer.pack.read`.  This module encodes a quantized checkpoint into
that form (:func:`encode_packed`, :func:`export_packed`) and turns a packed
file into a ready-to-score LM (:func:`load_packed_lm`); :func:`load_lm` loads
any LM file admmq writes (a checkpoint, a training directory or a packed file).
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from rescorer import __version__
from rescorer.pack.checkpoint import (LoadedLM, build_model, quantized_from_state, read_checkpoint, resolve_lm_path,
                                      units_for_model)
from rescorer.pack.bitpack import CodePacking, choose_packing, pack_codes
from rescorer.errors import AdmmqError, FormatError, PathLike
from rescorer.fileio import atomic_path
from rescorer.pack.format import (ALIGN, ALPHA_DTYPES, FORMAT, MAGIC, PREAMBLE, VERSION, _NP_DTYPES,  # noqa: F401
                                  EncodedFile, PackedModel, _align)
from rescorer.pack.read import is_packed_file, read_packed  # noqa: F401
from rescorer.lm.quantized import QuantizedMatrix


# ------------------------------------------------------------------ writing
def _units_buffer(state: Dict[str, Any]) -> Tuple[Dict[str, Any], bytes]:
    kind = state.get("kind")
    if kind == "word":
        symbols = list(state["symbols"])
        bad = next((s for s in symbols if "\n" in s or not s), None)
        if bad is not None:
            raise AdmmqError(f"vocabulary symbol {bad!r} cannot be stored (empty or contains a newline)")
        meta = {"kind": "word", "unk": state["unk"], "count": len(symbols)}
        if state.get("sent_boundary") is not None:  # an imported model's one boundary symbol
            meta["sent_boundary"] = state["sent_boundary"]
        return meta, "\n".join(symbols).encode("utf-8")
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
    """A ready-to-score :class:`rescorer.pack.checkpoint.LoadedLM` (kind ``"packed"``) from a packed file."""
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


def load_lm(path: PathLike, device: str = "cpu") -> LoadedLM:
    """Load the deployed LM of a checkpoint, a training directory or a packed file."""
    p = resolve_lm_path(path)
    if is_packed_file(p):
        return load_packed_lm(p, device)
    data = read_checkpoint(p)
    quantized = quantized_from_state(data.get("quantized"), str(p))
    model = build_model(data["model_config"], data["model"], quantized, str(p))
    units = units_for_model(data["units"], model, p)
    model.to(device)
    return LoadedLM(model=model, units=units, path=os.fspath(p), kind="checkpoint",
                    method_config=dict(data.get("method_config") or {}), quantized=quantized,
                    meta={"trainer": data.get("trainer", {}), "train_config": data.get("train_config", {})})


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
