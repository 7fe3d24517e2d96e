"""Command lines timed as a user runs them: wall seconds, peak resident memory, exit status; and the
``admmq rescore`` invocations the speed benchmarks compare.

:func:`run_timed` runs a command through a small launcher that waits for it with ``os.wait4``:
its wall time and its own peak resident set (``ru_maxrss``).  :func:`rescore_cmd` builds an
``admmq rescore`` command line (one thread), :func:`tune_on_dev` picks its LM scale and insertion
penalty on a dev list (untimed), :func:`timed_rescore` runs it on the test list and returns the
time, memory, WER and the summary's own timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@dataclass
class Timed:
    seconds: float
    max_rss_mib: float
    returncode: int
    stdout: str
    stderr: str
    summary: Dict = field(default_factory=dict)  # admmq rescore's summary.json, when it wrote one
    best: Dict[str, str] = field(default_factory=dict)  # and its choice per utterance (its text output)


# Forked from the (large) benchmark process, a child would start with the parent's resident size as its
# high-water mark (Linux copies it at fork), so a small launcher forks the command and reports the
# command's own wait4 figures: wall seconds and peak resident set (KiB).
_LAUNCHER = """import os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(f"{time.perf_counter() - t0} {ru.ru_maxrss}")
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def run_timed(cmd: Sequence[str], env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None) -> Timed:
    """Run ``cmd`` to completion: its wall seconds (start to exit) and peak RSS in MiB (see ``_LAUNCHER``)."""
    with tempfile.TemporaryDirectory() as tmp:
        figures = Path(tmp) / "figures"
        res = subprocess.run([sys.executable, "-c", _LAUNCHER, str(figures), *cmd], capture_output=True, text=True,
                             env=env, cwd=cwd)
        seconds, kib = figures.read_text().split() if figures.exists() else ("nan", "0")
    return Timed(float(seconds), int(kib) / 1024.0, res.returncode, res.stdout, res.stderr)


def admmq() -> List[str]:
    """The ``admmq`` command of this checkout (the venv's console script, else ``python -m rescorer.cli``)."""
    script = Path(sys.executable).with_name("admmq")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "rescorer.cli"]


def rescore_cmd(nbest: str, lm: str, out: str, flags: Sequence[str] = (), lm_scale: Optional[float] = None,
                wip: Optional[float] = None, ref: Optional[str] = None) -> List[str]:
    cmd = admmq() + ["rescore", nbest, "--lm", lm, "-o", out, "--threads", "1", "--quiet", *flags]
    if lm_scale is not None:
        cmd += ["--lm-scale", f"{lm_scale:g}", "--wip", f"{wip:g}"]
    if ref is not None:
        cmd += ["--ref", ref]
    return cmd


def one_thread_env() -> Dict[str, str]:
    return dict(os.environ, **ONE_THREAD)


def tune_on_dev(dev: str, dev_ref: str, lm: str, flags: Sequence[str] = ()) -> Tuple[float, float]:
    """LM scale and insertion penalty that minimise the dev list's WER (``admmq rescore DEV --ref DEV_REF``
    sweeps them on the dev references)."""
    with tempfile.TemporaryDirectory() as tmp:
        res = run_timed(rescore_cmd(dev, lm, tmp, flags, ref=dev_ref), one_thread_env())
        if res.returncode != 0:
            sys.exit(f"admmq rescore on the dev list failed: {res.stderr.strip()[-300:]}")
        w = json.loads((Path(tmp) / "summary.json").read_text())["weights"]
    return float(w["lm_scale"]), float(w["wip"])


def timed_rescore(nbest: str, lm: str, flags: Sequence[str], lm_scale: float, wip: float,
                  ref: Optional[str] = None) -> Timed:
    """``admmq rescore`` on ``nbest`` with given weights, timed; its summary.json attached."""
    with tempfile.TemporaryDirectory() as tmp:
        res = run_timed(rescore_cmd(nbest, lm, tmp, flags, lm_scale, wip, ref), one_thread_env())
        if res.returncode != 0:
            sys.exit(f"admmq rescore {nbest} --lm {lm} {' '.join(flags)} failed: {res.stderr.strip()[-300:]}")
        res.summary = json.loads((Path(tmp) / "summary.json").read_text())
        for line in (Path(tmp) / "text").read_text(encoding="utf-8").splitlines():
            utt, _, words = line.partition(" ")
            res.best[utt] = words
    return res


def wer_of(summary: Dict) -> Optional[Tuple[float, int, int]]:
    """The rescored WER of a summary with references: (%, errors, reference words), else None."""
    w = summary.get("wer", {}).get("rescored", {}).get("total")
    return None if w is None else (float(w["wer"]), int(w["errors"]), int(w["words"]))


@dataclass(frozen=True)
class Row:
    """One ``admmq rescore`` configuration of a comparison: an LM file and flags; ``exact_of`` is the
    :attr:`name` of the exact row an approximate one is compared with (WER difference, choices)."""

    label: str
    lm: str
    flags: Tuple[str, ...] = ()
    exact_of: Optional[str] = None

    @property
    def name(self) -> str:
        """The label and the flags: what the table shows and results are keyed by."""
        return " ".join((self.label,) + self.flags)


def compare_commands(rows: Sequence[Row], nbest: str, n_hyps: int, kaldi, repeats: int, ref: Optional[str],
                     dev: Optional[str], dev_ref: Optional[str], kaldi_rows: Optional[int] = None) -> Dict[str, dict]:
    """Kaldi's script (``kaldi()`` -> :class:`Timed`, the baseline; None: no baseline) and each row's
    ``admmq rescore`` on the whole list, ``repeats`` interleaved runs, medians; LM scale and penalty of
    each row chosen on the dev list first (untimed), then applied to ``nbest`` once per run.
    ``kaldi_rows``: the LSTM steps Kaldi's script computes (padded positions and its extra pass), for the
    steps column.  Prints the table; returns label -> figures."""
    weights = {r.name: tune_on_dev(dev, dev_ref, r.lm, r.flags) if dev else (10.0, 0.0) for r in rows}
    times: Dict[str, List[Timed]] = {"kaldi": []}
    times.update({r.name: [] for r in rows})
    for _ in range(repeats):
        if kaldi is not None:
            times["kaldi"].append(kaldi())
        for r in rows:
            times[r.name].append(timed_rescore(nbest, r.lm, r.flags, *weights[r.name], ref=ref))

    def med(label: str, attr: str) -> float:
        vals = sorted(getattr(t, attr) for t in times[label])
        return vals[len(vals) // 2]

    base = med("kaldi", "seconds") if times["kaldi"] else None
    out: Dict[str, dict] = {}
    table_rows = []
    if base is not None:
        table_rows.append(["Kaldi: steps/pytorchnn/compute_sentence_scores.py", base, n_hyps / base, 1.0,
                           med("kaldi", "max_rss_mib"), "", "", kaldi_rows or "", "", "", "", ""])
    for r in rows:
        s = med(r.name, "seconds")
        last = times[r.name][-1]
        w = wer_of(last.summary)
        exact = out.get(r.exact_of, {}) if r.exact_of else {}
        timing = last.summary.get("timing", {})
        out[r.name] = {"seconds": s, "rate": n_hyps / s, "x_kaldi": base / s if base else None,
                       "max_rss_mib": med(r.name, "max_rss_mib"), "wer": w, "weights": weights[r.name],
                       "runs": [t.seconds for t in times[r.name]], "timing": timing, "best": last.best}
        diff = f"{w[0] - exact['wer'][0]:+.2f} ({w[1] - exact['wer'][1]:+d})" if w and exact.get("wer") else ""
        other = sum(last.best[u] != b for u, b in exact["best"].items()) if exact else ""
        work = (last.summary.get("scoring", {}).get("lm_work") or [{}])[0]
        table_rows.append([r.name, s, n_hyps / s, base / s if base else "", med(r.name, "max_rss_mib"),
                           timing.get("load_lm", ""), timing.get("lm_scoring", ""), work.get("lstm_steps", ""),
                           "%g, %g" % weights[r.name],
                           f"{w[0]:.2f} ({w[1]}/{w[2]})" if w else "", diff, other])
    from bench.common import table
    print(table(["command (one thread)", "seconds", "hyp/s", "x Kaldi's script", "peak MiB", "load s", "LM s",
                 "LSTM steps", "LM scale, wip" + (" (dev)" if dev else ""), "WER % (errors/words)", "WER - exact (errors)",
                 "choices != exact"], table_rows))
    spread = {k: f"{min(t.seconds for t in v):.2f}-{max(t.seconds for t in v):.2f}" for k, v in times.items() if v}
    print("# seconds: median of " + str(repeats) + " interleaved runs, wall time of the whole command (Python "
          "start, imports, model load, reading, scoring, writing); ranges: " +
          ", ".join(f"{k} {v}" for k, v in spread.items()))
    return out
