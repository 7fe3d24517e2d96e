"""recipes/swbd/run.sh end to end on a small fake egs/swbd/s5c directory with Kaldi's real programs.

Kaldi's lattice and n-best programs come from recipes/common/install_kaldi.sh (tests/kaldi_tools.py; the
test skips only where setup could not build them, never in CI).  The data are the real ptb-tts 100-best
lists (3 utterances of each voice, renamed to Kaldi eval2000 ids ``sw_*`` and ``en_*`` so they fall into
the swbd and callhm subsets, with an stm reference, NIST's public GLM and an acronym map) as real Kaldi
lattices whose graph costs are a first-pass bigram's (``data/lang_sw1_fsh_fg``: G.fst by arpa2fst, which
the recipe removes), a PTB slice as ``data/train/text`` and a real back-off 3-gram of it as the
``sw1_fsh`` n-gram.  ``local/score.sh`` is a stand-in (Kaldi's needs sclite and a ctm): each lattice's
best path at LMWT 10 (``lattice-best-path``), which must be admmq's own choice — the new LM costs went
back into the lattices correctly.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rescorer.nbest.kaldi_archive import INT_VECTOR, SCALAR, read_archive
from rescorer.nbest.kaldi_dir import read_nbest
from rescorer.nbest.wer import read_text, score_files
from rescorer.scoring.nist_scorer import make_scorer
from tests.conftest import HUB5_GLM, NBEST_DIR, ROOT, ptb_lines
from tests.kaldi_tools import kaldi_env, make_lang, require_kaldi, write_decode_dir
from tests.ngram_fixtures import backoff_arpa

DECODE = "exp/chain/tdnn7r_sp/decode_eval2000_sw1_fsh_fg"
SCORE_SH = """#!/bin/sh
# STAND-IN for Kaldi's local/score.sh (tests only): best path of every lattice at LMWT 10, as words.
# usage: local/score.sh [--cmd CMD] DATA LANG DIR
[ "$1" = --cmd ] && shift 2
lang=$2; dir=$3
mkdir -p "$dir/scoring"
for f in "$dir"/lat.*.gz; do
  lattice-best-path --lm-scale=10 "ark:gunzip -c $f|" ark,t:-
done | awk 'NR == FNR { w[$2] = $1; next } { s = $1; for (i = 2; i <= NF; i++) s = s " " w[$i]; print s }' \\
  "$lang/words.txt" - > "$dir/scoring/10.txt"
"""

def _gz_lines(split: str, name: str):
    with gzip.open(NBEST_DIR / split / f"{name}.gz", "rt", encoding="utf-8") as fh:
        return [ln.split() for ln in fh if ln.strip()]


def _kaldi_ids(utts):
    """ptb-tts utterance -> (Kaldi eval2000 utterance id, stm fields): one conversation side each."""
    out = {}
    for k, u in enumerate(utts):
        file = f"{'sw' if u.startswith('rms_') else 'en'}_{4000 + k}"
        out[u] = (f"{file}-A_000100-000512", f"{file} A {file}_A 1.00 5.12 <O>")
    return out


def make_s5c(root: Path, per_voice: int = 3, nj: int = 2) -> Path:
    """A fake egs/swbd/s5c: training text, lang, eval2000 references, real lattices in nj jobs, 4-gram."""
    cache = require_kaldi()
    for d in ("data/train", "data/lang", "data/eval2000", "data/local/lm", DECODE, "local", "data/local/dict_nosp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    train = ptb_lines("train", 400)
    (root / "data/train/text").write_text("".join(f"sw02001-A_{i:06d} {ln}" for i, ln in enumerate(train)))
    refs = {u: w for u, *w in _gz_lines("test", "text")}
    utts = [u for u in refs if u.startswith("rms_")][:per_voice] + [u for u in refs if u.startswith("slt_")][:per_voice]
    kaldi = _kaldi_ids(utts)
    (root / "data/eval2000/text").write_text("".join(f"{kaldi[u][0]} {' '.join(refs[u])}\n" for u in utts))
    (root / "data/eval2000/stm").write_text(";; LABEL \"O\" \"Overall\" \"all\"\n" + "".join(
        f"{kaldi[u][1]} {' '.join(refs[u])}\n" for u in utts))
    shutil.copy(HUB5_GLM, root / "data/eval2000/glm")
    (root / "data/local/dict_nosp/acronyms.map").write_text("i.b.m.\ti._b._m.\ti b m\n")
    nb = read_nbest(NBEST_DIR / "test")
    hyps = []
    for u in utts:
        k = nb.utts.index(u)
        hyps.append([(f"{kaldi[u][0]}-{nb.ranks[i]}", nb.words[i], float(nb.costs["acwt"][i]))
                     for i in range(nb.offsets[k], nb.offsets[k + 1])])
    old = root / "data/lang_sw1_fsh_fg"
    table = make_lang(old, NBEST_DIR / "test" / "words.txt.gz",
                      backoff_arpa([w for h in hyps for _, w, _ in h] + [("<unk>",)], order=2), cache)
    shutil.copy(old / "words.txt", root / "data/lang/words.txt")
    jobs = [[h for u in hyps[(j - 1) * len(hyps) // nj: j * len(hyps) // nj] for h in u] for j in range(1, nj + 1)]
    write_decode_dir(root / DECODE, jobs, table, old, cache)
    (old / "G.carpa").unlink()  # the recipe removes the old LM with its G.fst
    arpa = backoff_arpa([ln.split() for ln in train], order=3)
    with gzip.open(root / "data/local/lm/sw1_fsh.o4g.kn.gz", "wt") as fh:
        fh.write(arpa)
    (root / "local/score.sh").write_text(SCORE_SH)
    (root / "local/score.sh").chmod(0o755)
    return root


def _env(tmp: Path) -> dict:
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "admmq"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m rescorer \"$@\"\n")
    wrapper.chmod(0o755)
    env = kaldi_env(require_kaldi())
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    for k in ("train_cmd", "decode_cmd"):
        env.pop(k, None)
    return env


def run_recipe(s5c: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    cmd = ["bash", str(ROOT / "recipes/swbd/run.sh"), "--kaldi-dir", str(s5c), "--quick", "true",
           "--models", "admm-pm1:admm:pm1:layer", "--valid-lines", "60", "--nbest", "100", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_swbd_recipe_end_to_end_with_kaldi_programs(tmp_path):
    s5c = make_s5c(tmp_path / "s5c")
    env = _env(tmp_path)
    r = run_recipe(s5c, env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    exp = s5c / "exp/admmq"
    # stage 4: one real Kaldi n-best directory per job, all utterances, costs as nbest-to-linear wrote them
    jobs = [read_nbest(exp / "nbest" / str(j)) for j in (1, 2)]
    assert [nb.num_utterances for nb in jobs] == [3, 3] and sum(len(nb) for nb in jobs) == 600
    assert set(jobs[0].cost_names()) >= {"acwt", "lmwt.withlm", "lmwt.nolm", "lmwt.lmonly"}
    # Kaldi's lattice-to-nbest | nbest-to-linear gave back the lattices' paths (alignment with its words),
    # renumbered by their total cost
    def paths(ali, words):
        pairs = {}
        for a, w in zip(read_archive(ali, INT_VECTOR), read_archive(words, INT_VECTOR)):
            pairs.setdefault(a.key.rsplit("-", 1)[0], set()).add((a.value, w.value))
        return pairs
    written = s5c / DECODE / "linear.1"
    assert paths(exp / "nbest/1/ali", exp / "nbest/1/words") == paths(written / "ali", written / "words")
    # per-stage logs from run.pl, the model exported packed
    assert "# Accounting" in (exp / "log/train_admm-pm1.log").read_text()
    assert (exp / "admm-pm1/lm.admmq").exists() and (exp / "admm-pm1/weights.json").exists()
    assert "reference: --stm" in r.stdout and "--glm" in r.stdout and "--acronym-map" in r.stdout
    scorer = make_scorer(s5c / "data/eval2000/glm", "kaldi-swbd", s5c / "data/local/dict_nosp/acronyms.map",
                         stm=True)
    for run in ("4gram", "admm-pm1"):
        texts = [exp / f"rescore_{run}" / str(j) / "text" for j in (1, 2)]
        ours = {**read_text(texts[0]), **read_text(texts[1])}
        # stage 6: lattices rebuilt from lmwt.new; their best path at LMWT 10 is admmq's choice at --lm-scale 10
        kaldi = read_text(Path(f"{s5c / DECODE}.admmq_{run}") / "scoring/10.txt")
        assert kaldi == ours, run
        new = dict((e.key, e.value) for j in (1, 2)
                   for e in read_archive(exp / f"rescore_{run}" / str(j) / "lmwt.new", SCALAR))
        assert len(new) == 600
        # stage 7: the table's numbers are admmq wer of the merged jobs, counted as hubscr.pl (stm + glm)
        w = score_files(None, texts, scorer=scorer, stm=s5c / "data/eval2000/stm").to_dict()
        assert set(w) == {"swbd", "callhm", "total"}
        line = next(ln for ln in (exp / "RESULTS.md").read_text().splitlines() if ln.startswith(f"| {run} |"))
        assert line == (f"| {run} | {w['swbd']['wer']:.2f} | {w['callhm']['wer']:.2f} | "
                        f"{w['total']['wer']:.2f} |")
    # a rerun skips every finished stage (.done markers) and changes nothing
    before = (exp / "admm-pm1/best.pt").stat().st_mtime_ns
    r = run_recipe(s5c, env, "--stop-stage", "6")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (exp / "admm-pm1/best.pt").stat().st_mtime_ns == before
    assert "train_admm-pm1" not in r.stdout
