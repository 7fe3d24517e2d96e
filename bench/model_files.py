"""LM files the speed benchmarks hand to ``admmq rescore``: a model saved as an fp32 checkpoint, and packed
low-bit exports of it.

The packed files come from the simple projection of ``tests/packed_models.py`` (not a training method:
alpha = mean |w| per matrix or per row, each weight to the nearest level), exported by
``admmq export``'s function: 1 bit = {±1} one alpha per matrix, 2 bits = {±1, ±2} one alpha per row,
3 bits = {±1, ±2, ±4} one alpha per row.  Their scores are those of the projected model, so their
perplexity and WER are worse than the fp32 model's; they measure the speed of the packed files.
"""

from __future__ import annotations

import copy
from pathlib import Path

from rescorer.pack.checkpoint import save_checkpoint
from rescorer.pack.lm_file import export_packed

PACKED = {1: ("binary", "layer", "{±1}, one alpha per matrix"), 2: ("pow2", "node", "{±1,±2}, one alpha per row"),
          3: ("pow4", "node", "{±1,±2,±4}, one alpha per row")}


def save_fp32(model, units, path: Path) -> Path:
    """``model`` as a full-precision admmq checkpoint."""
    save_checkpoint(path, {"model_config": model.cfg.to_dict(), "units": units.to_state(),
                           "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                           "method_config": {"method": "fp"}})
    return path


def packed_export(model, units, scheme: str, tying: str, tmp: Path) -> Path:
    """``model`` projected onto ``scheme`` (a set of ``tests/packed_models.py``; :data:`PACKED` names the
    1/2/3-bit ones) with ``tying``, exported packed into ``tmp``: the file's path."""
    from bench.toy_lms import quantize_model

    model = copy.deepcopy(model).cpu()
    q = quantize_model(model, scheme, tying)
    ckpt = tmp / f"{scheme}-{tying}.pt"
    save_checkpoint(ckpt, {"model_config": model.cfg.to_dict(), "units": units.to_state(),
                           "model": model.state_dict(), "method_config": {"method": "admm", "tying": tying},
                           "quantized": {k: v.to_state() for k, v in q.items()}})
    out = tmp / f"{scheme}-{tying}.packed"
    export_packed(ckpt, out)
    return out


EXACT = "fp32 (exact, default)"


def exact_rows(lm: str, model, units, packed_bits, tmp: Path) -> list:
    """Rows of ``admmq rescore`` with the fp32 file ``lm`` (:data:`EXACT`) and the packed exports of ``model``
    at each of ``packed_bits`` (each a :class:`bench.commands.Row`, exact)."""
    from bench.commands import Row

    rows = [Row(EXACT, lm)]
    for bits in packed_bits:
        scheme, tying, what = PACKED[bits]
        rows.append(Row(f"packed {bits}-bit {what} (exact)", str(packed_export(model, units, scheme, tying, tmp))))
    return rows
