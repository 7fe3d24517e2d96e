import itertools
import math
from dataclasses import replace

import pytest
import torch

from rescorer.checkpoint import load_lm
from rescorer.evaluate import evaluate_text
from rescorer.model import LSTMLM, ModelConfig
from rescorer.quant import MethodConfig, build_method
from rescorer.quant.multibit import (dequantize_rows, fit_alpha, multibit_quantize, nearest_codes,
                                     quantize_activations, sign_table)
from rescorer.train import train

from quant_helpers import FP_PPL_1_EPOCH_200, QUANTIZED_BAR, SMALL, cfg_for


def rows(seed=0, r=6, c=200):
    return torch.randn(r, c, generator=torch.Generator().manual_seed(seed)) * 0.1


def test_sign_table_lists_every_pattern():
    t = sign_table(3)
    assert t.shape == (8, 3)
    assert {tuple(x) for x in t.tolist()} == set(itertools.product((-1.0, 1.0), repeat=3))
    assert t[0].tolist() == [-1.0, -1.0, -1.0] and t[5].tolist() == [1.0, -1.0, 1.0]  # bit i of j -> column i


def test_one_bit_is_sign_times_mean_abs():
    w = rows()
    codes, alpha = multibit_quantize(w, 1, cycles=3)
    w1 = dequantize_rows(codes, alpha, sign_table(1))
    expect = torch.where(w >= 0, 1.0, -1.0) * w.abs().mean(1, keepdim=True)
    assert torch.allclose(w1, expect, atol=1e-6)


def test_error_decreases_with_bits_and_with_cycles():
    w = rows(1)
    errs = []
    for k in range(1, 5):
        codes, alpha = multibit_quantize(w, k, cycles=2)
        errs.append(float(((w - dequantize_rows(codes, alpha, sign_table(k))) ** 2).sum()))
    assert all(b < a for a, b in zip(errs, errs[1:])), errs
    greedy_err = ((w - dequantize_rows(*multibit_quantize(w, 2, cycles=0), sign_table(2))) ** 2).sum(1)
    alt_err = ((w - dequantize_rows(*multibit_quantize(w, 2, cycles=2), sign_table(2))) ** 2).sum(1)
    assert torch.all(alt_err <= greedy_err + 1e-7) and float(alt_err.sum()) < float(greedy_err.sum())


def test_codes_are_nearest_values_and_alpha_is_least_squares():
    w = rows(2, r=4, c=64)
    k = 3
    table = sign_table(k)
    codes, alpha = multibit_quantize(w, k, cycles=1)
    values = alpha @ table.t()  # (R, 2^k)
    chosen = dequantize_rows(nearest_codes(w, alpha, table), alpha, table)
    best = torch.gather(values, 1, (w.unsqueeze(2) - values.unsqueeze(1)).abs().argmin(2))
    assert torch.allclose((w - chosen).abs(), (w - best).abs(), atol=1e-7)
    # α for fixed codes: the least-squares solution of B α = w, row by row
    fitted = fit_alpha(w, codes, alpha, table)
    for r in range(4):
        b = table[codes[r]]  # (C, k)
        lsq = torch.linalg.lstsq(b.double(), w[r].double().unsqueeze(1)).solution.squeeze(1)
        err_fit = ((w[r] - b @ fitted[r]) ** 2).sum()
        err_lsq = ((w[r].double() - b.double() @ lsq) ** 2).sum()
        assert float(err_fit) <= float(err_lsq) * (1 + 1e-4) + 1e-9


def test_quantized_matrix_representation_for_export():
    method = build_method(MethodConfig(method="multibit", bits=2))
    w = rows(3)
    qm = method.quantize("decoder.weight", w)
    assert qm.codes.dtype == torch.uint8 and qm.basis.shape == (4, 2) and qm.alpha.shape == (6, 2)
    assert torch.allclose(qm.dequantize(), method.forward_weight("decoder.weight", w), atol=1e-6)
    assert all(len(torch.unique(row)) <= 4 for row in qm.dequantize())


def test_activation_quantization_forward_values_and_identity_gradient():
    x = torch.randn(3, 5, 16, requires_grad=True)
    y = quantize_activations(x, 2)
    assert y.shape == x.shape
    assert all(len(torch.unique(v)) <= 4 for v in y.detach().reshape(-1, 16))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    z = quantize_activations(torch.zeros(2, 8), 2)  # h_0 = 0 stays 0, no NaN
    assert torch.equal(z, torch.zeros(2, 8))


def test_multibit_run_with_activation_quantization(ptb_slice, tmp_path):
    mcfg = MethodConfig(method="multibit", bits=2, act_bits=2)
    res = train(tmp_path / "mb", cfg_for(ptb_slice, epochs=1, max_sentences=200), SMALL, mcfg, quiet=True)
    q = res.log[0]["valid_ppl_q"]
    assert math.isfinite(q) and q < QUANTIZED_BAR * FP_PPL_1_EPOCH_200, q  # measured 204
    lm = load_lm(tmp_path / "mb")
    assert lm.model.cfg.act_bits == 2  # the deployed model quantizes its LSTM inputs too
    assert set(lm.quantized) == set(lm.model.weight_matrix_names())
    got = evaluate_text(lm, str(ptb_slice / "valid.txt"), "plain", 4096, None).ppl
    assert got == pytest.approx(q, rel=1e-4)


def test_model_with_act_bits_quantizes_x_and_h_before_the_lstm_matrices():
    torch.manual_seed(0)
    model = LSTMLM(ModelConfig(vocab_size=30, embed_dim=6, hidden_dim=5, act_bits=1))
    model.reset_parameters(init_range=1.0)  # large weights: quantization visibly changes the outputs
    x = torch.randint(0, 30, (2, 4))
    out, _ = model(x)
    # reference LSTM cell with 1-bit (sign · mean|v|) inputs
    emb = model.embedding(x)
    q = lambda v: torch.where(v >= 0, 1.0, -1.0) * v.abs().mean(-1, keepdim=True)  # noqa: E731
    w_ih, w_hh = model.lstm.weight_ih_l0, model.lstm.weight_hh_l0
    b = model.lstm.bias_ih_l0 + model.lstm.bias_hh_l0
    h = c = torch.zeros(2, 5)
    outs = []
    for t in range(4):
        i, f, g, o = (q(emb[:, t]) @ w_ih.t() + q(h) @ w_hh.t() + b).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    assert torch.allclose(out, torch.stack(outs, 1), atol=1e-5)
    plain = LSTMLM(replace(model.cfg, act_bits=0))
    plain.load_state_dict(model.state_dict())
    assert (plain(x)[0] - out).abs().max() > 1e-2
