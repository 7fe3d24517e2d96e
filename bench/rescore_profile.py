"""Where the time of one ``admmq rescore`` run goes: start-up, reading, LM loading, LSTM steps, the
output layer, writing, exit.

    python bench/rescore_profile.py [--lm best.pt] [--nbest data/ptb-tts/test] [--repeats 3]
                                    [--source DIR [--source DIR2 ...]] [--label NAME ...] [-- EXTRA ARGS]

Runs ``admmq rescore NBEST --lm LM -o TMP --lm-scale 10 --wip 0 --threads 1 --quiet`` (plus the
arguments after ``--``) as a fresh process, ``--repeats`` times, one thread (``OMP_NUM_THREADS=1``),
and times its parts from inside: a small driver (below) imports admmq, wraps the functions every
version of ``admmq rescore`` calls — ``read_nbest`` (reading the lists), ``load_tuned_scorer``
(loading the LM), ``score_sentences`` (LM scoring; inside it the LSTM steps and the output layer
with its normaliser: the scorer's own clocks in ``summary.json``, or for versions without them
timers around ``StepLM.step`` and ``StepLM.logprobs_at``), ``write_outputs`` — with timers, runs
the command, and reports whether PyTorch was imported.  ``start-up`` is the process's age when the driver starts (Python) plus
the imports; ``exit`` is the wall time after the command returned (interpreter teardown).  The wall
time is measured outside the process.

``--source DIR`` runs the admmq of another checkout (e.g. a ``git worktree`` of an older commit)
instead of this one; several sources run interleaved in one invocation, so a before/after table
compares runs of the same minutes.  Rows are medians of the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch  # noqa: E402

from bench.common import ROOT, machine, table  # noqa: E402

DRIVER = r'''
import json, os, sys, time
t_start = time.perf_counter()
def age():
    try:
        fields = open("/proc/self/stat", "rb").read().rsplit(b")", 1)[1].split()
        return float(open("/proc/uptime").read().split()[0]) - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except Exception:
        return 0.0
python_s = age()
import rescorer.cli as entry
import rescorer.cli.cmd_rescore as cmd
import rescorer.nbest.rescore as rescore_mod
import rescorer.nbest.rescore_job as job
import importlib.util
kernel_version = importlib.util.find_spec("rescorer.lm.kernel_step") is not None
if not kernel_version:  # an older admmq: its PyTorch stepper is what scores
    import rescorer.lm.step_lm as step_lm
imports_s = time.perf_counter() - t_start
timers = {}
def timed(name, fn):
    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            timers[name] = timers.get(name, 0.0) + time.perf_counter() - t0
    return wrapper
job.read_nbest = timed("read", job.read_nbest)
cmd.load_tuned_scorer = timed("load_lm", cmd.load_tuned_scorer)
rescore_mod.score_sentences = timed("lm_scoring", rescore_mod.score_sentences)
if not kernel_version:
    step_lm.StepLM.step = timed("lstm_steps", step_lm.StepLM.step)
    step_lm.StepLM.logprobs_at = timed("output_layer", step_lm.StepLM.logprobs_at)
job.write_outputs = timed("write", job.write_outputs)
import gc
gc.freeze() if hasattr(getattr(entry, "group", None), "fast_exit_allowed") else None  # as this version does
t_cmd = time.perf_counter()
try:
    entry.cli.main(args=sys.argv[2:], prog_name="admmq", standalone_mode=False)
finally:
    timers.update(python=python_s, imports=imports_s, command=time.perf_counter() - t_cmd, end=time.time())
    if kernel_version:  # the scorer's own clocks (summary.json), no wrapper on the steppers
        out = sys.argv[sys.argv.index("-o") + 1]
        work = json.load(open(os.path.join(out, "summary.json")))["scoring"]["lm_work"][0]
        timers.update(lstm_steps=work["lstm_seconds"], output_layer=work["output_seconds"])
    timers["torch_imported"] = "torch" in sys.modules
    with open(sys.argv[1], "w") as fh:
        json.dump(timers, fh)
group = getattr(entry, "group", None)
if getattr(group, "fast_exit_allowed", lambda: False)():
    sys.stdout.flush(); sys.stderr.flush(); os._exit(0)
'''

ROWS = [("start-up: Python", "python"), ("start-up: imports (torch, admmq)", "imports"),
        ("read the n-best lists", "read"), ("load the LM", "load_lm"),
        ("LM scoring: LSTM steps", "lstm_steps"), ("LM scoring: output layer (normaliser)", "output_layer"),
        ("LM scoring: the rest (dedup, trees, n-grams)", "lm_other"), ("choose weights, WER, summary", "other"),
        ("write the outputs", "write"), ("exit (interpreter teardown)", "exit")]


def run_once(source: Path, args, extra) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out_json = Path(tmp) / "timers.json"
        cmd = [sys.executable, "-c", DRIVER, str(out_json), "rescore", args.nbest, "--lm", args.lm, "-o",
               str(Path(tmp) / "out"), "--lm-scale", "10", "--wip", "0", "--threads", "1", "--quiet", *extra]
        env = dict(os.environ, PYTHONPATH=str(source), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        t0 = time.time()
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=source)
        wall = time.time() - t0
        if res.returncode != 0:
            sys.exit(f"rescore_profile.py: {source}: admmq rescore failed: {res.stderr.strip()[-400:]}")
        t = json.loads(out_json.read_text())
    t["wall"] = wall
    t["exit"] = max(0.0, t0 + wall - t["end"])
    t["lm_other"] = t.get("lm_scoring", 0.0) - t.get("lstm_steps", 0.0) - t.get("output_layer", 0.0)
    t["other"] = t["command"] - sum(t.get(k, 0.0) for k in ("read", "load_lm", "lm_scoring", "write"))
    return t


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lm", default=str(ROOT.parent / "shared" / "models" / "ptb-std-1x200" / "best.pt"))
    ap.add_argument("--nbest", default=str(ROOT / "data" / "ptb-tts" / "test"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--source", action="append", default=[], help="admmq checkout to run (repeatable)")
    ap.add_argument("--label", action="append", default=[], help="column name of each --source")
    args = ap.parse_args(argv)
    args.lm, args.nbest = str(Path(args.lm).resolve()), str(Path(args.nbest).resolve())
    torch.set_num_threads(1)  # (the runs themselves get OMP_NUM_THREADS=1 and --threads 1)
    sources = [Path(s).resolve() for s in args.source] or [ROOT]
    labels = args.label + [s.name for s in sources[len(args.label):]]
    load0 = os.getloadavg()
    runs = {lab: [] for lab in labels}
    for _ in range(args.repeats):
        for lab, src in zip(labels, sources):
            runs[lab].append(run_once(src, args, extra))
    med = {lab: {k: statistics.median(r[k] for r in rs) for k in rs[0] if k not in ("end", "torch_imported")}
           for lab, rs in runs.items()}
    print(f"# admmq rescore {args.nbest} --lm {args.lm} --lm-scale 10 --wip 0 --threads 1 {' '.join(extra)}")
    print(f"# {machine()}; load average at start {load0[0]:.2f}, at end {os.getloadavg()[0]:.2f}; "
          f"medians of {args.repeats} runs per column, interleaved")
    header = ["part"] + [f"{lab} s" for lab in labels] + [f"{lab} %" for lab in labels]
    rows = []
    for name, key in ROWS + [("wall (measured outside)", "wall")]:
        rows.append([name] + [med[lab].get(key, 0.0) for lab in labels] +
                    [100.0 * med[lab].get(key, 0.0) / med[lab]["wall"] for lab in labels])
    print(table(header, rows))
    print("# PyTorch imported: " + ", ".join(f"{lab} {runs[lab][-1]['torch_imported']}" for lab in labels))
    if len(labels) > 1:
        base = med[labels[0]]["wall"]
        print("# wall time ratio against " + labels[0] + ": " +
              ", ".join(f"{lab} {base / med[lab]['wall']:.2f}x" for lab in labels[1:]))


if __name__ == "__main__":
    main()
