"""Rescoring speed at Switchboard scale: a 30k-word vocabulary, the paper's 1x200 and Kaldi's 2x650 LSTM,
Hub5'00-sized 100-best lists; ``admmq rescore`` (fp32, packed 1/2/3-bit, opt-in modes) against Kaldi's
``compute_sentence_scores.py`` on the same lists and the same model shape.

    python bench/swbd_scale.py [--shape 1x200] [--shape 2x650] [--vocab 30000] [--utts 4458]
                               [--sample-utts N] [--repeats 1] [--packed-bits 1,2,3]
                               [--kaldi-dir KALDI | --kaldi-tarball TGZ]

* Vocabulary: PTB's 10k words, then the other words of the ptb-tts n-best lists, then made-up words
  (``w00001`` ...) up to ``--vocab`` outputs (Switchboard's LMs have ~30k).
* Lists: ``--utts`` utterances (Hub5'00 has 4,458) of 100 hypotheses each, seeded: each utterance
  is a random ptb-tts test utterance's real 100-best list with its words renamed by a random
  one-to-one map into the vocabulary (so the lists keep real lists' lengths, duplicates and shared
  prefixes, and no two utterances share a sentence), with random acoustic costs; written in
  admmq's single-file n-best form.  Kaldi's script at this scale would take hours, so every row
  scores the same seeded random sample of ``--sample-utts`` of these utterances (stated in the
  output; default 100 for 1x200, 30 for 2x650).
* Models: random weights (uniform +-0.1, seeded; the speed does not depend on them), saved as an
  fp32 checkpoint and exported packed at 1/2/3 bits (``bench/model_files.py``).  Kaldi's script
  gets a same-shape ``RNNModel`` (``bench/baselines.py``).
* Rows: Kaldi's script (the baseline of the ratios), ``admmq rescore`` with the fp32 model (exact,
  the default), each packed file (exact), ``--int8`` on the 1-bit file and the fp32 model, and
  ``--no-normalize-probs`` (the speed of a self-normalised model: these random weights are not
  self-normalised, so that row's choices mean nothing); LM scale 10, penalty 0.  Columns: wall
  seconds, hypotheses/s, x Kaldi's script, peak memory (the process's max RSS), model load
  seconds and LM scoring seconds (``summary.json``'s ``timing``), and how many utterances an
  approximate row decides differently from the exact fp32 row (no references here).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import List

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.baselines import KALDI_TARBALL, kaldi_positions, kaldi_script_dir, run_kaldi_script  # noqa: E402
from bench.commands import Row, compare_commands  # noqa: E402
from bench.common import PTB, ROOT, machine  # noqa: E402
from bench.model_files import EXACT, exact_rows, save_fp32  # noqa: E402
from rescorer.fileio import read_sentences  # noqa: E402
from rescorer.lm.model import LSTMLM, ModelConfig  # noqa: E402
from rescorer.lm.vocab import Vocab  # noqa: E402
from rescorer.nbest.kaldi_dir import read_nbest  # noqa: E402
from rescorer.nbest.lists import build_nbest, write_nbest_file  # noqa: E402

SHAPES = {"1x200": (1, 200), "2x650": (2, 650)}
DEFAULT_SAMPLE = {"1x200": 100, "2x650": 30}


def big_vocabulary(size: int) -> Vocab:
    """PTB's words, the ptb-tts hypotheses' other words, then made-up ones: ``size`` outputs."""
    ptb = Vocab.build([s.words for s in read_sentences(PTB / "ptb.train.txt.gz")])
    words = [w for w in ptb.symbols if w not in ("<s>", "</s>", ptb.unk)]
    seen = set(words)
    for split in ("dev", "test"):
        nb = read_nbest(ROOT / "data" / "ptb-tts" / split)
        for ws in nb.words:
            for w in ws:
                if w not in seen:
                    seen.add(w)
                    words.append(w)
    k = 0
    while len(words) < size - 2:  # + </s> and <unk>
        k += 1
        w = f"w{k:05d}"
        if w not in seen:
            words.append(w)
    return Vocab(words[: size - 2], unk=ptb.unk)


def hub5_sized_lists(utts: int, vocab: Vocab, seed: int = 3) -> List[List[tuple]]:
    """``utts`` utterances x 100 hypotheses: each a random ptb-tts test utterance's real 100-best list with its
    words renamed by a random one-to-one map into ``vocab`` (its own map per utterance): the lists keep the
    real lists' shape — lengths, duplicates, shared prefixes — and no two utterances share a sentence."""
    nb = read_nbest(ROOT / "data" / "ptb-tts" / "test")
    real = [list(nb.words[nb.offsets[u]: nb.offsets[u + 1]]) for u in range(nb.num_utterances)]
    rng = np.random.default_rng(seed)
    words = [w for w in vocab.symbols if w not in ("<s>", "</s>", vocab.unk)]
    out = []
    for i in rng.integers(len(real), size=utts).tolist():
        types = sorted({w for h in real[i] for w in h})
        rename = dict(zip(types, (words[k] for k in rng.choice(len(words), size=len(types), replace=False))))
        out.append([tuple(rename[w] for w in h) for h in real[i]])
    return out


def write_lists(utterances: List[List[tuple]], path: Path, seed: int = 4) -> Path:
    """The lists in admmq's single-file form, keys ``hub5_NNNN-r``, random acoustic costs (~N(-1500, 30))."""
    keys = [f"hub5_{u:04d}-{r}" for u, hyps in enumerate(utterances) for r in range(1, len(hyps) + 1)]
    words = [h for hyps in utterances for h in hyps]
    acwt = np.random.default_rng(seed).normal(1500.0, 30.0, size=len(keys))
    write_nbest_file(build_nbest(keys, words, {"acwt": acwt}, source=str(path)), path)
    return path


def random_model(vocab: Vocab, layers: int, dim: int, seed: int = 0) -> LSTMLM:
    torch.manual_seed(seed)
    return LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=dim, hidden_dim=dim, layers=layers)).eval()


def run_shape(shape: str, vocab: Vocab, sets: List[List[tuple]], args, tmp: Path) -> None:
    layers, dim = SHAPES[shape]
    k = args.sample_utts or DEFAULT_SAMPLE[shape]
    rng = np.random.default_rng(1)
    sample = [sets[i] for i in sorted(rng.choice(len(sets), size=min(k, len(sets)), replace=False))]
    n_hyps = sum(len(u) for u in sample)
    lists = write_lists(sample, tmp / f"{shape}.nbest.txt")
    model = random_model(vocab, layers, dim)
    lm = str(save_fp32(model, vocab, tmp / f"{shape}.pt"))
    exact = EXACT
    rows = exact_rows(lm, model, vocab, args.packed_bits, tmp)
    if 1 in args.packed_bits:
        rows.append(Row("packed 1-bit", rows[1].lm, ("--int8",), exact_of=rows[1].label))
    rows.append(Row("fp32", lm, ("--int8",), exact_of=exact))
    rows.append(Row("fp32", lm, ("--no-normalize-probs",), exact_of=exact))
    scripts = args.kaldi_scripts
    kaldi = None
    if scripts is not None:
        (tmp / "kaldi").mkdir(exist_ok=True)
        kaldi = lambda: run_kaldi_script(scripts, model, vocab, sample, 1, tmp / "kaldi")  # noqa: E731
    mb = {r.lm: os.path.getsize(r.lm) / 2**20 for r in rows}
    print(f"\n## {shape} LSTM, {vocab.output_size} outputs ({model.cfg.embed_dim}-dim embedding): seeded sample of "
          f"{len(sample)} of the {len(sets)} utterances, {n_hyps} hypotheses ({len(set(h for u in sample for h in u))} "
          f"distinct), {sum(len(h) + 1 for u in sample for h in u)} words+</s>; median of {args.repeats}")
    print("# files: " + ", ".join(f"{Path(p).name} {m:.1f} MiB" for p, m in mb.items()))
    if kaldi is None:
        print("# Kaldi's script not found: no baseline row")
    compare_commands(rows, str(lists), n_hyps, kaldi, args.repeats, None, None, None, kaldi_positions(sample))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", action="append", choices=sorted(SHAPES), help="LSTM shape(s) (default both)")
    ap.add_argument("--vocab", type=int, default=30000, help="softmax outputs")
    ap.add_argument("--utts", type=int, default=4458, help="utterances of the lists (Hub5'00: 4458)")
    ap.add_argument("--sample-utts", type=int, default=0,
                    help="utterances every row scores (default 100 for 1x200, 30 for 2x650)")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each command (median)")
    ap.add_argument("--packed-bits", default="1,2,3")
    ap.add_argument("--kaldi-dir", default=None, help="a Kaldi checkout (default: the script from --kaldi-tarball)")
    ap.add_argument("--kaldi-tarball", default=str(KALDI_TARBALL))
    args = ap.parse_args()
    args.packed_bits = [int(b) for b in args.packed_bits.split(",") if b.strip()]
    args.kaldi_scripts = kaldi_script_dir(args.kaldi_dir, Path(args.kaldi_tarball))
    torch.set_num_threads(1)
    load0 = os.getloadavg()
    vocab = big_vocabulary(args.vocab)
    sets = hub5_sized_lists(args.utts, vocab)
    print(f"# Switchboard-scale rescoring speed; {machine()}; load average at start {load0[0]:.2f}")
    print(f"# lists: {len(sets)} utterances x 100 hypotheses (Hub5'00-sized, synthetic from ptb-tts test); "
          f"vocabulary {vocab.output_size} outputs; Kaldi's script: {args.kaldi_scripts}")
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shape or ["1x200", "2x650"]:
            run_shape(shape, vocab, sets, args, Path(tmp))
    print(f"\n# load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
