"""A quantized weight matrix: small integer codes, a code book and scales.

Every quantizer in admmq (ADMM, binarized, alternating multi-bit, mixed
precision) describes a matrix ``W`` (R, C) the same way:

    W[r, c] = sum_k alpha[g(r), k] * basis[codes[r, c], k]

* ``codes``: (R, C) uint8, index of the level of each weight (0 .. L-1);
* ``basis``: (L, K) float32, the level multipliers of the quantization set —
  for a scaled set α·{q_1..q_L} it is the column (L, 1) of the q's; for
  k-bit alternating multi-bit quantization it is the (2^k, k) table of ±1
  sign patterns;
* ``alpha``: (G, K) float32 scales, ``G = 1`` (one table per matrix: layer
  tying) or ``G = R`` (one per output row: node tying); ``g(r)`` is 0 or r.

Packed export stores exactly these three tensors (codes bit-packed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch

from rescorer.errors import FormatError


@dataclass
class QuantizedMatrix:
    codes: torch.Tensor
    basis: torch.Tensor
    alpha: torch.Tensor

    def __post_init__(self) -> None:
        if self.codes.dim() != 2:
            raise ValueError(f"codes must be 2-D, got shape {tuple(self.codes.shape)}")
        if self.basis.dim() != 2 or self.alpha.dim() != 2 or self.basis.shape[1] != self.alpha.shape[1]:
            raise ValueError(f"basis (L, K) and alpha (G, K) disagree: {tuple(self.basis.shape)} vs "
                             f"{tuple(self.alpha.shape)}")
        if self.alpha.shape[0] not in (1, self.codes.shape[0]):
            raise ValueError(f"alpha has {self.alpha.shape[0]} rows, expected 1 or {self.codes.shape[0]}")

    @property
    def shape(self):
        return tuple(self.codes.shape)

    @property
    def levels(self) -> int:
        """Number of distinct codes L of the quantization set."""
        return int(self.basis.shape[0])

    @property
    def tying(self) -> str:
        return "layer" if self.alpha.shape[0] == 1 and self.codes.shape[0] != 1 else "node"

    def table(self) -> torch.Tensor:
        """Value of each code per row group: (G, L) float32."""
        return self.alpha.float() @ self.basis.float().t()

    def dequantize(self) -> torch.Tensor:
        """The real-valued matrix: (R, C) float32."""
        table = self.table()
        codes = self.codes.long()
        if table.shape[0] == 1:
            return table[0][codes]
        return torch.gather(table, 1, codes)

    def to_state(self) -> Dict[str, torch.Tensor]:
        return {"codes": self.codes.to(torch.uint8).cpu(), "basis": self.basis.float().cpu(),
                "alpha": self.alpha.float().cpu()}

    @classmethod
    def from_state(cls, d: Dict[str, torch.Tensor], name: str = "matrix") -> "QuantizedMatrix":
        try:
            q = cls(d["codes"], d["basis"], d["alpha"])
        except (KeyError, ValueError) as exc:
            raise FormatError(f"quantized matrix {name!r} is malformed: {exc}") from None
        if q.codes.numel() and int(q.codes.max()) >= q.levels:
            raise FormatError(f"quantized matrix {name!r} has code {int(q.codes.max())} "
                              f"but only {q.levels} levels")
        return q
