"""Kaldi's programs and scripts for the tests, as recipes/common/install_kaldi.sh leaves them, and a small
Kaldi setup made with them from the real ptb-tts n-best lists: a lang directory (words.txt, G.fst by
arpa2fst, G.carpa by arpa-to-const-arpa) and a decode directory of real Kaldi lattices.

Tests that need the programs skip when they were not built, except where setup must have built them
(``ADMMQ_REQUIRE_KALDI``, set by ``.ci/run``, or ``CI``): there they fail.
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "recipes" / "common" / "install_kaldi.sh"
PROGRAMS = ("lattice-to-nbest", "nbest-to-linear", "linear-to-nbest", "nbest-to-lattice", "lattice-best-path",
            "lattice-lmrescore-const-arpa", "lattice-compose", "lattice-1best", "lattice-scale", "arpa2fst",
            "arpa-to-const-arpa")


def kaldi_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "admmq" / "kaldi"


def require_kaldi() -> Path:
    """The cache with Kaldi's programs (``bin/``) and scripts (``kaldi/``); skip or fail without them."""
    cache = kaldi_cache()
    missing = [p for p in PROGRAMS if not os.access(cache / "bin" / p, os.X_OK)]
    if not (cache / "VERSION").is_file() or missing or shutil.which("fstproject") is None:
        msg = (f"Kaldi's programs are not built in {cache} (missing {missing[:3] or ['VERSION/fstproject']}; "
               f"bash recipes/common/install_kaldi.sh)")
        if os.environ.get("ADMMQ_REQUIRE_KALDI") or os.environ.get("CI"):
            pytest.fail(msg + ": setup must build them here", pytrace=False)
        pytest.skip(msg)
    return cache


def kaldi_env(cache: Path) -> Dict[str, str]:
    """The environment scripts run in: Kaldi's programs and this Python (with torch) first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(cache / "bin"), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def run(cmd: Sequence[str], cwd: Optional[Path] = None, env: Optional[Dict[str, str]] = None,
        stdin: Optional[bytes] = None, shell: bool = False) -> subprocess.CompletedProcess:
    """Run a command; on failure an assertion with its output."""
    p = subprocess.run(cmd if not shell else " ".join(cmd), cwd=cwd, env=env, input=stdin, shell=shell,
                       capture_output=True)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n" \
                              f"{p.stdout.decode(errors='replace')[-3000:]}\n{p.stderr.decode(errors='replace')[-3000:]}"
    return p


# ------------------------------------------------------------------------------ a lang directory
def read_table(path: Path) -> List[Tuple[str, str]]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [tuple(line.split(None, 1)) if " " in line.strip() else (line.strip(), "")
                for line in fh if line.strip()]


def make_words_txt(src: Path, out: Path) -> Dict[str, int]:
    """A Kaldi lang words.txt: the list's words.txt (``<eps>`` 0) plus ``<unk>``, ``#0``, ``<s>``, ``</s>``."""
    table = {w: int(i) for w, i in read_table(src)}
    for extra in ("<unk>", "#0", "<s>", "</s>"):
        if extra not in table:
            table[extra] = max(table.values()) + 1
    out.write_text("".join(f"{w} {i}\n" for w, i in sorted(table.items(), key=lambda kv: kv[1])))
    return table


def make_lang(lang: Path, words_src: Path, arpa_text: str, cache: Path) -> Dict[str, int]:
    """``lang/``: words.txt, G.fst (arpa2fst, as utils/format_lm.sh) and G.carpa (arpa-to-const-arpa, as
    utils/build_const_arpa_lm.sh: the ARPA's words mapped to ids first)."""
    lang.mkdir(parents=True, exist_ok=True)
    table = make_words_txt(words_src, lang / "words.txt")
    (lang / "lm.arpa").write_text(arpa_text)
    env = kaldi_env(cache)
    run(["arpa2fst", "--disambig-symbol=#0", f"--read-symbol-table={lang / 'words.txt'}", str(lang / "lm.arpa"),
         str(lang / "G.fst")], env=env)
    mapped = []
    section = 0
    for line in arpa_text.splitlines():
        if line.startswith("\\") and line.endswith("-grams:"):
            section = int(line[1:line.index("-")])
        elif section and line.strip() and not line.startswith("\\"):
            f = line.split("\t")
            f[1] = " ".join(str(table[w]) for w in f[1].split())
            line = "\t".join(f)
        mapped.append(line)
    (lang / "lm_int.arpa").write_text("\n".join(mapped) + "\n")
    run(["arpa-to-const-arpa", f"--bos-symbol={table['<s>']}", f"--eos-symbol={table['</s>']}",
         f"--unk-symbol={table['<unk>']}", str(lang / "lm_int.arpa"), str(lang / "G.carpa")], env=env)
    return table


# -------------------------------------------------------------------------- a decode directory
def write_decode_dir(decode: Path, jobs: Sequence[Sequence[Tuple[str, Tuple[str, ...], float]]],
                     table: Dict[str, int], lang: Path, cache: Path) -> None:
    """``decode/lat.JOB.gz`` and ``num_jobs``: each job's hypotheses ``(key, words, acwt)`` (keys
    ``<utt>-<n>``) as Kaldi lattices — ``linear-to-nbest | nbest-to-lattice`` with a distinct alignment per
    hypothesis and graph cost 0, then the first-pass LM's cost added by ``lattice-lmrescore-const-arpa
    --lm-scale=1`` with ``lang/G.carpa`` (so the lattices hold what decoding with that G gives)."""
    decode.mkdir(parents=True, exist_ok=True)
    env = kaldi_env(cache)
    for j, hyps in enumerate(jobs, 1):
        src = decode / f"linear.{j}"
        src.mkdir(exist_ok=True)
        with open(src / "ali", "w") as ali, open(src / "words", "w") as wd, open(src / "acwt", "w") as ac, \
                open(src / "lmwt", "w") as lm:
            for k, (key, words, acwt) in enumerate(hyps, 1):
                frames = " ".join(str(k) for _ in range(max(3, len(words))))
                ali.write(f"{key} {frames}\n")
                wd.write(" ".join([key] + [str(table[w]) for w in words]) + "\n")
                ac.write(f"{key} {acwt:.4f}\n")
                lm.write(f"{key} 0\n")
        run([f"linear-to-nbest ark:{src}/ali ark:{src}/words ark:{src}/lmwt ark:{src}/acwt ark:- | "
             f"nbest-to-lattice ark:- ark:- | lattice-lmrescore-const-arpa --lm-scale=1.0 ark:- {lang}/G.carpa "
             f"'ark:|gzip -c > {decode}/lat.{j}.gz'"], env=env, shell=True)
    (decode / "num_jobs").write_text(f"{len(jobs)}\n")


def best_paths(lat_glob: Sequence[Path], words_txt: Path, cache: Path, acoustic_scale: float,
               lm_scale: float = 1.0) -> Dict[str, Tuple[str, ...]]:
    """``lattice-best-path`` of the lattices, as words per utterance."""
    ids = {int(i): w for w, i in read_table(words_txt)}
    out: Dict[str, Tuple[str, ...]] = {}
    for lat in lat_glob:
        p = run([f"lattice-best-path --acoustic-scale={acoustic_scale} --lm-scale={lm_scale} "
                 f"'ark:gunzip -c {lat}|' ark,t:-"], env=kaldi_env(cache), shell=True)
        for line in p.stdout.decode().splitlines():
            f = line.split()
            out[f[0]] = tuple(ids[int(i)] for i in f[1:])
    return out


def read_scalars(path: Path) -> Dict[str, float]:
    return {k: float(v) for k, v in (line.split() for line in path.read_text().splitlines() if line.strip())}


def per_token_sums(path: Path) -> Dict[str, float]:
    """compute_sentence_scores.py's output: ``key cost cost ...`` -> key -> summed cost."""
    out = {}
    for line in path.read_text().splitlines():
        f = line.split()
        if f:
            out[f[0]] = math.fsum(float(x) for x in f[1:])
    return out
