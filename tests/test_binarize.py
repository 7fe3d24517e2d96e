import math

import pytest
import torch

from rescorer.lm.batching import make_batch
from rescorer.pack.lm_file import load_lm
from rescorer.lm.corpus import load_corpus
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.quant import MethodConfig, build_method
from rescorer.train.loop import train

from quant_helpers import FP_PPL_2_EPOCHS, SMALL, quantized_bar, cfg_for, slice_vocab


def model_and_batch(ptb_slice, method_name):
    vocab = slice_vocab(ptb_slice)
    method = build_method(MethodConfig(method=method_name))
    model = LSTMLM(method.adapt_model_config(ModelConfig(vocab_size=len(vocab), embed_dim=8, hidden_dim=8)))
    method.setup(model)
    corpus = load_corpus(vocab, ptb_slice / "train.txt")
    return model, method, make_batch(corpus, list(range(5)), vocab.bos_id, vocab.eos_id)


def test_forward_uses_sign_and_gradient_is_straight_through_masked(ptb_slice):
    model, method, batch = model_and_batch(ptb_slice, "bin")
    with torch.no_grad():
        model.lstm.weight_hh_l0[0, :4] = torch.tensor([1.5, -2.0, 0.5, -0.25])  # two latent weights outside [-1, 1]
    latent = {n: p.detach().clone() for n, p in model.named_parameters()}
    # reference: the same model with sign(W) weights, gradient by autograd
    ref = LSTMLM(model.cfg)
    binary = {n: torch.where(v >= 0, 1.0, -1.0) / math.sqrt(v.shape[1]) for n, v in latent.items()
              if n in method.quantized_names(model)}  # h·sign(W), h = 1/sqrt(columns)
    ref.load_state_dict({**latent, **binary})
    loss, _ = ref.loss(batch.inputs, batch.targets)
    (loss / batch.ntokens).backward()
    lr = 0.01
    got_loss, _ = method.train_step(model, torch.optim.SGD(model.parameters(), lr=lr), batch, None, clip=0.0)
    assert float(got_loss) == pytest.approx(float(loss.detach()), rel=1e-5)  # the forward pass ran on sign(W)
    for n, p in model.named_parameters():
        g = dict(ref.named_parameters())[n].grad
        if n in method.quantized_names(model):
            g = g * (latent[n].abs() <= 1)  # zeroed where |W| > 1
            expect = (latent[n] - lr * g).clamp(-1, 1)  # latent weights clipped to [-1, 1]
        else:
            expect = latent[n] - lr * g
        assert torch.allclose(p.detach(), expect, atol=1e-6), n
    assert model.lstm.weight_hh_l0[0, 0] == 1.0 and model.lstm.weight_hh_l0[0, 1] == -1.0


def test_bin_lin_adds_binary_linear_layers_with_full_precision_scale_and_bias(ptb_slice):
    model, method, _ = model_and_batch(ptb_slice, "bin-lin")
    names = method.quantized_names(model)
    assert "input_linear.weight" in names and "output_linear.weight" in names
    qm = method.quantized_matrices(model)
    assert set(qm) == set(names)
    for n, q in qm.items():
        h = 1 / math.sqrt(q.shape[1])
        assert torch.allclose(q.dequantize().abs(), torch.full(q.shape, h))
        assert q.levels == 2 and q.alpha.shape == (1, 1) and q.alpha.item() == pytest.approx(h)


@pytest.mark.parametrize("method", ["bin", "bin-lin"])
def test_binarized_run_within_1_5x_of_full_precision(ptb_slice, tmp_path, method):
    res = train(tmp_path / method, cfg_for(ptb_slice, epochs=2), SMALL, MethodConfig(method=method), quiet=True)
    q = [r["valid_ppl_q"] for r in res.log]
    assert all(math.isfinite(p) for p in q) and min(q) < quantized_bar(ptb_slice, FP_PPL_2_EPOCHS), q  # measured 148, 138
    lm = load_lm(tmp_path / method)
    assert lm.model.cfg.input_linear == (method == "bin-lin")
    for name in lm.model.weight_matrix_names():
        w = dict(lm.model.named_parameters())[name].detach()
        assert torch.allclose(w.abs(), torch.full(w.shape, 1 / math.sqrt(w.shape[1]))), name  # only ±h
    if method == "bin-lin":
        assert not torch.allclose(lm.model.output_linear.scale, torch.ones(16))  # trained, full precision


def test_bin_lin_starts_from_a_full_precision_model_with_the_same_function(ptb_slice, tmp_path):
    """--init-from an fp LM: the added binary linear layers start orthogonal (Hadamard / √n, which
    binarization leaves unchanged) and the next matrices absorb their inverse, so the latent model
    computes the fp model's logits; its binarized linear layers are those same matrices."""
    from rescorer.quant.binarize import BinLinMethod
    from rescorer.quant.linear_layers import hadamard

    for n in (1, 2, 4, 12, 16, 20, 200, 256):  # Sylvester, Paley (q = 11, 19, 199) and products
        h = hadamard(n)
        assert set(h.unique().tolist()) <= {-1.0, 1.0}
        assert torch.equal(h @ h.T, n * torch.eye(n)), n
    vocab = slice_vocab(ptb_slice)
    fp = LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=16, hidden_dim=12)).eval()
    method = build_method(MethodConfig(method="bin-lin"))
    assert isinstance(method, BinLinMethod)
    cfg = method.adapt_model_config(fp.cfg)
    started = LSTMLM(cfg).eval()
    started.load_weights(method.adapt_init_weights(fp.state_dict(), cfg, "fp.pt"))
    inputs = torch.randint(0, len(vocab), (3, 7))
    with torch.no_grad():
        assert torch.allclose(fp.logits(fp(inputs)[0]), started.logits(started(inputs)[0]), atol=1e-5)
    q = method.quantized_matrices(started)
    for name in ("input_linear.weight", "output_linear.weight"):
        assert torch.allclose(q[name].dequantize(), dict(started.named_parameters())[name].detach())
    # the same through the trainer: a bin-lin run starts from an fp checkpoint
    train(tmp_path / "fp", cfg_for(ptb_slice, epochs=1), SMALL, MethodConfig(method="fp"), quiet=True)
    res = train(tmp_path / "bl", cfg_for(ptb_slice, epochs=1, init_from=str(tmp_path / "fp" / "best.pt")), None,
                MethodConfig(method="bin-lin"), quiet=True)
    assert res.epochs_run == 1 and math.isfinite(res.best_valid_ppl)


def test_bin_lin_init_from_refuses_a_size_without_a_known_hadamard_matrix(ptb_slice):
    from rescorer.errors import AdmmqError

    vocab = slice_vocab(ptb_slice)
    fp = LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=16, hidden_dim=6))
    method = build_method(MethodConfig(method="bin-lin"))
    with pytest.raises(AdmmqError, match="Hadamard matrix of order 6"):
        method.adapt_init_weights(fp.state_dict(), method.adapt_model_config(fp.cfg), "fp.pt")
