"""What the cross-utterance carry-over costs: admmq's prefix-shared rescoring of a whole n-best list with
``--carry-over recording`` against the same without carry-over, in one run.

    python bench/carry_over_speed.py --lm best.pt [--nbest data/ptb-tts/test] [--pattern '([^_]*)_']
                                     [--repeats 3] [--threads 1]

(also ``python bench/rescore_speed.py --carry-over``).  Both rows score every hypothesis of the list with
:func:`rescorer.nbest.lm_costs.score_sentences` and a fresh scorer per run, as ``admmq rescore`` does; the
carry-over row also builds the chains (utterances grouped by ``--pattern``, the voice prefix of the
ptb-tts ids: one recording per voice, in list order), reads every utterance's first-pass best hypothesis
in one batched pass and scores each utterance's hypotheses from their own start state (prefix trees per
start state).  Runs alternate; medians of ``--repeats``.  The LM: ``--lm``, else a random 1x200 LSTM on the
PTB vocabulary (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, machine, table  # noqa: E402
from rescorer.lm.scoring import NeuralScorer  # noqa: E402
from rescorer.nbest.kaldi_dir import read_nbest  # noqa: E402
from rescorer.nbest.lm_costs import score_sentences  # noqa: E402
from rescorer.nbest.recordings import CarryOver, carry_context  # noqa: E402


def carry_over_table(model, units, nb, pattern: str, repeats: int, batch_tokens: int = 8192,
                     device: str = "cpu", make_scorer=None) -> str:
    """Seconds, hyp/s and LSTM work of prefix-shared scoring of ``nb`` without and with carry-over, and their
    ratio (a markdown table and a line on the score difference)."""
    spec = CarryOver("recording", pattern=pattern)
    sents = list(nb.words)
    times = {"none": [], "recording": []}
    results = {}
    for _ in range(repeats):
        for mode in times:
            t0 = time.perf_counter()
            scorer = (make_scorer() if make_scorer is not None
                      else NeuralScorer(model, units, batch_tokens=batch_tokens, device=device))
            context = carry_context([nb], spec) if mode == "recording" else None
            scores = score_sentences(scorer, sents, 4 * batch_tokens, True, context)
            times[mode].append(time.perf_counter() - t0)
            results[mode] = (scores.logprob, scorer.stats, len(context.history) if context else 0)
    t0, t1 = statistics.median(times["none"]), statistics.median(times["recording"])
    rows = []
    for mode, t in (("none", t0), ("recording", t1)):
        lp, stats, hist = results[mode]
        rows.append([f"--carry-over {mode}" + (f" (--recording-pattern '{pattern}')" if hist else ""), len(sents),
                     t, len(sents) / t, t / t0, stats.lstm_steps, stats.history_steps, stats.softmax_rows, hist])
    diff = np.abs(results["recording"][0] - results["none"][0])
    return (table(["prefix-shared rescoring", "hypotheses", "seconds", "hyp/s", "× time of none", "LSTM steps",
                   "of which history", "softmax rows", "history sentences"], rows)
            + f"\n\ncarry-over cost: {100 * (t1 / t0 - 1):+.1f} % time (medians of {repeats}); scores moved by "
              f"{diff.mean():.3f} nats per hypothesis on average (max {diff.max():.3f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lm", default=None, help="admmq LM (default: random 1x200 LSTM on the PTB vocabulary)")
    ap.add_argument("--nbest", default=str(ROOT / "data" / "ptb-tts" / "test"))
    ap.add_argument("--pattern", default="([^_]*)_", help="--recording-pattern: the voice prefix of ptb-tts ids")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--scorer", choices=("auto", "kernel", "torch"), default="auto",
                    help="auto: the compiled kernels' scorer when an --lm is given and they load (what admmq "
                         "rescore runs on one CPU thread), else PyTorch's")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from bench.rescore_speed import build_lm
    model, units, what = build_lm(args.lm, torch.device("cpu"))
    nb = read_nbest(args.nbest)
    make_scorer, kind = None, "PyTorch (NeuralScorer)"
    if args.lm and args.scorer != "torch" and args.threads == 1:
        from rescorer.lm.word_scores import NeuralOptions
        from rescorer.ngram.scorers import kernel_scorer_for

        if kernel_scorer_for(args.lm, NeuralOptions(threads=1), "cpu", 8192) is not None:
            make_scorer, kind = (lambda: kernel_scorer_for(args.lm, NeuralOptions(threads=1), "cpu", 8192)), \
                "compiled kernels (KernelScorer)"
    if args.scorer == "kernel" and make_scorer is None:
        sys.exit("carry_over_speed.py: --scorer kernel needs --lm, --threads 1 and the compiled kernels")
    print(f"# carry-over cost; LM: {what}; scorer: {kind}; n-best {args.nbest}; {machine()}")
    print(carry_over_table(model, units, nb, args.pattern, args.repeats, make_scorer=make_scorer))


if __name__ == "__main__":
    main()
