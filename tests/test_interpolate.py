"""EM interpolation weights, and the LSTM + 4-gram mixture on a real PTB slice (library and CLI)."""

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from rescorer.cli import cli
from rescorer.errors import AdmmqError
from rescorer.interpolate import em_weights, interpolate
from rescorer.model import ModelConfig
from rescorer.scorers import load_components, load_scorer
from rescorer.mixture import MixtureScorer
from rescorer.train import TrainConfig, train

from conftest import ptb_lines
from ngram_fixtures import estimation_tools

ROOT = Path(__file__).resolve().parents[1]


def mixture_data(rng, weights, vocab=40, tokens=20000):
    """Tokens drawn from a true mixture of K random categorical distributions: (K, T) log p_k(x_t)."""
    dists = rng.dirichlet(np.full(vocab, 0.3), size=len(weights))
    comp = rng.choice(len(weights), size=tokens, p=weights)
    x = np.array([rng.choice(vocab, p=dists[k]) for k in comp])
    return np.log(dists[:, x])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 4), t=st.integers(5, 300))
def test_em_never_lowers_the_log_likelihood(seed, k, t):
    rng = np.random.default_rng(seed)
    logp = np.log(rng.dirichlet(np.ones(8), size=t).T[:k])  # arbitrary positive probabilities
    init = rng.dirichlet(np.ones(k))
    res = em_weights(logp, init=init, tolerance=1e-12, max_iterations=60)
    ll = [s.loglik for s in res.steps]
    assert all(b >= a - 1e-12 for a, b in zip(ll, ll[1:])), ll
    assert all(abs(sum(s.weights) - 1) < 1e-9 and min(s.weights) >= 0 for s in res.steps)
    assert res.steps[0].weights == pytest.approx(list(init))


def test_em_finds_the_same_weights_from_different_starts():
    rng = np.random.default_rng(7)
    true = np.array([0.5, 0.3, 0.2])
    logp = mixture_data(rng, true)
    found = [em_weights(logp, init=start, tolerance=1e-13, max_iterations=5000).weights
             for start in ([1 / 3] * 3, [0.9, 0.05, 0.05], [0.01, 0.01, 0.98])]
    for w in found[1:]:
        np.testing.assert_allclose(w, found[0], atol=1e-4)
    np.testing.assert_allclose(found[0], true, atol=0.03)  # and they are the weights that made the data


def test_em_input_checks():
    with pytest.raises(AdmmqError, match="non-finite"):
        em_weights(np.array([[0.0, -np.inf], [-1.0, -1.0]]))
    with pytest.raises(AdmmqError, match="tokens > 0"):
        em_weights(np.zeros((2, 0)))


# ------------------------------------------------------------ real PTB slice
TOOLS = estimation_tools()
needs_tool = pytest.mark.skipif(not TOOLS, reason="no n-gram estimation tool (lmplz in PATH or "
                                "~/.cache/admmq/kenlm, or Debian irstlm): run bin/setup-env as root")


@pytest.fixture(scope="module")
def ptb_models(tmp_path_factory):
    """A small LSTM (2,000-word vocabulary) and a 4-gram (every training word), both trained on the same
    1,000 PTB sentences; 200 validation sentences."""
    d = tmp_path_factory.mktemp("ptbmix")
    (d / "train.txt").write_text("".join(ptb_lines("train", 1000)))
    (d / "valid.txt").write_text("".join(ptb_lines("valid", 200)))
    cfg = TrainConfig(train=str(d / "train.txt"), valid=str(d / "valid.txt"), epochs=2, batch_size=10, lr=1.0,
                      device="cpu", seed=1, schedule="constant", vocab_size=2000)
    train(d / "lstm", cfg, ModelConfig(vocab_size=0, embed_dim=24, hidden_dim=24), quiet=True)
    subprocess.run(["bash", str(ROOT / "recipes/common/make_4gram.sh"), "--tool", TOOLS[0],
                    str(d / "train.txt"), str(d / "4g.arpa.gz")], check=True, capture_output=True)
    return d


@needs_tool
def test_ptb_mixture_beats_each_component(ptb_models):
    d = ptb_models
    comps = load_components([d / "lstm"], [d / "4g.arpa.gz"])
    scorer = MixtureScorer([c.scorer for c in comps], [0.5, 0.5], kinds=[c.kind for c in comps])
    res = interpolate(scorer, d / "valid.txt")
    assert res.converged and 0.05 < res.weights[0] < 0.95
    assert res.partial > 0  # words the 4-gram knows and the LSTM does not: scored by the 4-gram alone
    assert res.ppl < min(res.component_ppl), (res.ppl, res.component_ppl)
    ppls = [s.ppl for s in res.steps]
    assert ppls[-1] <= ppls[0] + 1e-9 and len(ppls) >= 2
    assert res.tokens == sum(len(line.split()) + 1 for line in ptb_lines("valid", 200))


@needs_tool
def test_cli_interpolate_then_eval_with_the_weights(ptb_models, tmp_path):
    d = ptb_models
    w = tmp_path / "w.json"
    runner = CliRunner()
    r = runner.invoke(cli, ["interpolate", "--lm", str(d / "lstm"), "--ngram", str(d / "4g.arpa.gz"),
                            "--valid", str(d / "valid.txt"), "--json", "-o", str(w), "--quiet"],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert set(out) >= {"weights", "ppl", "component_ppl", "iterations"}
    assert out["ppl"] < min(out["component_ppl"]) and abs(sum(out["weights"]) - 1) < 1e-9
    saved = json.loads(w.read_text())
    assert [c["weight"] for c in saved["components"]] == out["weights"]
    # eval with the weights file alone (its own paths) reproduces the mixture's validation perplexity
    r = runner.invoke(cli, ["eval", "--weights", str(w), "--text", str(d / "valid.txt"), "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["ppl"] == pytest.approx(out["ppl"], rel=1e-9)
    # the n-gram alone: eval --ngram gives its component perplexity, for both backends
    for backend in ("builtin", "auto"):
        r = runner.invoke(cli, ["eval", "--ngram", str(d / "4g.arpa.gz"), "--text", str(d / "valid.txt"), "--json",
                                "--ngram-backend", backend, "--quiet"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["ppl"] == pytest.approx(out["component_ppl"][1], rel=1e-5)
    # text output names every LM and the mixture
    r = runner.invoke(cli, ["interpolate", "--lm", str(d / "lstm"), "--ngram", str(d / "4g.arpa.gz"),
                            "--valid", str(d / "valid.txt"), "--quiet"])
    assert r.exit_code == 0 and "mixture" in r.output and "4g.arpa.gz" in r.output and "converged" in r.output
    # a weights file for other kinds of LMs is refused in one line
    r = runner.invoke(cli, ["eval", "--ngram", str(d / "4g.arpa.gz"), "--weights", str(w),
                            "--text", str(d / "valid.txt")])
    assert r.exit_code == 1 and r.output.startswith("admmq: error:") and "weights are for (lstm, ngram)" in r.output


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\ta\n-x\tb\n\n\\end\\\n")
    text = tmp_path / "t.txt"
    text.write_text("a b\n")
    r = CliRunner().invoke(cli, ["eval", "--ngram", str(bad), "--ngram-backend", "builtin", "--text", str(text)])
    assert r.exit_code == 1
    assert r.output.strip() == f"admmq: error: {bad}:6: log10 probability '-x' is not a number"
    r = CliRunner().invoke(cli, ["interpolate", "--valid", str(text)])
    assert r.exit_code == 1 and "at least one --lm or --ngram" in r.output
    r = CliRunner().invoke(cli, ["eval", "--text", str(text)])
    assert r.exit_code == 1 and "give --lm, --ngram or --weights" in r.output


@pytest.mark.skipif("irstlm" not in TOOLS, reason="irstlm not installed (bin/setup-env as root installs it)")
def test_make_4gram_auto_without_lmplz_says_irstlm_is_weaker(tmp_path):
    """--tool auto on a machine without lmplz (empty cache, PATH without it) falls back to irstlm with
    one line saying the 4-gram is weaker and how to get lmplz; where lmplz is found it says nothing."""
    text = tmp_path / "t.txt"
    text.write_text("".join(ptb_lines("train", 200)))
    path = ":".join(d for d in os.environ["PATH"].split(":") if not (Path(d) / "lmplz").exists())
    env = dict(os.environ, PATH=path)
    res = subprocess.run(["bash", str(ROOT / "recipes/common/make_4gram.sh"), "--cache", str(tmp_path / "none"),
                          str(text), str(tmp_path / "lm.arpa")], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    notes = [ln for ln in res.stderr.splitlines() if "weaker" in ln]
    assert len(notes) == 1 and "--install-lmplz" in notes[0] and "142.7" in notes[0], res.stderr
    assert res.stderr.splitlines()[-1].startswith("make_4gram.sh: irstlm, order 4 -> ")
    assert (tmp_path / "lm.arpa").read_text().rstrip().endswith("\\end\\")
    assert not (tmp_path / "none").exists()  # nothing was built or downloaded
    if "lmplz" in TOOLS:  # where lmplz is found, auto takes it and says nothing about irstlm
        res = subprocess.run(["bash", str(ROOT / "recipes/common/make_4gram.sh"), str(text),
                              str(tmp_path / "lm2.arpa")], capture_output=True, text=True)
        assert res.returncode == 0 and "weaker" not in res.stderr, res.stderr
        assert res.stderr.splitlines()[-1].startswith("make_4gram.sh: lmplz, order 4 -> ")


@pytest.mark.parametrize("tool", [pytest.param(t, marks=pytest.mark.skipif(
    t not in TOOLS, reason=f"{t} not available (bin/setup-env as root installs irstlm and builds lmplz)"))
    for t in ("lmplz", "irstlm")])
def test_make_4gram_keeps_the_unk_class(tmp_path, tool):
    """PTB's literal <unk> becomes the ARPA's <unk> with its estimated probability, for either tool."""
    text = tmp_path / "t.txt"
    text.write_text("".join(ptb_lines("train", 300)))
    out = tmp_path / "lm.arpa"
    subprocess.run(["bash", str(ROOT / "recipes/common/make_4gram.sh"), "--tool", tool, str(text), str(out)],
                   check=True, capture_output=True)
    scorer = load_scorer(ngram_paths=[out], ngram_backend="builtin")
    ng = scorer.components[0]
    model = ng.arpa_model
    assert model.has_unk and "<unk-class-for-lmplz>" not in model.index
    unk_tokens = sum(line.split().count("<unk>") for line in ptb_lines("train", 300))
    # the class keeps about its training frequency (not the ~1e-5 of an unseen word); on 300 sentences
    # irstlm also gives it the discounted mass of unseen words, so allow up to several times more
    share = unk_tokens / sum(len(line.split()) + 1 for line in ptb_lines("train", 300))
    assert 0.2 * share < 10 ** float(model.logp[1][model.unk_id]) < 5 * share
    words = [w for w in model.words if w not in ("<s>", "</s>")]
    ws = ng.score([[w] for w in words] + [[]])
    first = np.array([ws.sentence(i)[0] for i in range(len(ws))])
    total = np.exp(first).sum()  # p(. | <s>) over the vocabulary and </s>
    if tool == "irstlm":  # irstlm also gives <s> itself a probability (lmplz writes log10 p(<s>) = 0, unused)
        bos = model.index["<s>"]
        total += 10 ** model.log10_probs(np.array([bos, bos]), np.array([0, 1]))[1]
    assert abs(total - 1) < 1e-4, total
    assert math.isfinite(first.sum())
