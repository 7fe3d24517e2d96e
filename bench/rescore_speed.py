"""Rescoring speed: admmq's batched n-best scoring against scoring one hypothesis at a time.

    python bench/rescore_speed.py [--lm best.pt] [--device cpu] [--naive-hyps 2000] [--batch-tokens 8192] [--threads N]

Scores the real ptb-tts test 100-best lists (200 utterances, 20,000
hypotheses, shipped in data/ptb-tts/test) with an fp32 LSTM LM: ``--lm`` (an
admmq checkpoint), else a 1x200 LSTM with random weights on the PTB
vocabulary (10k softmax; speed does not depend on the weights).  Rows:

* naive loop — the same model, one hypothesis per forward pass
  (``<s> w1 .. wn`` -> log-softmax -> gather), over the first ``--naive-hyps``
  hypotheses (its rate is per hypothesis, so the subset is representative);
* batched, no dedup — :class:`NeuralScorer` over all 20,000 hypotheses,
  length-sorted batches of ``--batch-tokens`` padded tokens;
* admmq rescore path — :func:`rescorer.rescore.score_sentences`: identical
  hypotheses scored once, then length-sorted chunks and batches.

hyp/s counts every hypothesis of the list (duplicates included); words/s counts
their words plus one ``</s>`` each.  The ratio column is our rate / the naive
rate, measured in the same run.  The scores of the three paths are compared.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import PTB, ROOT, machine, table  # noqa: E402
from rescorer.checkpoint import load_lm  # noqa: E402
from rescorer.corpus import read_sentences  # noqa: E402
from rescorer.model import LSTMLM, ModelConfig  # noqa: E402
from rescorer.nbest import read_nbest  # noqa: E402
from rescorer.rescore import score_sentences  # noqa: E402
from rescorer.scoring import NeuralScorer  # noqa: E402
from rescorer.train import pick_device  # noqa: E402
from rescorer.vocab import Vocab  # noqa: E402


def build_lm(path, device):
    if path:
        lm = load_lm(path, device=str(device))
        return lm.model, lm.units, f"{path} ({lm.method})"
    vocab = Vocab.build([s.words for s in read_sentences(PTB / "ptb.train.txt.gz")])
    torch.manual_seed(0)
    model = LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=200, hidden_dim=200)).eval().to(device)
    return model, vocab, f"random 1x200 LSTM, PTB vocabulary ({vocab.output_size} outputs)"


@torch.no_grad()
def naive_scores(model, units, sentences, device) -> np.ndarray:
    """One forward pass per hypothesis: ln P(words </s>)."""
    out = np.empty(len(sentences))
    for i, words in enumerate(sentences):
        ids = units.encode_sentence(words).tolist()
        x = torch.tensor([[units.bos_id] + ids], device=device)
        y = torch.tensor(ids + [units.eos_id], device=device)
        hidden, _ = model(x)
        logp = torch.log_softmax(model.logits(hidden[0]).float(), dim=-1)
        out[i] = logp.gather(1, y[:, None]).sum().item()
    return out


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lm", default=None, help="admmq checkpoint (default: random 1x200 LSTM on PTB vocabulary)")
    ap.add_argument("--nbest", default=str(ROOT / "data" / "ptb-tts" / "test"), help="n-best list to score")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--naive-hyps", type=int, default=2000, help="hypotheses the naive loop scores")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    model, units, what = build_lm(args.lm, device)
    nb = read_nbest(args.nbest)
    sents = list(nb.words)
    tokens = int(nb.lengths().sum()) + len(sents)
    naive_part = sents[: args.naive_hyps]
    naive_tokens = sum(len(s) + 1 for s in naive_part)

    naive_lp, t_naive = timed(lambda: naive_scores(model, units, naive_part, device))
    scorer = NeuralScorer(model, units, batch_tokens=args.batch_tokens, device=str(device))
    plain, t_plain = timed(lambda: scorer.score(sents, dedup=False).totals())
    ours, t_ours = timed(lambda: score_sentences(scorer, sents, chunk_tokens=4 * args.batch_tokens, quiet=True))

    naive_rate = len(naive_part) / t_naive
    rows = [("naive loop, 1 hypothesis per forward", len(naive_part), t_naive, naive_rate,
             naive_tokens / t_naive, 1.0)]
    for name, t in (("batched, no dedup", t_plain), ("admmq rescore path (dedup + batched)", t_ours)):
        rows.append((name, len(sents), t, len(sents) / t, tokens / t, len(sents) / t / naive_rate))
    print(f"# n-best rescoring speed: {args.nbest}: {nb.num_utterances} utterances, {len(sents)} hypotheses "
          f"({ours.distinct} distinct), {tokens} words+</s>")
    print(f"# LM: {what}; device {device}; batch tokens {args.batch_tokens}; {machine()}")
    print(table(["method", "hypotheses", "seconds", "hyp/s", "words/s", "x naive"], rows))
    n = len(naive_part)
    print(f"# max |score difference|: naive vs batched {np.abs(naive_lp - plain[:n]).max():.2e}, "
          f"batched vs rescore path {np.abs(plain - ours.logprob).max():.2e} (nats per hypothesis)")


if __name__ == "__main__":
    main()
