"""Helpers shared by the benchmarks: data slices and table printing."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import List, Sequence

import torch

from rescorer.report.results import machine_description

ROOT = Path(__file__).resolve().parents[1]
PTB = ROOT / "data" / "ptb"
PTB_TRAIN_TOKENS = 929_589  # words + one </s> per sentence in ptb.train.txt


def ptb_slice(split: str, n: int, dest: Path) -> Path:
    """Write the first ``n`` sentences of PTB ``split`` (0 = all) to ``dest``."""
    with gzip.open(PTB / f"ptb.{split}.txt.gz", "rt", encoding="utf-8") as fh:
        lines = fh.readlines()
    dest.write_text("".join(lines[:n] if n else lines), encoding="utf-8")
    return dest


def machine() -> str:
    """The machine (as ``admmq report`` describes it) and the torch threads in use."""
    return f"{machine_description()}, threads {torch.get_num_threads()}"


def table(header: Sequence[str], rows: List[Sequence]) -> str:
    cells = [[str(h) for h in header]] + [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
