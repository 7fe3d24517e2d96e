"""recipes/common/run.pl and recipes/ptb/run.sh end to end on a slice of PTB and of the ptb-tts n-best lists."""

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN_PL = ROOT / "recipes" / "common" / "run.pl"
needs_perl = pytest.mark.skipif(shutil.which("perl") is None, reason="perl is not installed")


@needs_perl
def test_run_pl_job_array_logs_each_job_and_substitutes_job(tmp_path):
    res = subprocess.run([str(RUN_PL), "JOB=1:3", str(tmp_path / "log" / "a.JOB.log"), "echo", "job", "JOB",
                          "&&", "echo", "two words", "|", "tr", "a-z", "A-Z"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    for j in (1, 2, 3):
        lines = (tmp_path / "log" / f"a.{j}.log").read_text().splitlines()
        assert lines[0].startswith(f"# echo job {j} && echo 'two words' | tr")
        assert f"job {j}" in lines and "TWO WORDS" in lines
        assert lines[-2].startswith("# Accounting: time=") and lines[-1].startswith("# Ended (code 0)")


@needs_perl
def test_run_pl_failure_is_a_nonzero_exit_naming_the_log(tmp_path):
    res = subprocess.run([str(RUN_PL), "JOB=1:2", str(tmp_path / "f.JOB.log"), "test", "JOB", "=", "1"],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.strip() == f"run.pl: 1 / 2 failed, log is in {tmp_path}/f.2.log (exit code 1)"
    assert "# Ended (code 1)" in (tmp_path / "f.2.log").read_text()
    assert "# Ended (code 0)" in (tmp_path / "f.1.log").read_text()
    res = subprocess.run([str(RUN_PL), "JOB=1:2", str(tmp_path / "nojob.log"), "true"], capture_output=True, text=True)
    assert res.returncode != 0 and "does not contain JOB" in res.stderr


def _slice_text(src_gz, dst, n):
    with gzip.open(src_gz, "rt") as fh:
        lines = [next(fh) for _ in range(n)]
    dst.write_text("".join(lines))


def _slice_nbest(src, dst, n_utts):
    """The first n_utts utterances of a ptb-tts n-best directory (every file, same key order)."""
    dst.mkdir(parents=True)
    with gzip.open(src / "text.gz", "rt") as fh:
        utts = [next(fh).split()[0] for _ in range(n_utts)]
    keep = set(utts)
    for f in src.glob("*.gz"):
        with gzip.open(f, "rt") as fh:
            lines = fh.readlines()
        if f.name != "words.txt.gz":
            lines = [ln for ln in lines if ln.split()[0].rsplit("-", 1)[0] in keep or ln.split()[0] in keep]
        (dst / f.name[:-3]).write_text("".join(lines))


def _edits(ref, hyp):
    """Word-level Levenshtein distance (substitutions, insertions, deletions all cost 1), by dynamic programming."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def _kaldi_text(path):
    return {ln.split()[0]: ln.split()[1:] for ln in Path(path).read_text().splitlines() if ln.strip()}


def _results_row(results, label, section):
    """The cells of the row ``label`` in RESULTS.md's section starting with ``## {section}``."""
    text = results.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def check_wer_and_perplexity_values(tmp_path, exp, results):
    """RESULTS.md's WER and perplexity figures against an independent recomputation: word edit distances of
    each rescoring output, the first-pass (rank 1) and oracle (best in list) hypotheses against the references,
    and `admmq eval` of the trained / exported models on the test text."""
    from click.testing import CliRunner

    from rescorer.cli.group import cli

    refs = _kaldi_text(tmp_path / "nbest" / "test" / "text")
    words = sum(len(r) for r in refs.values())
    hyps = _kaldi_text(tmp_path / "nbest" / "test" / "words_text")
    per_utt = {u: [_edits(r, h) for k, h in hyps.items() if k.rsplit("-", 1)[0] == u] for u, r in refs.items()}
    first = sum(_edits(r, hyps[f"{u}-1"]) for u, r in refs.items())
    oracle = sum(min(e) for e in per_utt.values())
    assert oracle < first  # the slice leaves room for rescoring
    for label, errors in (("first pass (decoder output)", first), ("oracle (best in list)", oracle)):
        assert float(_results_row(results, label, "WER")[2]) == pytest.approx(100 * errors / words, abs=0.006)
    for name, label, col in (("4gram", "4-gram alone", 2), ("std", "STD", 2), ("std+4gram", "STD", 4),
                             ("admm_layer_pm1", "ADMM {±1} layer", 2), ("admm_layer_pm1+4gram", "ADMM {±1} layer", 4)):
        out = _kaldi_text(exp / "rescore" / name / "text")
        assert set(out) == set(refs), name
        assert all(any(out[u] == h for k, h in hyps.items() if k.rsplit("-", 1)[0] == u) for u in refs), name
        errors = sum(_edits(refs[u], out[u]) for u in refs)
        assert oracle <= errors, name
        assert float(_results_row(results, label, "WER")[col]) == pytest.approx(100 * errors / words, abs=0.006)
        total = next(ln for ln in (exp / "rescore" / name / "wer.txt").read_text().split("# first_pass")[0]
                     .splitlines() if ln.startswith("total"))
        assert f"[ {errors} / {words}," in total, (name, total)
    for lm, label in ((exp / "train" / "std", "STD"), (exp / "export" / "admm_layer_pm1.admmq", "ADMM {±1} layer")):
        r = CliRunner().invoke(cli, ["eval", "--lm", str(lm), "--text", str(tmp_path / "ptb" / "ptb.test.txt"),
                                     "--json"])
        assert r.exit_code == 0, r.output
        assert float(_results_row(results, label, "Perplexity")[5]) == pytest.approx(json.loads(r.output)["ppl"],
                                                                            abs=0.006), label


@needs_perl
@pytest.mark.slow
def test_ptb_recipe_end_to_end_on_a_slice(tmp_path):
    ptb = tmp_path / "ptb"
    ptb.mkdir()
    for s, n in (("train", 400), ("valid", 60), ("test", 60)):
        _slice_text(ROOT / "data" / "ptb" / f"ptb.{s}.txt.gz", ptb / f"ptb.{s}.txt", n)
    nbest = tmp_path / "nbest"
    for s in ("dev", "test"):
        _slice_nbest(ROOT / "data" / "ptb-tts" / s, nbest / s, 4)
    # a real ARPA from the slice via the recipe's own estimator when a tool is there, else a fixture ARPA
    exp = tmp_path / "exp"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", OMP_NUM_THREADS="1")
    cmd = ["bash", str(ROOT / "recipes" / "ptb" / "run.sh"), "--ptb-dir", str(ptb), "--nbest-dir", str(nbest),
           "--exp", str(exp), "--data", str(tmp_path / "data"), "--rows", "std admm_layer_pm1", "--epochs", "1",
           "--max-sentences", "0", "--nj", "2", "--device", "cpu"]
    have_tool = shutil.which("tlm") or shutil.which("lmplz") or Path("/usr/lib/irstlm/bin/tlm").exists() or \
        (Path.home() / ".cache" / "admmq" / "kenlm" / "bin" / "lmplz").exists()
    if not have_tool:
        from ngram_fixtures import backoff_arpa, write
        sents = [ln.split() for ln in (ptb / "ptb.train.txt").read_text().splitlines()]
        arpa = write(tmp_path / "fixture.arpa", backoff_arpa(sents, 3))
        cmd += ["--ngram", str(arpa)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    results = (exp / "RESULTS.md").read_text()
    assert "| STD |" in results and "| ADMM {±1} layer |" in results
    admm = next(ln for ln in results.splitlines() if ln.startswith("| ADMM {±1} layer |") and "MiB" not in ln)
    cells = [c.strip() for c in admm.strip("|").split("|")]
    assert cells[1] == "1 (1)" and float(cells[5]) > 1 and cells[4].endswith("×")  # trained, sized, test PPL
    assert (exp / "export" / "admm_layer_pm1.admmq").is_file()
    for name in ("4gram", "std", "std+4gram", "admm_layer_pm1", "admm_layer_pm1+4gram"):
        assert (exp / "rescore" / name / ".done").is_file(), name
        assert (exp / "rescore" / name / "wer.txt").is_file()
    assert "| first pass (decoder output) |" in results
    check_wer_and_perplexity_values(tmp_path, exp, results)
    assert (exp / "log" / "train_std.log").read_text().rstrip().splitlines()[-1].startswith("# Ended (code 0)")
    # a rerun skips every finished stage: no training, export or rescoring log is rewritten (stage 6 redraws)
    stamp = {p: p.stat().st_mtime_ns for p in (exp / "log").glob("*.log") if p.name != "plots.log"}
    assert len(stamp) >= 6
    res = subprocess.run(cmd + ["--stage", "3"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp


@needs_perl
def test_cpu_full_mode_starts_quantized_rows_from_the_given_std_model(tmp_path):
    """--cpu-full --std-model: the given fp checkpoint is the std row (copied, not retrained); every
    quantized row, Bin+Lin included, starts from it: ADMM with its schedule for a trained model
    (trained-adam), Bin+Lin at the rate the STD's best epoch was trained with; --row-epochs sets one row's
    epochs."""
    from click.testing import CliRunner

    from rescorer.cli.group import cli
    from rescorer.pack.checkpoint import read_checkpoint
    from rescorer.quant.method import ADMM_SCHEDULES

    data = tmp_path / "data"
    data.mkdir()
    for s, n in (("train", 120), ("valid", 30), ("test", 30)):
        _slice_text(ROOT / "data" / "ptb" / f"ptb.{s}.txt.gz", data / f"ptb.{s}.txt", n)
    std = tmp_path / "given_std"
    r = CliRunner().invoke(cli, ["train", "--train", str(data / "ptb.train.txt"), "--valid", str(data / "ptb.valid.txt"),
                                 "-o", str(std), "--epochs", "1", "--lr", "0.5", "--embed-dim", "16", "--hidden-dim", "16",
                                 "--quiet"])
    assert r.exit_code == 0, r.output
    exp = tmp_path / "exp"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", OMP_NUM_THREADS="1")
    res = subprocess.run(["bash", str(ROOT / "recipes" / "ptb" / "run.sh"), "--cpu-full", "--std-model",
                          str(std / "best.pt"), "--rows", "std admm_node_pm124 binlin", "--epochs", "1",
                          "--row-epochs", "admm_node_pm124=2", "--exp", str(exp), "--data", str(data),
                          "--stage", "3", "--stop-stage", "3", "--device", "cpu"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (exp / "train" / "std" / "best.pt").read_bytes() == (std / "best.pt").read_bytes()
    assert not (exp / "log" / "train_std.log").exists()  # not retrained
    admm = read_checkpoint(exp / "train" / "admm_node_pm124" / "last.pt")
    assert admm["train_config"]["init_from"] == str(exp / "train" / "std" / "best.pt")
    assert len(admm["log"]) == 2
    # a trained model goes into every table with trained-adam (its Adam rate, not the STD's)
    settings = {**admm["method_config"], **{k: admm["train_config"][k] for k in ("optimizer", "lr", "min_improvement")}}
    assert {k: settings[k] for k in ADMM_SCHEDULES["trained-adam"]} == ADMM_SCHEDULES["trained-adam"]
    binlin = read_checkpoint(exp / "train" / "binlin" / "last.pt")
    assert binlin["train_config"]["init_from"] == str(exp / "train" / "std" / "best.pt")
    assert (binlin["train_config"]["optimizer"], binlin["train_config"]["lr"]) == ("sgd", 0.5)  # the STD's rate
    assert len(binlin["log"]) == 1


@needs_perl
def test_ptb_recipe_rejects_an_unknown_row(tmp_path):
    res = subprocess.run(["bash", str(ROOT / "recipes" / "ptb" / "run.sh"), "--rows", "std nonsense",
                          "--exp", str(tmp_path / "exp"), "--stage", "3"], capture_output=True, text=True)
    assert res.returncode != 0 and "unknown row 'nonsense'" in res.stderr


def _have_synth_tools() -> bool:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return shutil.which("flite") is not None


@needs_perl
@pytest.mark.skipif(not _have_synth_tools(), reason="needs flite (apt-get install flite) and pocketsphinx")
def test_ptb_recipe_makes_its_own_nbest_lists(tmp_path):
    """--make-nbest: stage 1 regenerates ptb-tts with flite + pocketsphinx (first sentence of each set here)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", OMP_NUM_THREADS="1")
    data, exp = tmp_path / "data", tmp_path / "exp"
    res = subprocess.run(["bash", str(ROOT / "recipes" / "ptb" / "run.sh"), "--make-nbest", "--synth-voices", "slt",
                          "--synth-limit", "1", "--stop-stage", "1", "--data", str(data), "--exp", str(exp)],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "1 utterances (1 voices x 1 sentences), 100 hypotheses" in res.stdout
    for s, utt in (("dev", "slt_d0001"), ("test", "slt_t0001")):
        made = (data / "nbest" / s / "words_text").read_text().splitlines()
        with gzip.open(ROOT / "data" / "ptb-tts" / s / "words_text.gz", "rt") as fh:
            shipped = [ln.rstrip("\n") for ln in fh if ln.startswith(utt + "-")]
        assert made == shipped, s
        assert (data / "nbest" / s / "utt2subset").read_text() == f"{utt} slt\n"
        assert "# Ended (code 0)" in (exp / "log" / f"make_nbest_{s}.log").read_text()
