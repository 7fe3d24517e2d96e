"""Quantized training checkpoints for the packing tests, built without a quantized trainer.

The matrices of a randomly initialised :class:`LSTMLM` are projected onto a
quantization set by a simple, documented rule (not a training method):

* scaled sets ``alpha * {q_1..q_L}`` (K = 1): ``alpha`` = mean |w| of the
  group (the whole matrix for layer tying, each row for node tying); each
  weight takes the code of the nearest level ``alpha * q_l``;
* multi-bit (K = k): greedy residual binarisation, row-wise: ``alpha_i`` =
  mean |r| of the row, ``b_i = sign(r)`` (0 counts as +1), ``r -= alpha_i b_i``;
  code bit i is 1 where ``b_i = +1``; basis = the (2^k, k) table of ±1 patterns.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path
from typing import Dict, Sequence, Union

import numpy as np
import torch

from rescorer.pack.bitpack import CodePacking, pack_codes

from rescorer.pack.checkpoint import save_checkpoint
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.pack.lm_file import ALIGN, MAGIC, PREAMBLE
from rescorer.lm.quantized import QuantizedMatrix
from rescorer.lm.vocab import Vocab

SETS = {"binary": [-1.0, 1.0], "ternary": [-1.0, 0.0, 1.0], "pow2": [-2.0, -1.0, 1.0, 2.0],
        "pow4": [-4.0, -2.0, -1.0, 1.0, 2.0, 4.0], "pow8": [-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0]}


def project_scaled(w: torch.Tensor, levels: Sequence[float], tying: str) -> QuantizedMatrix:
    """Nearest level of alpha * levels, alpha = mean |w| per matrix ("layer") or per row ("node")."""
    q = torch.tensor(levels, dtype=torch.float32)
    alpha = w.abs().mean().reshape(1, 1) if tying == "layer" else w.abs().mean(dim=1, keepdim=True)
    codes = (w.unsqueeze(-1) - alpha.unsqueeze(-1) * q).abs().argmin(dim=-1).to(torch.uint8)
    return QuantizedMatrix(codes, q.reshape(-1, 1), alpha.float())


def project_multibit(w: torch.Tensor, k: int) -> QuantizedMatrix:
    """Greedy k-bit residual binarisation, alpha per row: (R, k)."""
    r = w.clone()
    codes = torch.zeros(w.shape, dtype=torch.int64)
    alphas = []
    for i in range(k):
        a = r.abs().mean(dim=1, keepdim=True)
        b = torch.where(r >= 0, 1.0, -1.0)
        r = r - a * b
        codes |= (b > 0).long() << i
        alphas.append(a)
    basis = torch.tensor([[1.0 if (c >> i) & 1 else -1.0 for i in range(k)] for c in range(1 << k)])
    return QuantizedMatrix(codes.to(torch.uint8), basis, torch.cat(alphas, dim=1))


Scheme = Union[str, Dict[str, str]]


def quantize_model(model: LSTMLM, scheme: Scheme, tying: str = "layer") -> Dict[str, QuantizedMatrix]:
    """Every weight matrix quantized with ``scheme`` (a key of SETS, or "multibit2"/"multibit3"; or a dict
    matrix name -> scheme, for mixed precision)."""
    out = {}
    with torch.no_grad():
        for name in model.weight_matrix_names():
            w = dict(model.named_parameters())[name].detach().float()
            s = scheme if isinstance(scheme, str) else scheme[name]
            if s.startswith("multibit"):
                out[name] = project_multibit(w, int(s[len("multibit"):]))
            else:
                out[name] = project_scaled(w, SETS[s], tying)
    return out


def make_quantized_checkpoint(path, words: Sequence[str], scheme: Scheme = "ternary", tying: str = "layer",
                              dim: int = 16, skip: Sequence[str] = (), **cfg) -> Dict[str, QuantizedMatrix]:
    """Save a training-layout checkpoint with a ``quantized`` dict; matrices in ``skip`` stay fp32."""
    vocab = Vocab(list(words))
    mcfg = ModelConfig(vocab_size=len(vocab), embed_dim=dim, hidden_dim=dim, **cfg)
    model = LSTMLM(mcfg)
    with torch.no_grad():  # non-zero biases, so a lost bias would show
        for n, p in model.named_parameters():
            if p.dim() == 1:
                p.uniform_(-0.5, 0.5)
    q = {k: v for k, v in quantize_model(model, scheme, tying).items() if k not in skip}
    save_checkpoint(path, {"model_config": mcfg.to_dict(),
                           "method_config": {"method": "admm", "qset": str(scheme), "tying": tying},
                           "units": vocab.to_state(), "model": model.state_dict(),
                           "quantized": {k: v.to_state() for k, v in q.items()}})
    return q


def rewrite_header(path, edit) -> None:
    """Apply ``edit(header, payload)`` to a packed file and fix its checksums, so only the edited fact is wrong."""
    data = Path(path).read_bytes()
    hlen = struct.unpack_from("<I", data, 12)[0]
    header = json.loads(data[PREAMBLE.size: PREAMBLE.size + hlen])
    payload = bytearray(data[PREAMBLE.size + hlen:])
    edit(header, payload)
    header["payload_bytes"], header["payload_sha256"] = len(payload), hashlib.sha256(payload).hexdigest()
    text = json.dumps(header).encode()
    text += b" " * (-(PREAMBLE.size + len(text)) % ALIGN)
    Path(path).write_bytes(PREAMBLE.pack(MAGIC, 1, len(text), zlib.crc32(text), 0) + text + bytes(payload))


def claim_one_bit_codes(matrix: str):
    """An edit for :func:`rewrite_header`: store ``matrix``'s codes as 1-bit (all zero), sizes consistent."""
    def edit(header, payload):
        t = header["tensors"][f"{matrix}.codes"]
        R, C = t["shape"]
        one = pack_codes(np.zeros(R * C, np.uint8), CodePacking(bits=1)).tobytes()
        payload[t["offset"]: t["offset"] + len(one)] = one
        t["packing"], t["nbytes"] = {"scheme": "bits", "bits": 1}, len(one)
    return edit
