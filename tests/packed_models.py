"""Quantized training checkpoints for the packing tests, built without a quantized trainer.

The matrices of a randomly initialised :class:`LSTMLM` are projected onto a quantization set by
:func:`bench.toy_lms.quantize_model` (a simple, documented rule, not a training method).
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch

from bench.toy_lms import SETS, Scheme, project_multibit, project_scaled, quantize_model  # noqa: F401 (re-exported)
from rescorer.pack.bitpack import CodePacking, pack_codes
from rescorer.pack.checkpoint import save_checkpoint
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.pack.lm_file import ALIGN, MAGIC, PREAMBLE
from rescorer.lm.quantized import QuantizedMatrix
from rescorer.lm.vocab import Vocab


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
