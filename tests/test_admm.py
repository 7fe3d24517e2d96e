import json
import math

import pytest
import torch
from click.testing import CliRunner

from rescorer.lm.batching import make_batch
from rescorer.pack.lm_file import load_lm
from rescorer.pack.checkpoint import read_checkpoint
from rescorer.cli.group import cli
from rescorer.lm.corpus import load_corpus
from rescorer.errors import AdmmqError
from rescorer.report.evaluate import evaluate_text
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.quant import MethodConfig, build_method
from rescorer.quant.qsets import parse_qset
from rescorer.train.loop import train

from quant_helpers import (FP_PPL_2_EPOCHS, SMALL, admm_run_killed_and_resumed, biases_changed, cfg_for, quantized_bar,
                           slice_vocab)


def tiny_setup(ptb_slice, **method_kw):
    """A small model over the PTB slice's vocabulary, its ADMM method and one real batch."""
    vocab = slice_vocab(ptb_slice)
    corpus = load_corpus(vocab, ptb_slice / "train.txt")
    model = LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=8, hidden_dim=8))
    method = build_method(MethodConfig(method="admm", **method_kw))
    method.setup(model)
    batch = make_batch(corpus, list(range(6)), vocab.bos_id, vocab.eos_id)
    return model, method, batch


def best_pm12_row(x):
    """min over α > 0 and codes in {±1, ±2} of ‖x − α·codes‖² for one row, by trying every split:
    the k smallest |x| at ±α, the rest at ±2α, α = (Σ₁|x| + 2Σ₂|x|) / (k + 4(C − k)).  Returns (error, α)."""
    a = torch.sort(x.abs()).values
    best = (math.inf, 0.0)
    for k in range(len(a) + 1):
        s1, s2 = a[:k], a[k:]
        alpha = float((s1.sum() + 2 * s2.sum()) / (len(s1) + 4 * len(s2)))
        err = float(((s1 - alpha) ** 2).sum() + ((s2 - 2 * alpha) ** 2).sum())
        best = min(best, (err, alpha))
    return best


def test_lambda_update_is_eq21_and_q_is_the_projection_of_theta_plus_lambda(ptb_slice):
    model, method, _ = tiny_setup(ptb_slice, qset="pm12", tying="node")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n in method.names:
            params[n].add_(torch.randn_like(params[n]) * 0.05)
    for n in method.names:
        method.lam[n] = torch.randn_like(method.lam[n]) * 0.01
    lam_before = {n: method.lam[n].clone() for n in method.names}
    figures = method.end_epoch(model, 0)
    res2 = 0.0
    for n in method.names:
        theta = params[n].detach()
        q = method.quantized_matrices(model)[n].dequantize()
        x = (theta + lam_before[n]).double()
        for row_x, row_q in zip(x, q.double()):  # eqs. 18-20: the best α·{±1,±2} row, by brute force
            best_err, best_alpha = best_pm12_row(row_x)
            assert float(((row_x - row_q) ** 2).sum()) == pytest.approx(best_err, rel=1e-6, abs=1e-12), n
            mags = row_q.abs()
            assert bool((torch.isclose(mags, torch.tensor(best_alpha, dtype=mags.dtype), rtol=1e-5)
                         | torch.isclose(mags, torch.tensor(2 * best_alpha, dtype=mags.dtype), rtol=1e-5)).all()), n
        assert torch.allclose(method.lam[n], lam_before[n] + theta - q, atol=1e-7)  # eq. 21
        assert torch.allclose(method.target[n], q - method.lam[n], atol=1e-7)
        res2 += float(((theta - q) ** 2).sum())
    assert figures["admm_primal"] == pytest.approx(math.sqrt(res2), rel=1e-5)
    assert figures["admm_codes_changed"] > 0 and figures["admm_iter"] == 1


def manual_grad(model, batch, method, gamma):
    """∇L = ∇F_ce (per-token mean) + γ(Θ − Q + λ) by autograd, for checking the analytic penalty."""
    model.zero_grad(set_to_none=True)
    loss, _ = model.loss(batch.inputs, batch.targets)
    params = dict(model.named_parameters())
    penalty = sum(((params[n] - method.target[n]) ** 2).sum() for n in method.names)
    (loss / batch.ntokens + gamma / 2 * penalty).backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("mode", ["none", "full", "past"])
def test_full_precision_step_follows_eq16_and_eq17(ptb_slice, mode):
    gamma, lr, eta1 = 0.5, 0.3, 0.7  # a large γ so that the penalty term matters
    model, method, batch = tiny_setup(ptb_slice, gamma=gamma, extragradient=mode, eta1=eta1)
    ref = LSTMLM(model.cfg)
    ref.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    method.train_step(model, opt, batch, None, clip=0.0)
    if mode == "past":  # the first step has no previous gradient: a plain step
        g_prev = manual_grad(ref, batch, method, gamma)
        with torch.no_grad():
            for n, p in ref.named_parameters():
                p.sub_(lr * g_prev[n])
        method.train_step(model, opt, batch, None, clip=0.0)
    theta = {n: p.detach().clone() for n, p in ref.named_parameters()}
    if mode == "none":
        g = manual_grad(ref, batch, method, gamma)
    else:
        g1 = g_prev if mode == "past" else manual_grad(ref, batch, method, gamma)
        with torch.no_grad():
            for n, p in ref.named_parameters():
                p.sub_(eta1 * lr * g1[n])  # Θ̄ = Θ − η₁ g
        g = manual_grad(ref, batch, method, gamma)  # ∇L(Θ̄)
    for n, p in model.named_parameters():
        expect = theta[n] - lr * g[n]  # Θ ← Θ − η₂ ∇L(Θ̄)
        assert torch.allclose(p.detach(), expect, atol=1e-6), (mode, n)


def test_clip_applies_to_the_cross_entropy_gradient_before_the_penalty(ptb_slice):
    gamma, lr = 0.5, 0.3
    model, method, batch = tiny_setup(ptb_slice, gamma=gamma, extragradient="none")
    ref = LSTMLM(model.cfg)
    ref.load_state_dict(model.state_dict())
    g_ce = manual_grad(ref, batch, method, 0.0)  # ∇F_ce alone, by autograd
    norm = math.sqrt(sum(float((g ** 2).sum()) for g in g_ce.values()))
    clip = 0.3 * norm  # the trainer's default is 5; a bound below this batch's norm makes the clip act
    params = {n: p.detach().clone() for n, p in ref.named_parameters()}
    expect = {}
    for n, g in g_ce.items():  # Θ − lr (clip/‖∇F‖ ∇F + γ(Θ − Q + λ)) by hand
        g = g * (clip / norm)
        if n in method.names:
            g = g + gamma * (params[n] - method.target[n])
        expect[n] = params[n] - lr * g
    method.train_step(model, torch.optim.SGD(model.parameters(), lr=lr), batch, None, clip=clip)
    for n, p in model.named_parameters():
        assert torch.allclose(p.detach(), expect[n], atol=1e-6), n
    # clipping the sum (penalty included) instead would land elsewhere: the check can tell the two apart
    full = {n: g_ce[n] + (gamma * (params[n] - method.target[n]) if n in method.names else 0) for n in g_ce}
    full_norm = math.sqrt(sum(float((g ** 2).sum()) for g in full.values()))
    wrong = params["decoder.weight"] - lr * full["decoder.weight"] * min(1.0, clip / full_norm)
    assert not torch.allclose(wrong, expect["decoder.weight"], atol=1e-6)


def test_penalty_extragradient_is_a_rescaled_step(ptb_slice):
    gamma, lr, eta1 = 0.5, 0.3, 0.7
    model, method, batch = tiny_setup(ptb_slice, gamma=gamma, extragradient="penalty", eta1=eta1)
    ref = LSTMLM(model.cfg)
    ref.load_state_dict(model.state_dict())
    g = manual_grad(ref, batch, method, gamma)
    method.train_step(model, torch.optim.SGD(model.parameters(), lr=lr), batch, None, clip=0.0)
    for n, p in model.named_parameters():
        scale = (1 - eta1 * lr * gamma) if n in method.names else 1.0
        assert torch.allclose(p.detach(), ref.state_dict()[n] - lr * scale * g[n], atol=1e-6), n


@pytest.mark.parametrize("qset,tying", [("pm1", "layer"), ("pm124", "node")])
def test_admm_run_deploys_a_quantized_model_within_1_5x_of_full_precision(ptb_slice, tmp_path, qset, tying):
    mcfg = MethodConfig(method="admm", qset=qset, tying=tying, gamma=1e-2)
    res = train(tmp_path / "run", cfg_for(ptb_slice, epochs=2), SMALL, mcfg, quiet=True)
    q_ppl = [r["valid_ppl_q"] for r in res.log]
    assert all(math.isfinite(p) for p in q_ppl)
    assert res.best_valid_ppl == min(q_ppl) < quantized_bar(ptb_slice, FP_PPL_2_EPOCHS)  # measured 183
    rows = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert {"admm_primal", "admm_codes_changed", "admm_dual"} <= set(rows[0])
    lm = load_lm(tmp_path / "run")
    levels = parse_qset(qset).tensor()
    names = lm.model.weight_matrix_names()
    assert set(lm.quantized) == set(names) and len(names) == 4
    weights = dict(lm.model.named_parameters())
    for n, qm in lm.quantized.items():  # every weight matrix holds only α·{set} values
        w = weights[n].detach()
        assert qm.alpha.shape[0] == (1 if tying == "layer" else w.shape[0])
        table = qm.alpha[:, :1] * levels  # (G, L)
        rows_table = table.expand(w.shape[0], -1) if table.shape[0] == 1 else table
        dist = (w.unsqueeze(2) - rows_table.unsqueeze(1)).abs().min(2).values
        assert float(dist.max()) < 1e-6, n
    assert biases_changed(lm.model)  # full-precision biases are trained too


def same_state(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            same_state(a[k], b[k])
    elif isinstance(a, torch.Tensor):
        assert torch.allclose(a.double(), b.double(), atol=1e-6)
    else:
        assert a == b


@pytest.mark.parametrize("mode", ["past", "full"])
def test_admm_resume_mid_epoch_equals_uninterrupted(ptb_slice, tmp_path, monkeypatch, mode):
    mcfg = MethodConfig(method="admm", qset="pm124", tying="node", gamma=1e-2, extragradient=mode)
    cfg = cfg_for(ptb_slice, epochs=2, save_every=15)
    # killed in epoch 2 (40 batches per epoch), after the save at step 15
    full, cut, step = admm_run_killed_and_resumed(tmp_path, cfg, SMALL, mcfg, monkeypatch, kill_at=40 + 17)
    assert step == 15
    same_state(full["model"], cut["model"])
    same_state(full["method_state"], cut["method_state"])
    same_state(full["quantized"], cut["quantized"])
    assert [r["valid_ppl_q"] for r in full["log"]] == pytest.approx([r["valid_ppl_q"] for r in cut["log"]])


def test_notie_is_full_precision_with_a_proximal_term(ptb_slice, tmp_path):
    mcfg = MethodConfig(method="admm", tying="none", gamma=1e-2)
    res = train(tmp_path / "nt", cfg_for(ptb_slice, epochs=1), SMALL, mcfg, quiet=True)
    assert res.log[0]["valid_ppl_q"] is None  # no quantized model to evaluate
    lm = load_lm(tmp_path / "nt")
    assert lm.quantized == {} and lm.method == "admm"


def test_keep_fp_leaves_a_matrix_in_full_precision(ptb_slice):
    model, method, _ = tiny_setup(ptb_slice, keep_fp=("embedding.weight",))
    assert "embedding.weight" not in method.quantized_matrices(model)
    assert "decoder.weight" in method.quantized_matrices(model)
    with pytest.raises(AdmmqError, match="not a weight matrix"):
        tiny_setup(ptb_slice, keep_fp=("embedding.wieght",))


def test_cli_admm_train_then_eval_reports_the_quantized_perplexity(ptb_slice, tmp_path):
    out = tmp_path / "admm"
    r = CliRunner().invoke(cli, ["train", "--train", str(ptb_slice / "train.txt"), "--valid",
                                 str(ptb_slice / "valid.txt"), "-o", str(out), "--method", "admm", "--qset",
                                 "pm124", "--tying", "node", "--epochs", "2", "--gamma", "0.01",
                                 "--embed-dim", "16", "--hidden-dim", "16", "--device", "cpu", "--quiet"])
    assert r.exit_code == 0, r.output
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and read_checkpoint(out / "last.pt")["train_config"]["schedule"] == "plateau"
    best = min(log, key=lambda row: row["valid_ppl_q"])
    r = CliRunner().invoke(cli, ["eval", "--lm", str(out), "--text", str(ptb_slice / "valid.txt"), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["method"] == "admm"
    assert d["ppl"] == pytest.approx(best["valid_ppl_q"], rel=1e-4)
    # not the full-precision Θ: the gap measured 1.14e-3 relative, float noise in a perplexity is ~1e-6
    assert abs(d["ppl"] - best["valid_ppl"]) > 1e-4 * d["ppl"], (d["ppl"], best)
    lm = load_lm(out)
    assert evaluate_text(lm, str(ptb_slice / "valid.txt"), "plain", 4096, None).ppl == pytest.approx(d["ppl"])
    r = CliRunner().invoke(cli, ["train", "--train", str(ptb_slice / "train.txt"), "--valid",
                                 str(ptb_slice / "valid.txt"), "-o", str(tmp_path / "bad"), "--method", "admm",
                                 "--qset", "pm3"])
    assert r.exit_code == 1 and "unknown quantization set 'pm3'" in r.output


def test_too_large_gamma_is_reported_as_divergence_not_saved(ptb_slice, tmp_path):
    mcfg = MethodConfig(method="admm", gamma=1e4)  # γ·lr = 1e4: the penalty step overshoots and explodes
    with pytest.raises(AdmmqError, match=r"diverged.*--gamma"):
        train(tmp_path / "g", cfg_for(ptb_slice, epochs=1), SMALL, mcfg, quiet=True)
    assert not (tmp_path / "g" / "best.pt").exists()  # no garbage model
