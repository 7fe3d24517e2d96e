"""N-gram LM speed and memory: admmq's built-in ARPA reader against kenlm, on a PTB 4-gram.

    python bench/ngram_speed.py [--arpa LM.arpa[.gz]] [--tool auto|lmplz|irstlm] [--text FILE] [--repeat 3]

Without --arpa, a 4-gram is estimated from PTB's training text with
recipes/common/make_4gram.sh (lmplz if available, else irstlm).  Each backend
runs in a fresh process (so memory figures do not mix) and reports: ARPA load
time; the peak resident memory the load added (transient parse buffers
included) and what stays resident after it; and scoring speed in words/s
(words plus one </s> per sentence) over the text (default PTB test, 82,430
tokens), scored in chunks of 1,000 sentences like n-best batches, best of
--repeat runs.  Ratios are built-in / kenlm (>1: the built-in reader takes
longer / holds more / scores faster).
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import PTB, ROOT, machine, table  # noqa: E402


def rss_kib() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() // 1024


def worker(backend: str, arpa: str, text: str, repeat: int) -> dict:
    from rescorer.ngram.ngram_lm import NgramScorer

    opener = gzip.open if text.endswith(".gz") else open
    with opener(text, "rt", encoding="utf-8") as fh:
        sents = [line.split() for line in fh if line.split()]
    before = rss_kib()
    t0 = time.perf_counter()
    scorer = NgramScorer(arpa, backend=backend, quiet=True)
    load = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    after = rss_kib()
    tokens = sum(len(s) + 1 for s in sents)
    best = float("inf")
    total = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        total = 0.0
        for i in range(0, len(sents), 1000):
            total += float(scorer.score(sents[i:i + 1000]).logprob.sum())
        best = min(best, time.perf_counter() - t0)
    out = {"backend": scorer.backend, "load_s": load, "peak_mib": (peak - before) / 1024,
           "resident_mib": (after - before) / 1024, "words_per_s": tokens / best, "tokens": tokens, "logprob": total}
    if scorer.backend == "builtin":
        out["array_mib"] = scorer.arpa_model.nbytes() / 2**20
    return out


def build_4gram(tool: str, dest: Path) -> Path:
    train = dest / "ptb.train.txt"
    with gzip.open(PTB / "ptb.train.txt.gz", "rb") as src:
        train.write_bytes(src.read())
    out = dest / "ptb.4g.arpa"
    subprocess.run(["bash", str(ROOT / "recipes/common/make_4gram.sh"), "--tool", tool, str(train), str(out)],
                   check=True)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arpa", help="ARPA file to load (default: estimate a PTB 4-gram)")
    ap.add_argument("--tool", default="auto", choices=["auto", "lmplz", "irstlm"])
    ap.add_argument("--text", default=str(PTB / "ptb.test.txt.gz"), help="text to score")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.arpa, args.text, args.repeat)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        arpa = Path(args.arpa) if args.arpa else build_4gram(args.tool, Path(tmp))
        from rescorer.ngram.arpa_reader import declared_counts
        from rescorer.ngram.ngram_lm import kenlm_module

        backends = ["builtin"] + (["kenlm"] if kenlm_module() is not None else [])
        res = {}
        for b in backends:
            r = subprocess.run([sys.executable, __file__, "--worker", b, "--arpa", str(arpa), "--text", args.text,
                                "--repeat", str(args.repeat)], check=True, capture_output=True, text=True)
            res[b] = json.loads(r.stdout.strip().splitlines()[-1])
        counts = declared_counts(arpa)
    print(f"# n-gram LM load and scoring: {arpa.name if args.arpa else 'PTB 4-gram (' + args.tool + ')'}, "
          f"{' / '.join(str(c) for c in counts)} n-grams; text {Path(args.text).name}, "
          f"{res['builtin']['tokens']} tokens")
    print(f"# {machine()}")
    rows = []
    for b in backends:
        r = res[b]
        rows.append([b, r["load_s"], r["peak_mib"], r["resident_mib"], r["words_per_s"]])
    if "kenlm" in res:
        k, o = res["kenlm"], res["builtin"]
        rows.append(["ratio builtin/kenlm", o["load_s"] / k["load_s"], o["peak_mib"] / max(k["peak_mib"], 1e-9),
                     o["resident_mib"] / max(k["resident_mib"], 1e-9), o["words_per_s"] / k["words_per_s"]])
        same = abs(o["logprob"] - k["logprob"]) <= 1e-6 * abs(k["logprob"])
        print(f"# total log-probability: builtin {o['logprob']:.3f}, kenlm {k['logprob']:.3f} "
              f"({'same' if same else 'DIFFERENT'})")
    else:
        print("# kenlm not installed (pip install ufal.kenlm): built-in reader only")
    print(f"# built-in arrays: {res['builtin']['array_mib']:.1f} MiB")
    print(table(["backend", "load s", "peak load MiB", "resident MiB", "words/s"], rows))


if __name__ == "__main__":
    main()
