"""Sensitivity metrics: Hutchinson traces, KL and Hessian tables on a small LM over real PTB text."""

import math
from dataclasses import replace

import pytest
import torch

from rescorer.lm.batching import length_sorted_batches
from rescorer.lm.corpus import load_corpus
from rescorer.errors import AdmmqError
from rescorer.lm.model import LSTMLM
from rescorer.quant.sensitivity import (SensitivityConfig, SensitivityTable, hutchinson_traces, kl_sensitivity,
                                        measure_sensitivity, model_hessian_traces, quantized_variants)

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
    for name, true in (("x", float(torch.trace(hess))), ("y", float(torch.trace(hess_b)))):
        e = est[name]
        assert e.probes == 400 and e.se > 0
        assert abs(e.mean - true) <= 2.5 * e.se, (name, e.mean, true, e.se)  # ~1% false alarm for a fixed seed
        # the standard error is the estimator's: Var(vᵀHv) = 2 Σ_{i≠j} H_ij² (+ cross terms for x, y)
    off = float((hess ** 2).sum() - (torch.diag(hess) ** 2).sum())
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


def test_hessian_table_is_trace_times_error_and_native_cell_is_restored(small_lm):
    model, vocab, corpus = small_lm
    cfg = SensitivityConfig(metric="hessian", bits=(1, 2, 4), probes=4, max_sentences=10)
    table = measure_sensitivity(model, corpus, vocab, cfg)
    assert model.native_lstm is False
    assert set(table.values) == set(model.weight_matrix_names())
    for n, row in table.values.items():
        t = table.trace[n]
        assert t.probes == 4 and math.isfinite(t.mean) and t.se >= 0, (n, t)
        for b, v in row.items():
            assert v == pytest.approx(max(t.mean, 0.0) / table.numel[n] * table.error2[n][b]), (n, b)
        assert table.error2[n][1] > table.error2[n][2] > table.error2[n][4], n
    again = SensitivityTable.from_dict(table.to_dict())
    assert again.values == table.values and again.trace[n].se == table.trace[n].se
    assert "Tr(H)" in table.text()


class _LossOf(torch.nn.Module):
    """The summed cross entropy of an LM as a module (for torch.func.functional_call)."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, inputs, targets):
        return self.lm.loss(inputs, targets)[0]


def test_model_hessian_trace_matches_the_exact_hessian_of_a_tiny_lm(ptb_slice):
    vocab = slice_vocab(ptb_slice)
    torch.manual_seed(2)
    model = LSTMLM(replace(SMALL, vocab_size=len(vocab), embed_dim=3, hidden_dim=2)).eval()
    corpus = load_corpus(vocab, ptb_slice / "valid.txt", max_sentences=2)
    name = "lstm.weight_hh_l0"  # (8, 2): a 16 x 16 Hessian, exact by autograd
    shape = dict(model.named_parameters())[name].shape
    batches = list(length_sorted_batches(corpus, 4096, vocab.bos_id, vocab.eos_id))
    tokens = sum(int((b.targets != -100).sum()) for b in batches)
    wrap = _LossOf(model)

    def mean_ce(flat):
        w = {f"lm.{name}": flat.reshape(shape)}
        return sum(torch.func.functional_call(wrap, w, (b.inputs, b.targets)) for b in batches) / tokens

    model.native_lstm = True
    hess = torch.autograd.functional.hessian(mean_ce, dict(model.named_parameters())[name].detach().reshape(-1))
    model.native_lstm = False
    true = float(torch.trace(hess))
    est, n_tok = model_hessian_traces(model, corpus, vocab, [name], probes=60, seed=3)
    assert n_tok == tokens and model.native_lstm is False
    assert abs(est[name].mean - true) <= 3 * est[name].se, (est[name], true)


def test_sensitivity_config_rejects_bad_settings():
    with pytest.raises(AdmmqError):
        SensitivityConfig(metric="fisher")
    with pytest.raises(AdmmqError):
        SensitivityConfig(bits=(5,))
    with pytest.raises(AdmmqError):
        SensitivityConfig(probes=1)
