"""From a full-precision LM and a size budget to the per-matrix tables ADMM trains with.

``admmq train --method admm --allocation auto|FILE`` calls :func:`plan_precision`:

* ``FILE``: the allocation is read from a precision file (:func:`.mixed.read_precision`);
* ``auto``: the sensitivity table is measured on the validation text with the
  ``--init-from`` LM (``--metric kl|hessian|nas``) or read from the JSON that
  ``admmq sensitivity -o`` wrote (``--metric FILE``), then
  :func:`.mixed.allocate_from_sensitivity` picks the widths under
  ``--budget-bits`` / ``--budget-mb``.

The result is stored in the run's :class:`~.method.MethodConfig` (``precision``
pairs and a ``precision_note``) and written beside the checkpoints as
``precision.txt``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

from rescorer.pack.lm_file import load_lm
from rescorer.pack.checkpoint import read_checkpoint, resolve_lm_path
from rescorer.lm.corpus import load_corpus
from rescorer.errors import AdmmqError
from rescorer.fileio import atomic_open, open_text
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.quant.mixed import (Allocation, Width, allocate_from_sensitivity, budget_in_bits, describe,
                                  read_precision, stored_bits, write_precision)
from rescorer.quant.sensitivity import METRICS, SensitivityConfig, SensitivityTable, measure_sensitivity


@dataclass
class PrecisionPlan:
    """``pairs`` (matrix, quantization set) for ``MethodConfig.precision``; ``note`` one line on how."""

    pairs: Tuple[Tuple[str, str], ...]
    note: str
    allocation: Optional[Allocation] = None
    table: Optional[SensitivityTable] = None
    numel: Optional[Dict[str, int]] = None


def matrix_shapes(init_from: str, keep_fp: Sequence[str] = ()) -> Dict[str, int]:
    """Weights per quantized matrix of the checkpoint ``init_from`` (2-D tensors, minus ``keep_fp``)."""
    ckpt = read_checkpoint(resolve_lm_path(init_from))
    return {n: int(t.numel()) for n, t in ckpt["model"].items() if t.dim() == 2 and n not in keep_fp}


def read_sensitivity_json(path: str) -> SensitivityTable:
    try:
        with open_text(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise AdmmqError(f"not JSON ({exc.msg} at line {exc.lineno})", path, exc.lineno) from None
    return SensitivityTable.from_dict(data, str(path))


def plan_precision(precision: str, init_from: Optional[str], valid: Optional[str], text_format: str = "plain",
                   sensitivity: str = "kl", budget_bits: Optional[float] = None, budget_mb: Optional[float] = None,
                   bits: Sequence[Width] = (1, 2, 3, 4, 8), keep_fp: Sequence[str] = (), probes: int = 32,
                   max_sentences: int = 0, quiet: bool = True,
                   model_cfg: Optional[ModelConfig] = None) -> PrecisionPlan:
    """Per-matrix tables for ADMM: from a precision file, or chosen by sensitivity under a budget.

    ``precision``: ``"auto"`` or a precision file.  ``sensitivity``: ``kl`` or
    ``hessian`` (measured on ``valid`` with the ``init_from`` LM, over its
    first ``max_sentences`` sentences if > 0) or a JSON table file.  A precision
    file names the matrices of the ``init_from`` checkpoint, else of ``model_cfg``.
    """
    if precision != "auto":
        if not os.path.isfile(precision):
            raise AdmmqError("--allocation: expected 'auto' or an allocation file, and no such file exists", precision)
        if init_from:
            names = list(matrix_shapes(init_from, keep_fp))
        elif model_cfg is not None:  # training from scratch: the matrices of the configured model
            names = [n for n in LSTMLM(replace(model_cfg, vocab_size=3)).weight_matrix_names() if n not in keep_fp]
        else:
            raise AdmmqError("--allocation FILE needs --init-from or a model configuration")
        qsets = read_precision(precision, names)
        return PrecisionPlan(tuple(qsets.items()), f"precision file {precision}")
    if sensitivity in METRICS:
        if not init_from or not valid:
            raise AdmmqError(f"--allocation auto --metric {sensitivity} needs --init-from (a full-precision "
                             f"LM) and --valid")
        lm = load_lm(init_from)
        if lm.quantized:
            raise AdmmqError("--init-from: sensitivity needs a full-precision LM; this one is quantized", init_from)
        names = [n for n in lm.model.weight_matrix_names() if n not in keep_fp]
        corpus = load_corpus(lm.units, valid, text_format, max_sentences)
        numels = {n: int(p.numel()) for n, p in lm.model.named_parameters() if n in names}
        target = budget_in_bits(numels, budget_bits, budget_mb) / max(1, sum(numels.values()))  # nas aims at it
        cfg = SensitivityConfig(metric=sensitivity, bits=tuple(bits), probes=probes, max_probes=max(probes, 256),
                                budget_bits=target)
        table = measure_sensitivity(lm.model, corpus, lm.units, cfg, names, quiet)
        source = f"{sensitivity} on {valid}"
    else:
        table = read_sensitivity_json(sensitivity)
        source = f"{table.metric} from {sensitivity}"
    numel = matrix_shapes(init_from, keep_fp) if init_from else dict(table.numel)
    usable = {n: {b: v for b, v in table.values[n].items() if b in bits} for n in numel if n in table.values}
    empty = [n for n, row in usable.items() if not row]
    if empty:
        raise AdmmqError(f"the sensitivity table has no width of --widths {list(bits)} for {', '.join(empty)}")
    alloc = allocate_from_sensitivity(usable, numel, budget_bits, budget_mb)
    budget = f"{budget_bits} bits/weight" if budget_bits is not None else f"{budget_mb} MiB"
    note = f"auto: {source}, budget {budget}: {describe(alloc, numel)}"
    return PrecisionPlan(tuple(alloc.qsets().items()), note, alloc, table, numel)


def bits_summary(pairs: Sequence[Tuple[str, str]]) -> List[str]:
    """``name: set (stored bits)`` lines for printing the chosen precision."""
    return [f"{n}: {q} ({stored_bits(q):.3g} bits)" for n, q in pairs]


def write_plan(path, plan: PrecisionPlan) -> None:
    """``precision.txt`` of a run: the allocation with sizes and sensitivities, or the pairs as given."""
    if plan.allocation is not None:
        write_precision(path, plan.allocation, plan.numel, plan.table.values if plan.table else None, plan.note)
        return
    with atomic_open(path) as f:
        f.write(f"# admmq precision file: MATRIX SET\n# {plan.note}\n")
        for name, qset in plan.pairs:
            f.write(f"{name} {qset}\n")
