"""Rescoring speed on CPU: ``admmq rescore`` against Kaldi's own ``compute_sentence_scores.py``, and admmq's
scoring paths in process.

    python bench/rescore_speed.py [--lm best.pt] [--nbest data/ptb-tts/test] [--dev data/ptb-tts/dev]
                                  [--packed-bits 1,2,3] [--self-norm-lm sn.pt] [--bf16] [--command-repeats 3]
                                  [--kaldi-dir KALDI | --kaldi-tarball TGZ] [--no-commands] [--in-process ...]

**First table (the headline): commands as a user runs them**, on the whole n-best list, one thread,
``--command-repeats`` interleaved runs (medians of wall time, Python start to exit): Kaldi's
``steps/pytorchnn/compute_sentence_scores.py`` — the real script, from ``--kaldi-dir`` or extracted
from the Kaldi tarball (``bench/baselines.py``), with a same-shape model — is the baseline every
ratio is against; then ``admmq rescore NBEST --lm ... --lm-scale S --wip P --ref TEXT`` with the
fp32 model (the exact default path), its packed 1/2/3-bit exports (``bench/model_files.py``;
exact), and the opt-in approximations (``--int8``, ``--precision bf16`` with ``--bf16``,
``--no-normalize-probs`` on ``--self-norm-lm``).  Each row's LM scale and penalty are chosen on the
``--dev`` list first (untimed) and applied to the test list once; its WER, errors and the
difference from the exact row it approximates are printed with its peak memory.

**In-process tables** (``--in-process``): Two n-best sets: the real ptb-tts test 100-best lists (200 utterances, 20,000
hypotheses, shipped in data/ptb-tts/test), and a synthetic 1000-best set of
the same shape (``--synthetic-utts`` test utterances, each grown to 1000
distinct hypotheses: the 100 real ones, then copies of random real ones with
1-3 random edits — substitution by a word of the same utterance's list,
deletion or insertion — at positions drawn uniformly over the hypothesis).

LM: ``--lm`` (an admmq checkpoint), else a 1x200 LSTM with random weights on
the PTB vocabulary (10k softmax; speed does not depend on the weights).  The
low-bit row scores a packed file exported here (``admmq export``'s
function) from that model quantized by the simple projection of
``bench/toy_lms.py`` (ternary {0, ±1} * alpha, one alpha per row).

Rows (every row of a set's first table scores the same seeded random sample
of ``--sample-utts`` utterances, so its ratios compare equal work):

* naive loop — one hypothesis per forward pass (``<s> w1 .. wn`` -> log-softmax
  -> gather), over the sample's first ``--naive-hyps`` hypotheses;
* Kaldi-like — the baseline of these tables' ratios: what Kaldi's
  ``steps/pytorchnn/compute_sentence_scores.py`` does, step for step
  (``bench/baselines.py``: one utterance's hypotheses per batch,
  ``<s>``-padded, the full output layer and cross entropy at every position,
  per-word costs written as text, the hidden state carried over from the
  previous utterance's first hypothesis, which costs one more forward pass);
  also timed on the whole set.  Kaldi's real script (``--kaldi-dir``: a Kaldi
  checkout, by default the scripts recipes/common/install_kaldi.sh left in
  the cache, else the script extracted from ``--kaldi-tarball``) runs on the
  whole set too: every path's speed against it, and a warning when the
  stand-in's time is not within 20 % of its wall time (on a loaded machine
  the two drift apart: a printed warning, not a failure);
* per-utterance batch — a leaner version of the same (zero state, masked
  log-softmax sums, no text, no extra pass), the baseline of earlier runs;
* batched, no dedup — :class:`NeuralScorer`, plain length-sorted batches of
  ``--batch-tokens`` padded tokens over all hypotheses of many utterances;
* admmq rescore path, plain — :func:`rescorer.nbest.lm_costs.score_sentences`: dedup,
  length-sorted chunks, plain batches (``--no-prefix-sharing``);
* admmq rescore path, prefix-shared — the same with prefix trees (the default);
* low-bit CPU path — prefix-shared, the packed ternary model, ``--int8``.

A second table runs the two admmq rescore paths, the low-bit path and the
packed model's exact path on the whole set; where the n-best directory has a
``text`` (references), the WER of each path follows, at one LM scale and
insertion penalty for the paths compared (plain vs prefix-shared; exact vs
int8 on the packed model).  hyp/s counts every hypothesis (duplicates included); words/s their
words plus one ``</s>`` each.  Times are medians of ``--repeats`` runs,
interleaved.  "GFLOP/s" counts the model's multiply-adds in the LSTM steps and
softmax rows each method computed (2 * 4H(E+H) per step, 2 * HV per row); "%
peak" divides by the fp32 peak measured in the same run (a 2048^3 matmul,
median of 5, at the start and at the end).  The load average is printed: the
machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import PTB, ROOT, machine, table  # noqa: E402
from bench.baselines import (KALDI_TARBALL, kaldi_like_scores, kaldi_positions, kaldi_script_dir, naive_scores, per_utterance_scores,  # noqa: E402
                             run_kaldi_script, within)
from rescorer.pack.lm_file import load_lm  # noqa: E402
from bench.commands import Row, compare_commands  # noqa: E402
from bench.model_files import EXACT, exact_rows, packed_export, save_fp32  # noqa: E402
from rescorer.fileio import read_sentences  # noqa: E402
from rescorer.lm.model import LSTMLM, ModelConfig  # noqa: E402
from rescorer.nbest.kaldi_dir import read_nbest  # noqa: E402
from rescorer.nbest.lm_costs import components, score_sentences, segment_argmin  # noqa: E402
from rescorer.nbest.rescore import hypothesis_errors  # noqa: E402
from rescorer.lm.scoring import NeuralScorer  # noqa: E402
from rescorer.lm.batch_control import pick_device  # noqa: E402
from rescorer.lm.vocab import Vocab  # noqa: E402
from rescorer.nbest.wer import read_text  # noqa: E402

Hyps = List[Tuple[str, ...]]


def build_lm(path, device):
    if path:
        lm = load_lm(path, device=str(device))
        return lm.model, lm.units, f"{path} ({lm.method})"
    vocab = Vocab.build([s.words for s in read_sentences(PTB / "ptb.train.txt.gz")])
    torch.manual_seed(0)
    model = LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=200, hidden_dim=200)).eval().to(device)
    return model, vocab, f"random 1x200 LSTM, PTB vocabulary ({vocab.output_size} outputs)"


def packed_ternary(model, units, tmp: Path):
    """The model projected onto ternary node-tied weights, exported packed and loaded back."""
    return load_lm(packed_export(model, units, "ternary", "node", tmp))


def synthetic_nbest(utterances: Sequence[Hyps], n: int, seed: int = 0) -> List[Hyps]:
    """Each utterance grown to ``n`` distinct hypotheses (module docstring)."""
    rng = np.random.default_rng(seed)
    out = []
    for hyps in utterances:
        pool = sorted({w for h in hyps for w in h}) or ["a"]
        seen = dict.fromkeys(hyps)
        while len(seen) < n:
            h = list(hyps[rng.integers(len(hyps))])
            for _ in range(rng.integers(1, 4)):
                p = int(rng.integers(len(h) + 1))
                kind = rng.integers(3)
                if kind == 0 and p < len(h):
                    h[p] = pool[rng.integers(len(pool))]
                elif kind == 1 and p < len(h):
                    del h[p]
                else:
                    h.insert(p, pool[rng.integers(len(pool))])
            seen.setdefault(tuple(h), None)
        out.append(list(seen)[:n])
    return out


def peak_gflops(device, n: int = 2048, repeats: int = 5, dtype=torch.float32) -> float:
    """Matmul throughput on ``device``: a (n, n) @ (n, n) product of ``dtype`` (8192 on a GPU), the fastest
    of ``repeats`` (GFLOP/s)."""
    n = n if device.type == "cpu" else 4 * n
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / min(times) / 1e9


class Runs:
    """Interleaved repeated timings of named jobs; median seconds and the last result of each."""

    def __init__(self):
        self.jobs: Dict[str, Callable] = {}
        self.times: Dict[str, List[float]] = {}
        self.results: Dict[str, object] = {}

    def add(self, name: str, fn: Callable) -> None:
        self.jobs[name] = fn
        self.times[name] = []

    def run(self, repeats: int) -> None:
        for _ in range(repeats):
            for name, fn in self.jobs.items():
                t0 = time.perf_counter()
                self.results[name] = fn()
                self.times[name].append(time.perf_counter() - t0)

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])


def scorer_job(model, units, sents, args, device, **kw):
    def job():
        s = NeuralScorer(model, units, batch_tokens=args.batch_tokens, device=str(device), **kw)
        scores = score_sentences(s, sents, chunk_tokens=4 * args.batch_tokens, quiet=True)
        return scores.logprob, s.stats
    return job


LABELS = {"kaldi": "Kaldi-like: compute_sentence_scores.py stand-in", "batched": "batched, no dedup", "plain": "admmq rescore path, plain (dedup + batched)",
          "prefix": "admmq rescore path, prefix-shared", "int8": "low-bit CPU: packed ternary, --int8",
          "packed-exact": "low-bit CPU: packed ternary, exact",
          "plain-bf16": "plain, --precision bf16",
          "prefix-bf16": "prefix-shared, --precision bf16"}


def comparisons(device) -> List[Tuple[str, str]]:
    """(reference, fast) method pairs whose scores and WER are compared."""
    if device.type == "cpu":
        return [("plain", "prefix"), ("packed-exact", "int8")]
    return [("plain", "prefix"), ("prefix", "prefix-bf16")]


def fast_jobs(model, units, packed, sents, args, device) -> Dict[str, Callable]:
    """admmq's paths: on the CPU plain, prefix-shared, and the packed model int8 / exact; on a GPU
    plain and prefix-shared in fp32 and bf16 (int8 is a CPU path)."""
    jobs = {"plain": scorer_job(model, units, sents, args, device, prefix_sharing=False),
            "prefix": scorer_job(model, units, sents, args, device, prefix_sharing=True)}
    if device.type == "cpu":
        jobs["int8"] = scorer_job(packed.model, packed.units, sents, args, device, int8=True,
                                  quantized=packed.quantized)
        jobs["packed-exact"] = scorer_job(packed.model, packed.units, sents, args, device,
                                          quantized=packed.quantized)
    else:
        jobs["plain-bf16"] = scorer_job(model, units, sents, args, device, prefix_sharing=False, precision="bf16")
        jobs["prefix-bf16"] = scorer_job(model, units, sents, args, device, precision="bf16")
    return jobs


def wer_table(nb, refs, scores: Dict[str, np.ndarray], labels: Dict[str, str], ref_key: str) -> None:
    """WER of each method's scores at one LM scale / insertion penalty: the best on ``ref_key``'s scores
    (grid 0..20 step 0.5, penalties 0, 0.5, 1; swept on the test references, as ``admmq rescore --ref``)."""
    counted = hypothesis_errors(nb, refs)
    errors, absent = counted.errors, counted.absent_errors
    words = sum(len(refs[u]) for u in refs)

    def choice(logprob, scale, wip):
        comp, _ = components(nb, logprob, 0.0)
        return segment_argmin(comp.total(1.0, scale, wip), nb.offsets)

    grid = [(s, w) for s in np.arange(0, 20.01, 0.5) for w in (0.0, 0.5, 1.0)]
    best = min(grid, key=lambda sw: int(errors[choice(scores[ref_key], *sw)].sum()))
    ref_pick = choice(scores[ref_key], *best)
    rows = []
    for key, lp in scores.items():
        pick = choice(lp, *best)
        rows.append([labels[key], 100.0 * (int(errors[pick].sum()) + absent) / words,
                     int((pick != ref_pick).sum())])
    print(f"\n## WER on {nb.source} (LM scale {best[0]:g}, insertion penalty {best[1]:g}: best for "
          f"'{labels[ref_key]}'; {words} reference words)")
    print(table(["method", "WER %", "utterances choosing another hypothesis than " + ref_key], rows))


def timed_fast_paths(model, units, packed, sents, args, device, kaldi: Callable = None) -> "Runs":
    """admmq's paths (:func:`fast_jobs`) on ``sents`` (and the Kaldi-like baseline ``kaldi`` when given, first),
    ``--full-repeats`` interleaved runs."""
    runs = Runs()
    if kaldi is not None:
        runs.add("kaldi", lambda: kaldi()[:2])  # (scores, LSTM steps): steps in the place of the scorer stats
    for key, job in fast_jobs(model, units, packed, sents, args, device).items():
        runs.add(key, job)
    runs.run(args.full_repeats)
    return runs


def score_differences(runs: "Runs", device) -> str:
    """max and mean |difference| per hypothesis of each compared pair, as one line."""
    parts = []
    for ref_key, key in comparisons(device):
        d = np.abs(runs.results[key][0] - runs.results[ref_key][0])
        parts.append(f"{key} vs {ref_key} max {d.max():.2e}, mean {d.mean():.2e}")
    return "; ".join(parts)


def run_set(name: str, utterances: List[Hyps], args, model, units, packed, device, peak: float,
            nb=None, refs=None) -> None:
    rng = np.random.default_rng(1)
    k = min(args.sample_utts, len(utterances)) if args.sample_utts else len(utterances)
    sample = [utterances[i] for i in sorted(rng.choice(len(utterances), size=k, replace=False))]
    sents = [h for u in sample for h in u]
    tokens = sum(len(s) + 1 for s in sents)
    naive_part = sents[: args.naive_hyps]
    naive_tokens = sum(len(s) + 1 for s in naive_part)
    cfg = model.cfg
    step_flops = 2 * 4 * cfg.hidden_dim * (cfg.embed_dim + cfg.hidden_dim) * cfg.layers
    row_flops = 2 * cfg.hidden_dim * cfg.output_size

    runs = Runs()
    runs.add("naive", lambda: naive_scores(model, units, naive_part, device))
    runs.add("kaldi", lambda: kaldi_like_scores(model, units, sample, device))
    runs.add("per-utt", lambda: per_utterance_scores(model, units, sample, device))
    runs.add("batched", lambda: (lambda s: (s.score(sents, dedup=False).totals(), s.stats))(
        NeuralScorer(model, units, batch_tokens=args.batch_tokens, device=str(device), prefix_sharing=False)))
    for key, job in fast_jobs(model, units, packed, sents, args, device).items():
        runs.add(key, job)
    runs.run(args.repeats)

    t_naive, t_utt, t_kaldi = runs.median("naive"), runs.median("per-utt"), runs.median("kaldi")
    naive_rate = len(naive_part) / t_naive
    utt_lp, utt_positions = runs.results["per-utt"]
    utt_rate = len(sents) / t_utt
    kaldi_lp, kaldi_steps, _ = runs.results["kaldi"]

    def row(label, n_hyp, n_tok, t, steps, rows, kaldi_rate=len(sents) / t_kaldi):
        gf = (steps * step_flops + rows * row_flops) / t / 1e9
        return [label, n_hyp, t, n_hyp / t, n_tok / t, n_hyp / t / kaldi_rate, n_hyp / t / naive_rate,
                n_hyp / t / utt_rate, steps, rows, gf, 100 * gf / peak]

    table_rows = [row("Kaldi-like: compute_sentence_scores.py stand-in", len(sents), tokens, t_kaldi, kaldi_steps,
                      kaldi_steps),
                  row("naive loop, 1 hypothesis per forward", len(naive_part), naive_tokens, t_naive, naive_tokens,
                      naive_tokens),
                  row("per-utterance batch (lean, zero state)", len(sents), tokens, t_utt, utt_positions,
                      utt_positions)]
    for key, label in LABELS.items():
        if key not in runs.jobs or key == "kaldi":
            continue
        stats = runs.results[key][1]
        table_rows.append(row(label, len(sents), tokens, runs.median(key), stats.lstm_steps, stats.softmax_rows))
    header = ["method", "hypotheses", "seconds", "hyp/s", "words/s", "x Kaldi-like", "x naive", "x per-utt",
              "LSTM steps", "softmax rows", "GFLOP/s", "% peak"]
    print(f"\n## {name}: sample of {k} utterances, {len(sents)} hypotheses ({len(set(sents))} distinct), "
          f"{tokens} words+</s>; median of {args.repeats}")
    print(table(header, table_rows))
    naive_lp = runs.results["naive"]
    plain_lp = runs.results["plain"][0]
    n, n0 = len(naive_part), len(sample[0])
    print(f"# max |score difference| (nats per hypothesis): naive vs plain {np.abs(naive_lp - plain_lp[:n]).max():.2e}, "
          f"per-utterance vs plain {np.abs(utt_lp - plain_lp).max():.2e}, Kaldi-like vs plain on the first "
          f"utterance (zero state; later ones start from the carried state) "
          f"{np.abs(kaldi_lp[:n0] - plain_lp[:n0]).max():.2e}; " + score_differences(runs, device))
    st_plain, st_prefix = runs.results["plain"][1], runs.results["prefix"][1]
    print(f"# LSTM steps: per-utterance {utt_positions}, plain {st_plain.lstm_steps} (padded; {st_plain.tokens} "
          f"words+</s> of distinct hypotheses), prefix-shared {st_prefix.lstm_steps} "
          f"({st_plain.tokens / max(st_prefix.lstm_steps, 1):.2f}x fewer than unpadded, "
          f"{utt_positions / max(st_prefix.lstm_steps, 1):.2f}x fewer than per-utterance)")

    if args.full:
        full = [h for u in utterances for h in u]
        ftok = sum(len(s) + 1 for s in full)
        runs = timed_fast_paths(model, units, packed, full, args, device,
                                kaldi=lambda: kaldi_like_scores(model, units, utterances, device))
        t_kaldi_full = runs.median("kaldi")
        rows = []
        for key in runs.jobs:
            stats = runs.results[key][1]
            steps, n_rows = (stats, stats) if key == "kaldi" else (stats.lstm_steps, stats.softmax_rows)
            rows.append(row(LABELS[key], len(full), ftok, runs.median(key), steps, n_rows,
                            kaldi_rate=len(full) / t_kaldi_full))
        print(f"\n## {name}, whole set: {len(utterances)} utterances, {len(full)} hypotheses, {ftok} words+</s>; "
              f"median of {args.full_repeats} (x Kaldi-like: against the Kaldi-like stand-in on the whole set; "
              f"x naive / x per-utt: against the sample's baseline rates)")
        print(table(header, rows))
        print("# max |score difference| (nats per hypothesis): " + score_differences(runs, device))
        if args.kaldi_scripts is not None and refs is not None:
            with tempfile.TemporaryDirectory() as tmp:
                t_real = run_kaldi_script(args.kaldi_scripts, model, units, utterances, args.threads,
                                          Path(tmp)).seconds
            ok = within(t_kaldi_full, t_real)
            args.kaldi_check_failed |= not ok
            print(f"# Kaldi's compute_sentence_scores.py ({args.kaldi_scripts}) on the whole set: {t_real:.2f} s wall "
                  f"(Python start and model load included); the stand-in {t_kaldi_full:.2f} s: "
                  f"{100 * (t_kaldi_full / t_real - 1):+.1f} % — {'within' if ok else 'NOT within'} 20 %")
            print("# x Kaldi's script (its wall time over each path's, same run): " + "; ".join(
                f"{LABELS[k]} {t_real / runs.median(k):.2f}x" for k in runs.jobs if k != "kaldi"))
        if refs is not None:
            for ref_key, key in comparisons(device):
                wer_table(nb, refs, {k: runs.results[k][0] for k in (ref_key, key)}, LABELS, ref_key)


def run_hub5_sized(utterances: List[Hyps], args, model, units, packed, device) -> None:
    """A Hub5'00-sized synthetic set (``--hub5-utts`` utterances x 100 hypotheses): each utterance
    is a random real one, its 100 hypotheses fresh random edits of its real ones (so utterances
    do not share sentences); admmq's paths only, ``--full-repeats`` runs."""
    rng = np.random.default_rng(3)
    picks = rng.integers(len(utterances), size=args.hub5_utts)
    synth = [synthetic_nbest([utterances[i]], 200, seed=j)[0][100:] for j, i in enumerate(picks.tolist())]
    full = [h for u in synth for h in u]
    ftok = sum(len(s) + 1 for s in full)
    runs = timed_fast_paths(model, units, packed, full, args, device)
    rows = [[LABELS[k], len(full), runs.median(k), len(full) / runs.median(k), ftok / runs.median(k),
             runs.results[k][1].lstm_steps, runs.results[k][1].softmax_rows] for k in runs.jobs]
    print(f"\n## Hub5'00-sized synthetic set: {len(synth)} utterances x 100 hypotheses, {len(full)} hypotheses "
          f"({len(set(full))} distinct), {ftok} words+</s>; median of {args.full_repeats}")
    print(table(["method", "hypotheses", "seconds", "hyp/s", "words/s", "LSTM steps", "softmax rows"], rows))
    print("# max |score difference| (nats per hypothesis): " + score_differences(runs, device))


def built_kaldi_scripts():
    """Kaldi's scripts beside the programs recipes/common/install_kaldi.sh built (None when not built)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "admmq" / "kaldi" / "kaldi"
    return str(cache) if (cache / "egs" / "wsj" / "s5" / "steps" / "pytorchnn" / "compute_sentence_scores.py").is_file() \
        else None
def command_rows(args, model, units, tmp: Path) -> List[Row]:
    """The ``admmq rescore`` configurations of the first table: the fp32 model (exact, the default), its packed
    low-bit exports (exact), and the opt-in approximations."""
    lm = args.lm or str(save_fp32(model, units, tmp / "fp32.pt"))
    exact = EXACT
    rows = exact_rows(lm, model, units, args.packed_bits, tmp)
    if 3 in args.packed_bits:
        rows.append(Row("packed 3-bit", rows[-1].lm, ("--int8",), exact_of=rows[-1].label))
    rows.append(Row("fp32", lm, ("--int8",), exact_of=exact))
    if args.bf16:
        rows.append(Row("fp32", lm, ("--precision", "bf16"), exact_of=exact))
    if args.self_norm_lm:
        rows.append(Row("self-normalised fp32 (exact)", args.self_norm_lm, exact_of=exact))
        rows.append(Row("self-normalised fp32", args.self_norm_lm, ("--no-normalize-probs",), exact_of=exact))
    return rows


def run_commands(args, model, units, utterances: List[Hyps], refs) -> None:
    """The whole list scored by the commands users run: Kaldi's script (the baseline) and ``admmq rescore``."""
    n_hyps = sum(len(u) for u in utterances)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        rows = command_rows(args, model, units, tmp)
        kaldi = None
        if args.kaldi_scripts is not None:
            (tmp / "kaldi").mkdir()
            kaldi = lambda: run_kaldi_script(args.kaldi_scripts, model, units, utterances, 1, tmp / "kaldi")  # noqa
        text = [p for p in (Path(args.nbest) / "text", Path(args.nbest) / "text.gz") if p.exists()]
        dev_text = [p for p in (Path(args.dev) / "text", Path(args.dev) / "text.gz") if p.exists()] if args.dev else []
        print(f"\n## {args.nbest}, whole list ({len(utterances)} utterances, {n_hyps} hypotheses): commands as a "
              f"user runs them, one thread" + (f"; LM scale and penalty of each row chosen on {args.dev}" if dev_text
                                               else ""))
        if kaldi is None:
            print("# Kaldi's script not found (no --kaldi-dir and no Kaldi tarball at "
                  f"{args.kaldi_tarball}): no baseline row")
        compare_commands(rows, args.nbest, n_hyps, kaldi, args.command_repeats, str(text[0]) if text else None,
                         args.dev if dev_text else None, str(dev_text[0]) if dev_text else None,
                         kaldi_positions(utterances))
        print(f"# Kaldi's script: {args.kaldi_scripts}, a same-shape {model.cfg.layers}x{model.cfg.hidden_dim} "
              f"RNNModel (tied embeddings, as the script requires; random weights, so its scores are not compared), "
              f"vocabulary of {len(units.vocab)} words; WER: admmq rescore --ref")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lm", default=None, help="admmq checkpoint (default: random 1x200 LSTM on PTB vocabulary)")
    ap.add_argument("--nbest", default=str(ROOT / "data" / "ptb-tts" / "test"), help="n-best list to score")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--naive-hyps", type=int, default=300, help="hypotheses the naive loop scores")
    ap.add_argument("--sample-utts", type=int, default=20, help="utterances every method scores (0: all)")
    ap.add_argument("--synthetic-utts", type=int, default=10, help="utterances of the synthetic 1000-best set")
    ap.add_argument("--synthetic-sample-utts", type=int, default=2, help="of which every method scores")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per method on the samples (median)")
    ap.add_argument("--full-repeats", type=int, default=1, help="timed runs per method on the whole sets")
    ap.add_argument("--no-full", dest="full", action="store_false", help="skip the whole-set tables")
    ap.add_argument("--no-synthetic", dest="synthetic", action="store_false", help="skip the synthetic 1000-best set")
    ap.add_argument("--kaldi-dir", default=built_kaldi_scripts(),
                    help="a Kaldi checkout holding egs/wsj/s5/steps/pytorchnn/compute_sentence_scores.py (default: "
                         "Kaldi's scripts that recipes/common/install_kaldi.sh put in the cache, when there, else the "
                         "script extracted from --kaldi-tarball)")
    ap.add_argument("--kaldi-tarball", default=str(KALDI_TARBALL), help="Kaldi source tarball holding the script")
    ap.add_argument("--dev", default=str(ROOT / "data" / "ptb-tts" / "dev"),
                    help="dev n-best list the LM scale / penalty of each command row are chosen on ('' : 10, 0)")
    ap.add_argument("--packed-bits", default="1,2,3", help="packed exports of the LM to time (bits, comma list)")
    ap.add_argument("--self-norm-lm", default=None, help="a self-normalised model (admmq train --self-norm): "
                                                           "rows exact and --no-normalize-probs")
    ap.add_argument("--bf16", action="store_true", help="also time --precision bf16 (slow without bf16 hardware)")
    ap.add_argument("--command-repeats", type=int, default=3, help="runs of each command (median)")
    ap.add_argument("--no-commands", dest="commands", action="store_false", help="skip the command table")
    ap.add_argument("--in-process", action="store_true",
                    help="also the in-process tables (naive loop, Kaldi-like stand-in, per-utterance batch, "
                         "admmq's paths; samples, the whole set, a synthetic 1000-best set); with Kaldi's script at "
                         "hand, a warning when the stand-in's whole-set time is not within 20 %% of the script's")
    ap.add_argument("--hub5-utts", type=int, default=0,
                    help="also score a synthetic set of this many utterances x 100-best (Hub5'00: 4458; for a GPU)")
    ap.add_argument("--carry-over", action="store_true",
                    help="also time --carry-over recording (per voice) against none on the whole list")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (on the shared, loaded 2-core machine 2 threads were slower for every method)")
    args = ap.parse_args()
    args.kaldi_check_failed = False
    args.packed_bits = [int(b) for b in args.packed_bits.split(",") if b.strip()]
    args.kaldi_scripts = kaldi_script_dir(args.kaldi_dir, Path(args.kaldi_tarball))
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    model, units, what = build_lm(args.lm, device)
    nb = read_nbest(args.nbest)
    utterances = [list(nb.words[nb.offsets[u]: nb.offsets[u + 1]]) for u in range(nb.num_utterances)]
    load0 = os.getloadavg()
    peak0 = peak_gflops(device)
    bf16 = peak_gflops(device, n=512, repeats=2, dtype=torch.bfloat16)
    with tempfile.TemporaryDirectory() as tmp:
        packed = packed_ternary(model, units, Path(tmp))
    print(f"# n-best rescoring speed; LM: {what}; device {device}; batch tokens {args.batch_tokens}; {machine()}")
    print(f"# load average at start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; fp32 peak (large matmul on "
          f"{device}) {peak0:.1f} GFLOP/s; bf16 {bf16:.1f} GFLOP/s (a 512^3 product: bf16 arithmetic "
          f"{'in hardware' if bf16 > peak0 else 'emulated, slower than fp32: --precision bf16 does not pay here'})")
    texts = [p for p in (Path(args.nbest) / "text", Path(args.nbest) / "text.gz") if p.exists()]
    refs = read_text(texts[0]) if texts else None
    if args.commands:
        run_commands(args, model, units, utterances, refs)
    if args.in_process:
        run_set(f"{args.nbest} (100-best)", utterances, args, model, units, packed, device, peak0, nb, refs)
    if args.in_process and args.synthetic:
        rng = np.random.default_rng(2)
        pick = sorted(rng.choice(len(utterances), size=min(args.synthetic_utts, len(utterances)), replace=False))
        synth = synthetic_nbest([utterances[i] for i in pick], 1000)
        sargs = argparse.Namespace(**{**vars(args), "sample_utts": args.synthetic_sample_utts})
        run_set(f"synthetic 1000-best ({len(synth)} utterances of {args.nbest})", synth, sargs, model, units, packed,
                device, peak0)
    if args.hub5_utts:
        run_hub5_sized(utterances, args, model, units, packed, device)
    if args.carry_over:
        from bench.carry_over_speed import carry_over_table
        print(f"\n## {args.nbest}: --carry-over recording against none (bench/carry_over_speed.py)")
        print(carry_over_table(model, units, nb, "([^_]*)_", max(args.full_repeats, 3), args.batch_tokens,
                               str(device)))
    peak1 = peak_gflops(device)
    load1 = os.getloadavg()
    print(f"\n# fp32 peak at the end {peak1:.1f} GFLOP/s (% peak above uses the start's); load average at the end "
          f"{load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    if args.kaldi_check_failed:  # timings drift on a loaded machine: said, not an exit status
        print("# warning: the Kaldi-like stand-in is not within 20 % of Kaldi's script (above)", file=sys.stderr)


if __name__ == "__main__":
    main()
