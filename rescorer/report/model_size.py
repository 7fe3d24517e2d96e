"""How big an LM is: ``admmq info`` for packed files and training checkpoints.

Three figures, all in bytes (MiB = 2**20 bytes):

* ``size_bytes``: the true size of the deployed model as a packed file: for a
  packed file its size on disk; for a training checkpoint the exact size
  ``admmq export --bits auto`` would write (the checkpoint file itself, with
  Θ, optimizer and method state, is ``file_bytes``).  It counts everything:
  packed codes, α and basis tables, biases and other full-precision tensors,
  the compressed vocabulary and the header.
* ``fp32_bytes``: every parameter (weight matrices, biases, scales) at 32 bits:
  the full-precision model the paper's Table 1 compares against.
* ``paper_bytes``: the paper's way of counting a quantized model: the weight
  matrices only, each at its stored width (codes; unquantized matrices at 32
  bits); biases, α tables, vocabulary and header are not counted.  For PTB's
  1x200 LSTM (10,000 outputs, 10,001 inputs with ``<s>``) this gives
  fp32 17,327,200 B = 16.52 MiB (paper: 16.53 "MB") and layer-tied binary
  540,025 B = 0.515 MiB (paper: 0.52), ratio 32.09 (the paper's 31.8 is
  16.53 / 0.52 of its rounded figures).  The paper's node-tied rows are larger
  than any counting of per-row α reproduces; we do not model them.

``compression_ratio = fp32_bytes / size_bytes`` and ``paper_ratio =
fp32_bytes / paper_bytes``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from rescorer.pack.bitpack import CodePacking
from rescorer.pack.checkpoint import quantized_from_state, read_checkpoint, resolve_lm_path
from rescorer.errors import PathLike
from rescorer.pack.lm_file import PREAMBLE, PackedModel, encode_packed, is_packed_file, read_packed
from rescorer.lm.quantized import QuantizedMatrix

MIB = float(1 << 20)
_FLOAT_BITS = {"float32": 32, "float16": 16, "int64": 64}


def set_label(q: QuantizedMatrix) -> str:
    """The quantization set as the paper writes it: ``{±1}``, ``{0,±1}``, ``{±1,±2,±4}``;
    multi-bit: ``2-bit ±1 basis``."""
    if q.basis.shape[1] != 1:
        return f"{q.basis.shape[1]}-bit ±1 basis"
    vals = sorted(float(v) for v in q.basis[:, 0])

    def fmt(v: float) -> str:
        return str(int(v)) if v == int(v) else f"{v:g}"

    parts = []
    for v in vals:
        if v < 0 and -v in vals:
            continue
        parts.append(f"±{fmt(v)}" if v > 0 and -v in vals else fmt(v))
    return "{" + ",".join(parts) + "}"


@dataclass
class MatrixSize:
    name: str
    shape: List[int]
    bits: float  # bits per weight as stored (32 for a full-precision matrix)
    levels: Optional[int]  # None: full precision
    packing: str
    set: str = "-"
    tying: str = "-"
    groups: int = 0  # rows of alpha (1 = layer tying)
    k: int = 0  # columns of alpha / basis
    code_bytes: int = 0
    table_bytes: int = 0  # alpha + basis

    @property
    def numel(self) -> int:
        return self.shape[0] * self.shape[1]


@dataclass
class SizeReport:
    path: str
    kind: str  # "packed" or "checkpoint"
    method: str
    method_config: Dict[str, Any]
    alpha_dtype: str
    params: int
    quantized_params: int
    size_bytes: int
    file_bytes: int
    fp32_bytes: int
    paper_bytes: int
    breakdown: Dict[str, int]
    matrices: List[MatrixSize] = field(default_factory=list)

    @property
    def compression_ratio(self) -> float:
        return self.fp32_bytes / self.size_bytes if self.size_bytes else float("nan")

    @property
    def paper_ratio(self) -> float:
        return self.fp32_bytes / self.paper_bytes if self.paper_bytes else float("nan")

    def _common(self, attr: str) -> str:
        vals = {getattr(m, attr) for m in self.matrices if m.levels is not None}
        return "-" if not vals else (vals.pop() if len(vals) == 1 else "mixed")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d.update({"set": self._common("set"), "tying": self._common("tying"),
                  "compression_ratio": round(self.compression_ratio, 4), "paper_ratio": round(self.paper_ratio, 4),
                  "size_mib": round(self.size_bytes / MIB, 4), "fp32_mib": round(self.fp32_bytes / MIB, 4),
                  "paper_mib": round(self.paper_bytes / MIB, 4)})
        return d

    def text(self) -> str:
        what = "packed LM file" if self.kind == "packed" else \
            f"training checkpoint ({self.file_bytes:,} bytes on disk; sizes below are its packed export, --bits auto)"
        lines = [f"{self.path}: {what}",
                 f"method {self.method}  set {self._common('set')}  tying {self._common('tying')}  "
                 f"alpha {self.alpha_dtype}",
                 f"parameters {self.params:,} ({self.quantized_params:,} in "
                 f"{sum(m.levels is not None for m in self.matrices)} quantized matrices)",
                 f"size        {self.size_bytes:>12,} bytes = {self.size_bytes / MIB:8.3f} MiB   "
                 f"compression {self.compression_ratio:6.2f}x  (whole file)",
                 f"fp32        {self.fp32_bytes:>12,} bytes = {self.fp32_bytes / MIB:8.3f} MiB   (all parameters)",
                 f"paper-style {self.paper_bytes:>12,} bytes = {self.paper_bytes / MIB:8.3f} MiB   "
                 f"compression {self.paper_ratio:6.2f}x  (weight matrices only, as in the paper's Table 1)",
                 "breakdown   " + "  ".join(f"{k} {v:,}" for k, v in self.breakdown.items()), ""]
        header = ["matrix", "shape", "levels", "set", "tying", "bits", "packing", "bytes"]
        rows = [[m.name, "x".join(map(str, m.shape)), "-" if m.levels is None else str(m.levels), m.set, m.tying,
                 f"{m.bits:g}", m.packing, f"{m.code_bytes + m.table_bytes:,}"] for m in self.matrices]
        widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
        for r in [header] + rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        return "\n".join(lines)


def size_report(pm: PackedModel, header: Dict[str, Any], size: int, path: str, kind: str,
                file_bytes: int) -> SizeReport:
    """Size figures of the packed layout ``header`` (``size`` bytes) of the model ``pm``."""
    tensors = header["tensors"]
    roles = ("codes", "alpha", "basis", "vector", "matrix", "units")
    breakdown = {r: sum(t["nbytes"] for t in tensors.values() if t["role"] == r) for r in roles}
    breakdown["header"] = size - header["payload_bytes"]
    breakdown["padding"] = header["payload_bytes"] - sum(t["nbytes"] for t in tensors.values())
    assert breakdown["header"] >= PREAMBLE.size, breakdown
    matrices = []
    for name, q in pm.quantized.items():
        spec = header["quantized"][name]
        packing = CodePacking.from_dict(tensors[spec["codes"]]["packing"])
        matrices.append(MatrixSize(name, list(q.shape), round(packing.bits_per_code, 3), q.levels,
                                   packing.describe(), set_label(q), q.tying, int(q.alpha.shape[0]),
                                   int(q.alpha.shape[1]), tensors[spec["codes"]]["nbytes"],
                                   tensors[spec["alpha"]]["nbytes"] + tensors[spec["basis"]]["nbytes"]))
    for name, t in pm.dense.items():
        if t.dim() == 2:
            info = tensors[name]
            matrices.append(MatrixSize(name, list(t.shape), _FLOAT_BITS[info["dtype"]], None, info["dtype"],
                                       code_bytes=info["nbytes"]))
    params = sum(q.codes.numel() for q in pm.quantized.values()) + sum(t.numel() for t in pm.dense.values())
    return SizeReport(path=path, kind=kind, method=str(pm.method_config.get("method", "fp")),
                      method_config=dict(pm.method_config), alpha_dtype=str(header["alpha_dtype"]), params=params,
                      quantized_params=sum(q.codes.numel() for q in pm.quantized.values()), size_bytes=size,
                      file_bytes=file_bytes, fp32_bytes=4 * params,
                      paper_bytes=breakdown["codes"] + breakdown["matrix"], breakdown=breakdown, matrices=matrices)


def describe_lm_file(path: PathLike, bits: Optional[CodePacking] = None) -> SizeReport:
    """``admmq info``: the size report of a packed file, or of a checkpoint's export at ``bits`` (None: auto)."""
    p = resolve_lm_path(path)
    if is_packed_file(p):
        pm, header, size = read_packed(p)
        return size_report(pm, header, size, os.fspath(p), "packed", size)
    data = read_checkpoint(p)
    pm = PackedModel.from_checkpoint(data, quantized_from_state(data.get("quantized"), str(p)))
    enc = encode_packed(pm, bits)
    return size_report(pm, enc.header, enc.size, os.fspath(p), "checkpoint", p.stat().st_size)
