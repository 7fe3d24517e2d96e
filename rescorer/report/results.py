"""``admmq report``: the results table of a recipe's experiment directory, as Markdown.

Reads only what the recipe's stages wrote (never re-runs anything); the
layout of ``EXP`` is the recipe convention:

==========================================  ==========================================
``EXP/train/<row>/``                        a training run (``train_log.jsonl``, ``best.pt``)
                                            with ``test_eval.json`` (``admmq eval --json``)
``EXP/export/<row>.info.json``              ``admmq info --json`` of the row's packed file
                                            (for full precision: of its checkpoint)
``EXP/interp/<row>/weights.json``           ``admmq interpolate`` with the 4-gram on valid
``EXP/interp/<row>/test_eval.json``         the interpolated test perplexity
``EXP/lm/test_eval.json``                   the 4-gram's test perplexity
``EXP/rescore/<name>/summary.json``         ``admmq rescore -o`` runs; ``<name>`` is
                                            ``4gram``, ``<row>`` or ``<row>+4gram``
==========================================  ==========================================

Any part that is missing is left blank (``–``), so a report can be drawn
after any stage.  The paper's Table 1 figures (PTB, 1×200 LSTM) stand beside
ours; its "MB" are MiB (:mod:`rescorer.report.model_size`).
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from rescorer.errors import AdmmqError, PathLike
from rescorer.fileio import atomic_open
from rescorer.report.plots import PAPER_TABLE1
from rescorer.train.runlogs import read_json_object, read_train_log, run_configs, method_label

#: Order of the paper's Table 1; rows not listed follow in name order.
ROW_ORDER = ("std", "bin", "binlin", "admm_notie", "admm_node_pm1", "admm_node_0pm1", "admm_node_pm12",
             "admm_node_pm124", "admm_layer_pm1", "admm_layer_0pm1", "admm_layer_pm12", "admm_layer_pm124")
PAPER_LABEL = {"STD": "STD 10 ep", "Bin": "Bin 50 ep", "Bin+Lin": "Bin+Lin 50 ep", "ADMM NoTie": "ADMM NoTie {1}"}
DASH = "–"


@dataclass
class ModelRow:
    """One trained LM of the table, with whatever the stages produced for it."""

    name: str
    label: str
    epochs: int = 0
    best_epoch: int = 0
    seconds_per_epoch: Optional[float] = None
    size_mib: Optional[float] = None
    ratio: Optional[float] = None
    test_ppl: Optional[float] = None
    interp_ppl: Optional[float] = None
    ngram_weight: Optional[float] = None
    wer: Dict[str, Dict[str, float]] = field(default_factory=dict)  # "alone" / "+4gram" -> subset -> WER %

    def paper(self) -> Optional[Any]:
        want = PAPER_LABEL.get(self.label.split(" (")[0], self.label)
        return next((p for p in PAPER_TABLE1 if p.label == want), None)


def _optional_json(path: Path) -> Optional[Dict[str, Any]]:
    return read_json_object(path, "") if path.is_file() else None


def _wer_by_subset(summary: Dict[str, Any], which: str) -> Dict[str, float]:
    table = (summary.get("wer") or {}).get(which) or {}
    return {subset: float(v["wer"]) for subset, v in table.items() if isinstance(v, dict) and "wer" in v}


def _sort_key(name: str):
    return (ROW_ORDER.index(name) if name in ROW_ORDER else len(ROW_ORDER), name)


def read_model_row(exp: Path, name: str) -> ModelRow:
    """Everything the stages wrote about row ``name`` of experiment directory ``exp``."""
    run = exp / "train" / name
    method, model = run_configs(run)
    label = method_label(method, model) or name
    if name not in ROW_ORDER and label != name:  # a run the recipe does not make: say which one
        label = f"{label} ({name})"
    row = ModelRow(name, label)
    log = read_train_log(run / "train_log.jsonl") if (run / "train_log.jsonl").is_file() else []
    if log:
        row.epochs = len(log)
        best = [r["epoch"] for r in log if r.get("best")]
        row.best_epoch = best[-1] if best else len(log)
        row.seconds_per_epoch = sum(float(r.get("seconds", 0.0)) for r in log) / len(log)
    info = _optional_json(exp / "export" / f"{name}.info.json")
    if info:
        row.size_mib = info.get("paper_mib")
        row.ratio = info.get("paper_ratio")
    ev = _optional_json(run / "test_eval.json")
    row.test_ppl = ev.get("ppl") if ev else None
    ev = _optional_json(exp / "interp" / name / "test_eval.json")
    row.interp_ppl = ev.get("ppl") if ev else None
    weights = _optional_json(exp / "interp" / name / "weights.json")
    if weights:
        ngram = [c for c in weights.get("components", []) if c.get("kind") == "ngram"]
        row.ngram_weight = float(ngram[0]["weight"]) if ngram else None
    for key, sub in (("alone", name), ("+4gram", f"{name}+4gram")):
        summary = _optional_json(exp / "rescore" / sub / "summary.json")
        if summary:
            row.wer[key] = _wer_by_subset(summary, "rescored")
    return row


def read_rows(exp_dir: PathLike) -> List[ModelRow]:
    """The rows of ``EXP/train/*`` in the paper's order."""
    exp = Path(exp_dir)
    if not (exp / "train").is_dir():
        raise AdmmqError("no train/ directory: not a recipe experiment directory (run the training stage)", exp)
    names = sorted((p.name for p in (exp / "train").iterdir() if p.is_dir()), key=_sort_key)
    return [read_model_row(exp, n) for n in names]


def _num(v: Optional[float], fmt: str) -> str:
    return DASH if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def machine_description() -> str:
    """CPU count and model, and the CUDA device when present (where the report was made)."""
    cpu = platform.processor() or platform.machine()
    text = f"{os.cpu_count()} CPU cores ({cpu}), {platform.system()}"
    try:
        import torch

        if torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(0)}"
        text += f", torch {torch.__version__}"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return text


def render_results(exp_dir: PathLike, title: str = "Results", note: str = "") -> str:
    """The Markdown report of experiment directory ``exp_dir`` (see the module docstring)."""
    exp = Path(exp_dir)
    rows = read_rows(exp)
    out = [f"# {title}", ""]
    if note:
        out += [note, ""]
    out += [f"Report made on: {machine_description()}.", ""]
    ngram_eval = _optional_json(exp / "lm" / "test_eval.json")
    out += ["## Perplexity and size (the paper's Table 1 layout, PTB test)", "",
            "Size = weight matrices at their stored width (the paper's count; MB = MiB). "
            "PPL +4g = linear interpolation with the 4-gram, weight λ₄g tuned by EM on PTB valid."
            + (f" 4-gram alone: test PPL {ngram_eval['ppl']:.2f}." if ngram_eval else ""), "",
            "| model | epochs (best) | s/epoch | size MiB | comp. | PPL | PPL +4g (λ₄g) "
            "| paper size | paper comp. | paper PPL |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r.paper()
        interp = _num(r.interp_ppl, ".2f") + (f" ({r.ngram_weight:.2f})" if r.ngram_weight is not None else "")
        out.append(f"| {r.label} | {r.epochs or DASH} ({r.best_epoch or DASH}) | {_num(r.seconds_per_epoch, '.0f')} "
                   f"| {_num(r.size_mib, '.3f')} | {_num(r.ratio, '.1f')}× | {_num(r.test_ppl, '.2f')} | {interp} "
                   f"| {_num(p.size_mb if p else None, '.2f')} "
                   f"| {_num(16.53 / p.size_mb if p else None, '.1f')}{'×' if p else ''} | {_num(p.ppl if p else None, '.1f')} |")
    out.append("")
    out += _wer_section(exp, rows)
    figures = [f for f in ("curves.png", "front.png", "sweep.png") if (exp / "plots" / f).is_file()]
    if figures:
        out += ["## Figures", ""] + [f"![{f[:-4]}](plots/{f})" for f in figures] + [""]
    return "\n".join(out)


def _wer_section(exp: Path, rows: List[ModelRow]) -> List[str]:
    baseline = _optional_json(exp / "rescore" / "4gram" / "summary.json")
    any_wer = baseline or any(r.wer for r in rows)
    if not any_wer:
        return []
    subsets: List[str] = []
    for table in ([_wer_by_subset(baseline, "rescored")] if baseline else []) + [t for r in rows for t in r.wer.values()]:
        subsets += [s for s in table if s not in subsets and s != "total"]
    cols = subsets + ["total"]
    weights = (baseline or {}).get("weights") or {}
    out = ["## WER % (n-best rescoring; LM scale and insertion penalty tuned on dev, applied to test)", "",
           "| LM | " + " | ".join(cols) + " | +4-gram: " + " | ".join(cols) + " |",
           "|---|" + "---|" * (2 * len(cols))]
    blank = " | ".join(DASH for _ in cols)

    def cells(table: Optional[Dict[str, float]]) -> str:
        return " | ".join(_num(table.get(c), ".2f") for c in cols) if table else blank

    if baseline:
        for which, label in (("first_pass", "first pass (decoder output)"), ("oracle", "oracle (best in list)")):
            out.append(f"| {label} | {cells(_wer_by_subset(baseline, which))} | {blank} |")
        out.append(f"| 4-gram alone | {cells(_wer_by_subset(baseline, 'rescored'))} | {blank} |")
    for r in rows:
        if r.wer:
            out.append(f"| {r.label} | {cells(r.wer.get('alone'))} | {cells(r.wer.get('+4gram'))} |")
    if weights:
        out += ["", f"4-gram alone chose LM scale {weights.get('lm_scale')}, insertion penalty {weights.get('wip')}."]
    out.append("")
    return out


def write_results(exp_dir: PathLike, out: PathLike, title: str = "Results", note: str = "") -> str:
    """Render the report of ``exp_dir`` and write it to ``out`` atomically; returns the text."""
    text = render_results(exp_dir, title, note)
    with atomic_open(out) as fh:
        fh.write(text)
    return text
