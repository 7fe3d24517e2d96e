"""Post-training projection of a full-precision LM under per-matrix allocations (no ADMM).

    python bench/mixed_projection.py --lm exp/std --text ptb.test.txt \\
        --alloc uniform2=ALL:2 --alloc kl=exp/mixed_kl/precision.txt --alloc hessian=exp/mixed_h/precision.txt

Each matrix is replaced by its exact-start projection onto its table (the
quantization ADMM starts from); prints the perplexity of each allocation, its
paper-style code size and the ratio to the fp model's perplexity.  Shows how
well each sensitivity metric ranks allocations before any quantized training.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, table  # noqa: E402
from rescorer.pack.lm_file import load_lm  # noqa: E402
from rescorer.lm.corpus import load_corpus  # noqa: E402
from rescorer.quant.mixed import MIB, cost_bits, qset_for_bits, read_precision  # noqa: E402
from rescorer.quant.qsets import alpha_start, parse_qset, project  # noqa: E402
from rescorer.lm.scoring import corpus_nll  # noqa: E402


def ppl(model, corpus, units) -> float:
    nll, tokens = corpus_nll(model, corpus, units.bos_id, units.eos_id, 4096, torch.device("cpu"))
    return math.exp(nll / tokens)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lm", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--alloc", action="append", default=[],
                    help="NAME=FILE (precision file) or NAME=ALL:BITS (every matrix at BITS)")
    args = ap.parse_args()
    lm = load_lm(args.lm)
    corpus = load_corpus(lm.units, args.text)
    names = lm.model.weight_matrix_names()
    params = dict(lm.model.named_parameters())
    original = {n: params[n].detach().clone() for n in names}
    base = ppl(lm.model, corpus, lm.units)
    rows = [["fp", "-", "-", round(base, 2), 1.0]]
    for spec in args.alloc:
        label, src = spec.split("=", 1)
        qsets = ({n: qset_for_bits(int(src[4:])) for n in names} if src.startswith("ALL:")
                 else read_precision(src, names))
        bits = 0
        for n in names:
            q = parse_qset(qsets[n])
            w = original[n]
            params[n].data.copy_(project(w, q, "layer", alpha_start(w, "layer", "mean")).dequantize(q))
            bits += cost_bits(w.numel(), qsets[n])
        p = ppl(lm.model, corpus, lm.units)
        rows.append([label, " ".join(qsets[n] for n in names), f"{bits / 8 / MIB:.4f}", round(p, 2),
                     round(p / base, 3)])
        for n in names:
            params[n].data.copy_(original[n])
    print(f"# {machine()}; {args.lm} on {args.text}; matrices {', '.join(names)}")
    print(table(["allocation", "tables", "codes MiB", "ppl", "ppl / fp"], rows))


if __name__ == "__main__":
    main()
