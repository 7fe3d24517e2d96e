"""Faults: kill -9 training and rescoring at random moments; resumed runs must equal uninterrupted ones.

    python bench/kill_resume.py [--trials 20] [--kills 3] [--method admm] [--seed 1] [--rescore-trials 10]

Training: one uninterrupted CPU run of ``admmq train`` (tiny LSTM on a PTB
slice, ``--save-every 3`` so checkpoints are written often) is the
reference.  Each trial starts the same run, kills the process with SIGKILL
at up to ``--kills`` random moments (uniform over the reference run's wall
time, measured from each restart), then runs ``admmq train --resume`` (or a
fresh start when the kill came before the first checkpoint) until it
finishes.  After every kill ``last.pt`` must load (no corrupted checkpoint);
at the end the trial matches when ``best.pt`` and ``last.pt`` hold bitwise
the reference's weights, quantized matrices and epoch log figures.

Rescoring: ``admmq rescore`` of the shipped ptb-tts test list (with a back-off
3-gram) is killed at a random moment; every declared output file then either
does not exist or is byte-identical to the uninterrupted run's
(``summary.json``: complete JSON), and no temporary file survives the next run.

Prints a table: trials, kills, matched, and the percentage (must be 100%).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, machine, ptb_slice, table  # noqa: E402

PYTHON = sys.executable
TRAIN_ARGS = ["--embed-dim", "16", "--hidden-dim", "16", "--epochs", "3", "--batch-size", "10", "--save-every", "3",
              "--device", "cpu", "--schedule", "constant", "--seed", "3", "--quiet"]


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _admmq(args: List[str]) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, "-m", "rescorer"] + args, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def prepare(work: Path, sentences: int = 150) -> Tuple[Path, Path]:
    return ptb_slice("train", sentences, work / "train.txt"), ptb_slice("valid", 40, work / "valid.txt")


def train_cmd(data: Tuple[Path, Path], out: Path, method: str, resume: bool) -> List[str]:
    if resume:
        return ["train", "--resume", str(out)]
    return ["train", "--train", str(data[0]), "--valid", str(data[1]), "-o", str(out), "--method", method] + TRAIN_ARGS


def finished(out: Path) -> bool:
    last = out / "last.pt"
    if not last.exists():
        return False
    ck = torch.load(last, map_location="cpu", weights_only=True)
    return bool(ck["trainer"]["done"]) or ck["trainer"]["epoch"] >= ck["train_config"]["epochs"]


def run_to_end(data, out: Path, method: str) -> float:
    """Start (or resume) and let it finish; returns the seconds it took."""
    t0 = time.time()
    p = _admmq(train_cmd(data, out, method, (out / "last.pt").exists()))
    _, err = p.communicate()
    if p.returncode != 0:
        raise RuntimeError(f"admmq train failed ({p.returncode}): {err.decode()[-2000:]}")
    return time.time() - t0


def fingerprint(path: Path) -> Dict[str, object]:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    return {"model": ck["model"], "quantized": ck["quantized"],
            "log": [{k: v for k, v in row.items() if "seconds" not in k and k != "tokens_per_s"} for row in ck["log"]]}


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def train_trial(data, out: Path, method: str, kills: int, span: float, rng: random.Random) -> Tuple[int, bool]:
    """Kill up to ``kills`` times, then finish; returns (kills done, every last.pt after a kill loadable)."""
    done_kills, loadable = 0, True
    for _ in range(kills):
        if finished(out):
            break
        p = _admmq(train_cmd(data, out, method, (out / "last.pt").exists()))
        time.sleep(rng.uniform(0.0, span))
        if p.poll() is not None:  # it finished before the kill
            p.communicate()
            break
        p.send_signal(signal.SIGKILL)
        p.communicate()
        done_kills += 1
        if (out / "last.pt").exists():
            try:
                torch.load(out / "last.pt", map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - any failure to load is what this benchmark counts
                loadable = False
    if not finished(out):
        run_to_end(data, out, method)
    return done_kills, loadable


def kill_resume_loop(work: Path, trials: int, kills: int = 3, method: str = "admm", seed: int = 1,
                     sentences: int = 150) -> Dict[str, object]:
    """The training loop of the module docstring; returns counts and per-trial details."""
    rng = random.Random(seed)
    data = prepare(work, sentences)
    ref = work / "reference"
    span = run_to_end(data, ref, method)
    want_best, want_last = fingerprint(ref / "best.pt"), fingerprint(ref / "last.pt")
    matched, total_kills, details = 0, 0, []
    for t in range(trials):
        out = work / f"trial{t}"
        k, loadable = train_trial(data, out, method, kills, span, rng)
        ok = loadable and same(fingerprint(out / "best.pt"), want_best) and same(fingerprint(out / "last.pt"),
                                                                                 want_last)
        leftovers = sorted(p.name for p in out.glob(".*.tmp"))
        matched += ok
        total_kills += k
        details.append({"trial": t, "kills": k, "matched": ok, "loadable": loadable, "temp_files": leftovers})
        shutil.rmtree(out)
    return {"trials": trials, "kills": total_kills, "matched": matched, "reference_seconds": span,
            "details": details}


# ---------------------------------------------------------------- rescoring
RESCORE_OUTPUTS = ("text", "nbest.txt", "lmwt.new", "wer.txt", "summary.json")


def prepare_rescore(work: Path, utterances: int = 0) -> List[str]:
    sys.path.insert(0, str(ROOT))
    from bench.toy_lms import backoff_arpa  # the normalised back-off estimator of toy corpora

    with gzip.open(ROOT / "data" / "ptb" / "ptb.train.txt.gz", "rt", encoding="utf-8") as fh:
        sents = [next(fh).split() for _ in range(1000 if utterances else 5000)]
    arpa = work / "lm3.arpa"
    arpa.write_text(backoff_arpa(sents, 3), encoding="utf-8")
    nb = work / "nbest"
    nb.mkdir(exist_ok=True)
    for f in (ROOT / "data" / "ptb-tts" / "test").glob("*.gz"):
        with gzip.open(f, "rb") as src:
            lines = src.read().splitlines(keepends=True)
        if utterances and f.name not in ("words.txt.gz",):  # the first utterances (keys '<utt>-<n>', text '<utt>')
            utts = list(dict.fromkeys(ln.split()[0].rsplit(b"-", 1)[0] for ln in lines if ln.strip()))
            keep = set(utts[:utterances])
            lines = [ln for ln in lines if ln.strip() and (ln.split()[0] in keep
                                                           or ln.split()[0].rsplit(b"-", 1)[0] in keep)]
        (nb / f.name[:-3]).write_bytes(b"".join(lines))
    return ["rescore", str(nb), "--ngram", str(arpa), "--lm-scale", "8", "--wip", "0", "--ref", str(nb / "text"),
            "--quiet"]


def rescore_outputs_ok(out: Path, ref: Path) -> bool:
    for name in RESCORE_OUTPUTS:
        got = out / name
        if not got.exists():
            continue
        if name == "summary.json":
            try:
                json.loads(got.read_text())
            except ValueError:
                return False
        elif got.read_bytes() != (ref / name).read_bytes():
            return False
    return True


def kill_rescore_loop(work: Path, trials: int, seed: int = 1, utterances: int = 0) -> Dict[str, object]:
    """The rescoring part of the module docstring (``utterances`` > 0: the first ones of the list only)."""
    rng = random.Random(seed)
    args = prepare_rescore(work, utterances)
    ref = work / "rescore_ref"
    t0 = time.time()
    p = _admmq(args + ["-o", str(ref)])
    _, err = p.communicate()
    if p.returncode != 0:
        raise RuntimeError(f"admmq rescore failed: {err.decode()[-2000:]}")
    span = time.time() - t0
    ok_count, details = 0, []
    for t in range(trials):
        out = work / f"rescore{t}"
        p = _admmq(args + ["-o", str(out)])
        time.sleep(rng.uniform(0.3 * span, span))  # mostly while scoring and writing (start-up is the rest)
        killed = p.poll() is None
        if killed:
            p.send_signal(signal.SIGKILL)
        p.communicate()
        ok = rescore_outputs_ok(out, ref) if out.exists() else True
        present = sorted(n for n in RESCORE_OUTPUTS if (out / n).exists())
        # a rerun in the same directory completes and leaves no temporary file behind
        p = _admmq(args + ["-o", str(out)])
        p.communicate()
        ok = ok and p.returncode == 0 and rescore_outputs_ok(out, ref) and not list(out.glob(".*.tmp"))
        ok_count += ok
        details.append({"trial": t, "killed": killed, "outputs_present": present, "ok": ok})
        shutil.rmtree(out)
    return {"trials": trials, "ok": ok_count, "reference_seconds": span, "details": details}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--kills", type=int, default=3, help="kills per training trial (at most)")
    ap.add_argument("--method", default="admm")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rescore-trials", type=int, default=10)
    ap.add_argument("--json", action="store_true", help="also print the details as JSON")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="admmq-kill-") as tmp:
        work = Path(tmp)
        tr = kill_resume_loop(work, args.trials, args.kills, args.method, args.seed)
        rs = kill_rescore_loop(work, args.rescore_trials, args.seed) if args.rescore_trials else None
    print(f"machine: {machine()}")
    rows = [[f"train {args.method} kill -9 + resume", tr["trials"], tr["kills"], tr["matched"],
             f"{100.0 * tr['matched'] / max(tr['trials'], 1):.0f}%", tr["reference_seconds"]]]
    if rs is not None:
        killed = sum(d["killed"] for d in rs["details"])
        rows.append(["rescore kill -9: outputs whole or absent", rs["trials"], killed, rs["ok"],
                     f"{100.0 * rs['ok'] / max(rs['trials'], 1):.0f}%", rs["reference_seconds"]])
    print(table(["loop", "trials", "kills", "matched", "rate", "uninterrupted s"], rows))
    if args.json:
        print(json.dumps({"train": tr, "rescore": rs}, indent=1, default=str))
    all_ok = tr["matched"] == tr["trials"] and (rs is None or rs["ok"] == rs["trials"])
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
