import pytest
import torch

from rescorer.errors import MismatchError
from rescorer.lm.model import LSTMLM, ModelConfig


def small(**kw):
    cfg = dict(vocab_size=30, embed_dim=8, hidden_dim=12, layers=2)
    cfg.update(kw)
    return LSTMLM(ModelConfig(**cfg))


def test_native_cell_equals_torch_lstm():
    m = small().double()
    x = torch.randint(0, 29, (3, 7))
    h1, (a1, b1) = m(x)
    m.native_lstm = True
    h2, (a2, b2) = m(x)
    assert torch.allclose(h1, h2, atol=1e-10) and torch.allclose(a1, a2, atol=1e-10)
    assert torch.allclose(b1, b2, atol=1e-10)


def test_native_cell_is_twice_differentiable():
    m = small(layers=1)
    m.native_lstm = True
    x = torch.randint(0, 29, (2, 5))
    loss, _ = m.loss(x, torch.randint(0, 29, (2, 5)))
    w = m.lstm.weight_hh_l0
    (g,) = torch.autograd.grad(loss, w, create_graph=True)
    (hv,) = torch.autograd.grad((g * torch.ones_like(g)).sum(), w)
    assert hv.shape == w.shape and torch.isfinite(hv).all() and hv.abs().sum() > 0


def test_outputs_exclude_bos_and_tied_embeddings_share_rows():
    m = small(embed_dim=12, tie_embeddings=True, layers=1)
    assert m.logits(torch.zeros(1, 12)).shape == (1, 29)
    assert m.output_weight.data_ptr() == m.embedding.weight.data_ptr()
    assert "decoder.weight" not in dict(m.named_parameters())


def test_weight_matrices_are_the_2d_parameters():
    m = small(layers=1, input_linear=True, output_linear=True)
    names = m.weight_matrix_names()
    assert names == ["embedding.weight", "input_linear.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0",
                     "output_linear.weight", "decoder.weight"]


def test_load_weights_reports_mismatch():
    a, b = small(hidden_dim=12), small(hidden_dim=13)
    with pytest.raises(MismatchError, match="shape"):
        b.load_weights(a.state_dict(), "x.pt")
    sd = a.state_dict()
    sd.pop("decoder.bias")
    with pytest.raises(MismatchError, match="missing"):
        a.load_weights(sd)
