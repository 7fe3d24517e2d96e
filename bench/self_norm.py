"""How self-normalised an LSTM LM is: the softmax normaliser log Z per token, and perplexity with and without it.

    python bench/self_norm.py --lm std.pt [--lm sn.pt ...] [--text data/ptb/ptb.test.txt.gz] [--sentences 0]

For each LM, on the text (PTB test by default; ``--sentences N`` keeps the first N): the perplexity
(exact: log-probability = logit - log Z, as ``admmq eval`` computes it), the mean and standard
deviation of log Z over the tokens, and the perplexity when log Z is skipped (log-probability = logit,
what ``admmq rescore --no-normalize-probs`` uses; a constant mean of log Z acts like a word insertion
penalty, which rescoring tunes anyway, so the standard deviation is what decides).  One thread.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import PTB, machine, table  # noqa: E402
from rescorer.fileio import read_sentences  # noqa: E402
from rescorer.lm.corpus import encode_sentences  # noqa: E402
from rescorer.lm.batching import IGNORE, length_sorted_batches  # noqa: E402
from rescorer.pack.lm_file import load_lm  # noqa: E402


@torch.no_grad()
def log_z_and_logits(path: str, text: str, sentences: int):
    """(tokens,) log Z and (tokens,) target logits of every word and </s> of the text."""
    lm = load_lm(path)
    sents = [s.words for s in read_sentences(text)]
    corpus = encode_sentences(lm.units, sents[:sentences] if sentences else sents)
    zs, picked = [], []
    for batch in length_sorted_batches(corpus, 8192, lm.units.bos_id, lm.units.eos_id):
        h, _ = lm.model(batch.inputs)
        keep = batch.targets != IGNORE
        logits = lm.model.logits(h[keep]).double()
        zs.append(torch.logsumexp(logits, -1))
        picked.append(logits.gather(1, batch.targets[keep][:, None]).squeeze(1))
    return torch.cat(zs).numpy(), torch.cat(picked).numpy(), lm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lm", action="append", required=True)
    ap.add_argument("--text", default=str(PTB / "ptb.test.txt.gz"))
    ap.add_argument("--sentences", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for path in args.lm:
        z, logit, lm = log_z_and_logits(path, args.text, args.sentences)
        sn = (lm.meta.get("train_config") or {}).get("self_norm", 0.0)
        rows.append([path, sn, z.size, math.exp(float(np.mean(z - logit))), float(z.mean()), float(z.std()),
                     math.exp(float(np.mean(-logit)))])
    print(f"# {args.text}; {machine()}")
    print(table(["LM", "--self-norm", "tokens", "perplexity", "mean log Z", "sd log Z",
                 "perplexity without log Z (not a distribution)"], rows))


if __name__ == "__main__":
    main()
