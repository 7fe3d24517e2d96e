"""Sensitivity metrics: Hutchinson traces, KL and Hessian tables on a small LM over real PTB text."""

import itertools
import math
import statistics
from dataclasses import replace

import numpy as np
import pytest
import torch

from rescorer.batching import length_sorted_batches
from rescorer.corpus import load_corpus
from rescorer.errors import AdmmqError
from rescorer.model import LSTMLM
from rescorer.quant.mixed import allocate_from_sensitivity
from rescorer.quant.sensitivity import (SensitivityConfig, SensitivityTable, hutchinson_traces, kl_sensitivity,
                                        measure_sensitivity, model_gauss_newton_traces, model_hessian_traces,
                                        quantized_variants, sample_traces)

from quant_helpers import SMALL, slice_vocab


def test_hutchinson_trace_of_a_quadratic_is_within_its_standard_error():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(12, 12, generator=gen, dtype=torch.float64)
    hess = a @ a.t() + torch.diag(torch.arange(1.0, 13.0, dtype=torch.float64))  # symmetric: H of ½xᵀHx
    b = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    hess_b = b @ b.t()
    x = torch.randn(12, requires_grad=True, dtype=torch.float64)
    y = torch.randn(5, requires_grad=True, dtype=torch.float64)

    def terms():  # the loss as two terms (batches), coupled through a cross term x₀·y₀ (off-diagonal block)
        yield 0.5 * x @ hess @ x + 3.0 * x[0] * y[0]
        yield 0.5 * y @ hess_b @ y

    est = hutchinson_traces(terms, {"x": x, "y": y}, probes=400, generator=torch.Generator().manual_seed(1))
    for name in ("x", "y"):
        assert est[name].probes == 400 and est[name].se > 0
    # the true variance of one sample: Var(vᵀHv) = 2 Σ_{i≠j} H_ij² (+ the cross term 3·x₀y₀: 9 for x and y)
    off = float((hess ** 2).sum() - (torch.diag(hess) ** 2).sum())
    true_sd = {"x": math.sqrt(2 * off + 9.0), "y": math.sqrt(2 * float((hess_b ** 2).sum() - (torch.diag(hess_b) ** 2)
                                                                       .sum()) + 9.0)}
    for name, true in (("x", float(torch.trace(hess))), ("y", float(torch.trace(hess_b)))):
        assert abs(est[name].mean - true) <= 4 * true_sd[name] / 20, (name, est[name], true)  # 4 sd of 400 probes
    assert est["x"].se == pytest.approx(math.sqrt((2 * off + 9.0) / 400), rel=0.25)


def test_hutchinson_is_exact_for_a_diagonal_hessian():
    d = torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64)
    x = torch.ones(3, requires_grad=True, dtype=torch.float64)
    est = hutchinson_traces(lambda: [0.5 * (d * x * x).sum()], {"x": x}, probes=4)
    assert est["x"].mean == pytest.approx(8.0) and est["x"].se == pytest.approx(0.0)


@pytest.fixture(scope="module")
def small_lm(ptb_slice):
    vocab = slice_vocab(ptb_slice)
    torch.manual_seed(5)
    model = LSTMLM(replace(SMALL, vocab_size=len(vocab))).eval()
    corpus = load_corpus(vocab, ptb_slice / "valid.txt", max_sentences=30)
    return model, vocab, corpus


def test_kl_is_zero_for_an_unquantized_matrix_and_grows_as_bits_drop(small_lm):
    model, vocab, corpus = small_lm
    names = model.weight_matrix_names()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    variants = quantized_variants(model, names, (1, 2, 3, 4, 8))
    params = dict(model.named_parameters())
    for n in names:  # the "unquantized" variant: the matrix itself
        variants[n][32] = params[n].detach().clone()
    kl, tokens = kl_sensitivity(model, corpus, vocab, variants)
    assert tokens == corpus.tokens  # every word and each </s>
    for n in names:
        assert abs(kl[n][32]) < 1e-9, (n, kl[n][32])
        row = [kl[n][b] for b in (1, 2, 3, 4, 8)]
        assert all(v > 0 for v in row), (n, row)
        assert row[0] > row[1] > row[3] > row[4], (n, row)  # 1 > 2 > 4 > 8 bits (3 = pm124 may tie 2)
    for n, p in model.named_parameters():  # weights restored
        assert torch.equal(p.detach(), before[n]), n


def test_sample_traces_adds_samples_until_the_standard_error_is_small():
    seq = [1.0, 3.0, 2.5, 0.5, 4.0, 1.5]  # the draws, cycled

    def drawer():
        k = iter(range(10 ** 6))
        return lambda: [seq[next(k) % len(seq)]]

    for rel, cap in ((0.12, 200), (0.05, 200), (0.001, 40)):
        want = None  # the first k >= 4 with stdev/sqrt(k) <= rel * mean, by the statistics module
        for k in range(4, cap + 1):
            xs = [seq[i % len(seq)] for i in range(k)]
            if statistics.stdev(xs) / math.sqrt(k) <= rel * statistics.fmean(xs):
                want = k
                break
        est = sample_traces(drawer(), ["w"], probes=4, max_probes=cap, rel_se=rel)["w"]
        assert est.probes == (want or cap), (rel, est, want)
        xs = [seq[i % len(seq)] for i in range(est.probes)]
        assert est.mean == pytest.approx(statistics.fmean(xs))
        assert est.se == pytest.approx(statistics.stdev(xs) / math.sqrt(est.probes))




def _tiny_lm(ptb_slice, seed=2, sentences=2):
    vocab = slice_vocab(ptb_slice)
    torch.manual_seed(seed)
    model = LSTMLM(replace(SMALL, vocab_size=len(vocab), embed_dim=3, hidden_dim=2)).eval()
    corpus = load_corpus(vocab, ptb_slice / "valid.txt", max_sentences=sentences)
    batches = list(length_sorted_batches(corpus, 4096, vocab.bos_id, vocab.eos_id))
    return model, vocab, corpus, batches


def _logit_jacobian(model, batches, name):
    """Per-token logits' Jacobian w.r.t. matrix ``name`` (forward-mode autograd through the native cell):
    (N, V, n) float64, and p: (N, V)."""
    w0 = dict(model.named_parameters())[name].detach()

    def logits(flat):
        out = []
        for b in batches:
            h = torch.func.functional_call(model, {name: flat.reshape(w0.shape)}, (b.inputs,))[0]
            out.append(model.logits(h[b.targets != -100]))
        return torch.cat(out).double()

    flat = w0.reshape(-1).clone()
    model.native_lstm = True
    try:
        jac = torch.autograd.functional.jacobian(logits, flat, strategy="forward-mode", vectorize=True)
    finally:
        model.native_lstm = False
    with torch.no_grad():
        p = torch.softmax(logits(flat), -1)
    return jac.detach().double(), p.detach()


def _exact_gauss_newton(jac, p):
    """Tr((1/N) Σ_t J_tᵀ (diag p_t − p_t p_tᵀ) J_t) = (1/N) Σ_t [Σ_i p_ti ‖J_ti‖² − ‖Σ_i p_ti J_ti‖²]."""
    row2 = (jac ** 2).sum(-1)  # (N, V)
    mean_row = torch.einsum("tv,tvn->tn", p, jac)
    return float(((p * row2).sum(-1) - (mean_row ** 2).sum(-1)).sum() / p.shape[0])


def _gauss_newton_sample_sd(jac, p, draws=4000):
    """Standard deviation and mean of one sample ‖Σ_t J_tᵀ(p_t − e_{y_t})‖² / N, y_t ~ p_t (numpy sampling)."""
    rng = np.random.default_rng(0)
    jn, pn = jac.numpy(), p.numpy()
    n_tok = pn.shape[0]
    centre = np.einsum("tv,tvn->n", pn, jn)  # Σ_t J_tᵀ p_t
    cum = np.cumsum(pn, axis=1)
    ys = np.stack([np.minimum(np.searchsorted(cum[t], rng.random(draws) * cum[t, -1]), pn.shape[1] - 1)
                   for t in range(n_tok)], 1)  # (draws, N) inverse-CDF labels
    g = centre[None, :] - jn[np.arange(n_tok)[None, :], ys].sum(1)  # (draws, n)
    zs = (g ** 2).sum(1) / n_tok
    return float(np.std(zs, ddof=1)), float(np.mean(zs))


LSTM_MATRICES = ["lstm.weight_ih_l0", "lstm.weight_hh_l0"]


@pytest.fixture(scope="module")
def tiny_known(ptb_slice):
    """The tiny LM with the exact Gauss-Newton trace of each LSTM matrix and the sd of one sample."""
    model, vocab, corpus, batches = _tiny_lm(ptb_slice)
    known = {}
    for name in LSTM_MATRICES:
        jac, p = _logit_jacobian(model, batches, name)
        exact = _exact_gauss_newton(jac, p)
        sd, mc_mean = _gauss_newton_sample_sd(jac, p)
        known[name] = (exact, sd, mc_mean)
    return model, vocab, corpus, known


def test_gauss_newton_trace_matches_the_exact_one_of_a_tiny_lm(tiny_known):
    model, vocab, corpus, known = tiny_known
    probes = 200
    est, _ = model_gauss_newton_traces(model, corpus, vocab, LSTM_MATRICES, probes=probes, seed=3)
    for name, (exact, sd, mc_mean) in known.items():
        assert exact > 0 and abs(mc_mean - exact) <= 4 * sd / math.sqrt(4000), (name, mc_mean, exact)
        # 4 true standard deviations of the mean of `probes` samples (false alarm ~6e-5 per matrix)
        assert abs(est[name].mean - exact) <= 4 * sd / math.sqrt(probes), (name, est[name], exact, sd)
        assert est[name].probes == probes
        assert 4 * sd / math.sqrt(probes) < 0.25 * exact  # the bound is tight enough to catch a 2x error


def test_hessian_table_rests_on_known_traces_and_allocates_as_they_say(tiny_known):
    model, vocab, corpus, known = tiny_known
    bits = (1, 2, 4)
    cfg = SensitivityConfig(metric="hessian", bits=bits, probes=8, max_probes=400, rel_se=0.02)
    table = measure_sensitivity(model, corpus, vocab, cfg, names=LSTM_MATRICES)
    assert model.native_lstm is False and set(table.values) == set(LSTM_MATRICES)
    params = dict(model.named_parameters())
    for n in LSTM_MATRICES:
        exact, sd, _ = known[n]
        t = table.trace[n]
        assert t.se <= 0.02 * t.mean or t.probes == 400, t  # sampled until the standard error is small
        assert abs(t.mean - exact) <= 4 * sd / math.sqrt(t.probes), (n, t, exact)
        w = params[n].detach().double()
        err1 = float(((w.abs() - w.abs().mean()) ** 2).sum())  # ±1 with α = mean|w| (optimal, one α per matrix)
        assert table.error2[n][1] == pytest.approx(err1, rel=1e-5)
        assert table.error2[n][1] > table.error2[n][2] > table.error2[n][4] > 0, n
        tol = 4 * sd / math.sqrt(t.probes) / exact
        assert table.values[n][1] == pytest.approx(exact / w.numel() * err1, rel=tol + 1e-5), n
    # the allocation: every choice under a 2-bit budget by brute force, with the exact traces
    costs = {1: 1, 2: 2, 4: 4}
    numel = {n: params[n].numel() for n in LSTM_MATRICES}
    budget = 2 * sum(numel.values())
    exact_values = {n: {b: known[n][0] / numel[n] * table.error2[n][b] for b in bits} for n in LSTM_MATRICES}
    best = min((sum(exact_values[n][b] for n, b in zip(LSTM_MATRICES, choice)), choice)
               for choice in itertools.product(bits, repeat=2)
               if sum(costs[b] * numel[n] for n, b in zip(LSTM_MATRICES, choice)) <= budget)[1]
    alloc = allocate_from_sensitivity(table.values, numel, budget_bits=2)
    assert tuple(alloc.bits[n] for n in LSTM_MATRICES) == best
    again = SensitivityTable.from_dict(table.to_dict())
    assert again.values == table.values and again.trace[n].se == table.trace[n].se
    assert "Tr(G)" in table.text() and "Gauss-Newton" in table.text()


def test_negative_hessian_traces_are_refused_not_clipped(small_lm):
    model, vocab, corpus = small_lm  # untrained: its Hessian traces are negative (the issue-22 probe: 4 of 4)
    cfg = SensitivityConfig(metric="hessian", trace="hutchinson", bits=(1, 2), probes=4, max_probes=16,
                            max_sentences=10)
    with pytest.raises(AdmmqError, match="not significantly positive"):
        measure_sensitivity(model, corpus, vocab, cfg)
    assert model.native_lstm is False


class _LossOf(torch.nn.Module):
    """The summed cross entropy of an LM as a module (for torch.func.functional_call)."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, inputs, targets):
        return self.lm.loss(inputs, targets)[0]


def test_model_hessian_trace_matches_the_exact_hessian_of_a_tiny_lm(ptb_slice):
    model, vocab, corpus, batches = _tiny_lm(ptb_slice, seed=2)
    name, probes = "lstm.weight_hh_l0", 60  # (8, 2): a 16 x 16 Hessian, exact by autograd
    with torch.no_grad():  # LSTM weights x30 (saturated gates): a trace large against the probe noise
        for n, p in model.named_parameters():
            if n.startswith("lstm.weight"):
                p.mul_(30.0)
    shape = dict(model.named_parameters())[name].shape
    tokens = sum(int((b.targets != -100).sum()) for b in batches)
    wrap = _LossOf(model)

    def mean_ce(flat):
        w = {f"lm.{name}": flat.reshape(shape)}
        return sum(torch.func.functional_call(wrap, w, (b.inputs, b.targets)) for b in batches) / tokens

    model.native_lstm = True
    hess = torch.autograd.functional.hessian(mean_ce, dict(model.named_parameters())[name].detach().reshape(-1))
    model.native_lstm = False
    true = float(torch.trace(hess))
    # one Rademacher sample vᵀHv has variance 2 Σ_{i≠j} H_ij² (the only probed block): the bound is 4 true sd
    sd = math.sqrt(2 * float((hess ** 2).sum() - (torch.diagonal(hess) ** 2).sum()))
    est, n_tok = model_hessian_traces(model, corpus, vocab, [name], probes=probes, seed=3)
    assert n_tok == tokens and model.native_lstm is False
    tol = 4 * sd / math.sqrt(probes)
    assert abs(est[name].mean - true) <= tol, (est[name], true, tol)
    assert tol < 0.5 * abs(true), (true, tol)  # tight enough that a 2x (or sign) error fails


def test_sensitivity_config_rejects_bad_settings():
    with pytest.raises(AdmmqError):
        SensitivityConfig(metric="fisher")
    with pytest.raises(AdmmqError):
        SensitivityConfig(bits=(5,))
    with pytest.raises(AdmmqError):
        SensitivityConfig(probes=1)
