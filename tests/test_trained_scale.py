"""ADMM's trained factor on α (``alpha_lr``, rescorer.quant.trained_scale): its gradient, its Adam step,
the deployed model, the resume."""

import math

import pytest
import torch

from rescorer.lm.batching import make_batch
from rescorer.lm.corpus import load_corpus
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.pack.checkpoint import read_checkpoint
from rescorer.quant import MethodConfig, build_method
from rescorer.quant.trained_scale import TrainedScales

from quant_helpers import SMALL, admm_run_killed_and_resumed, assert_same_weights, cfg_for, slice_vocab

BATCHES = 40  # the PTB slice's 400 training sentences in batches of 10 (cfg_for)


def tiny(ptb_slice, **kw):
    vocab = slice_vocab(ptb_slice)
    corpus = load_corpus(vocab, ptb_slice / "train.txt")
    torch.manual_seed(5)
    model = LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=8, hidden_dim=8))
    method = build_method(MethodConfig(method="admm", qset="pm1", tying="layer", gamma=0.0, **kw))
    method.setup(model)
    batch = make_batch(corpus, list(range(6)), vocab.bos_id, vocab.eos_id).normalised("token")
    return model, method, batch


def scaled_copy(model, method, factors, at_q, dtype=torch.float32):
    """A copy of the model (in ``dtype``) with each quantized matrix at factor·X (X = Q or Θ)."""
    m = LSTMLM(model.cfg)
    m.load_state_dict(model.state_dict())
    m.to(dtype)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n in method.names:
                x = method._dense_q(n) if at_q else dict(model.named_parameters())[n].detach()
                p.copy_(x.to(dtype) * factors[n])
    return m


def loss_with_factors(model, batch, method, factors, at_q):
    """The per-token loss, in float64 (a central difference of a float32 loss drowns in rounding)."""
    with torch.no_grad():
        loss, _ = scaled_copy(model, method, factors, at_q, torch.float64).loss(batch.inputs, batch.targets)
    return float(loss) / batch.ntokens


@pytest.mark.parametrize("at_q", [False, True])
def test_the_factor_gradient_is_the_derivative_of_the_loss(ptb_slice, at_q):
    """∂L/∂u of c = exp(u), from one train step, equals the central difference of the loss in u; the
    gradient Θ receives is c·∂L/∂W at W = c·X."""
    model, method, batch = tiny(ptb_slice, alpha_lr=1e-2, extragradient="quantized" if at_q else "none")
    for n in method.names:  # factors away from 1, so that c enters every check
        method.scales.log_scale[n] = torch.tensor(math.log(0.8 if "decoder" in n else 1.25), dtype=torch.float64)
    factors = {n: method.scales.factor(n) for n in method.names}
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # no move: the gradients are read at this point
    method._gradient(model, opt, batch, None, clip=0.0, at_q=at_q)
    eps = 1e-3
    for n in method.names:
        up, down = dict(factors), dict(factors)
        up[n], down[n] = factors[n] * math.exp(eps), factors[n] * math.exp(-eps)
        numeric = (loss_with_factors(model, batch, method, up, at_q)
                   - loss_with_factors(model, batch, method, down, at_q)) / (2 * eps)
        assert float(method.scales.grad[n]) == pytest.approx(numeric, rel=1e-2, abs=1e-7), n
    # Θ's gradient: c·∂L/∂W; check on the output layer by autograd on a model holding c·X
    m = scaled_copy(model, method, factors, at_q)
    loss, _ = m.loss(batch.inputs, batch.targets)
    (loss / batch.ntokens).backward()
    got = dict(model.named_parameters())["decoder.weight"].grad
    want = dict(m.named_parameters())["decoder.weight"].grad * factors["decoder.weight"]
    assert torch.allclose(got, want, atol=1e-6)


def test_adam_moves_each_factor_against_its_gradient_by_about_the_rate():
    s = TrainedScales(["a", "b"], lr=0.01)
    for _ in range(3):
        s.grad = {"a": torch.tensor(2.0, dtype=torch.float64), "b": torch.tensor(-1e-6, dtype=torch.float64)}
        s.step()
    assert float(s.log_scale["a"]) == pytest.approx(-0.03, rel=1e-4)  # Adam: steps of the rate, whatever |g|
    assert float(s.log_scale["b"]) == pytest.approx(0.03, rel=1e-2)
    assert s.factor("a") == pytest.approx(math.exp(-0.03)) and s.factor("unknown") == 1.0
    restored = TrainedScales(["x"], lr=0.01)
    restored.load_state_dict(s.state_dict())
    assert restored.names == ["a", "b"] and restored.steps == 3
    assert torch.equal(restored.m["a"], s.m["a"]) and torch.equal(restored.v["b"], s.v["b"])


def test_the_deployed_alpha_is_the_factor_times_eq20s_and_training_moves_it(ptb_slice):
    model, method, batch = tiny(ptb_slice, alpha_lr=0.05)
    alpha20 = {n: method.alpha[n].clone() for n in method.names}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(5):
        method.train_step(model, opt, batch, None, clip=0.0)
    qm = method.quantized_matrices(model)
    moved = 0
    for n in method.names:
        c = method.scales.factor(n)
        moved += abs(math.log(c)) > 0.05
        assert torch.allclose(qm[n].alpha.flatten(), method.alpha[n].flatten() * c), n
        assert torch.equal(method.alpha[n], alpha20[n]), n  # no projection ran: eq. 20's α as it was
    assert moved >= 2, {n: method.scales.factor(n) for n in method.names}
    params = dict(model.named_parameters())
    point = method.training_point(model)  # what the full-precision validation figure scores: c·Θ
    assert sorted(point) == sorted(method.names)
    for n in method.names:
        assert torch.allclose(point[n], params[n].detach() * method.scales.factor(n)), n
    plain_model, plain, _ = tiny(ptb_slice)
    assert plain.training_point(plain_model) == {}
    assert plain.scales is None and "alpha_factor/decoder.weight" not in plain.end_epoch(plain_model, 0)
    assert method.end_epoch(model, 0)["alpha_factor/decoder.weight"] == method.scales.factor("decoder.weight")


def test_resume_mid_epoch_equals_uninterrupted_with_trained_factors(ptb_slice, tmp_path, monkeypatch):
    mcfg = MethodConfig(method="admm", qset="pm1", tying="layer", gamma=1e-2, gamma_growth=1.5, admm_per_epoch=6,
                        warm_start="quantized", alpha_lr=1e-2)
    cfg = cfg_for(ptb_slice, epochs=2, save_every=15, optimizer="adam", lr=5e-3)
    full, cut, step = admm_run_killed_and_resumed(tmp_path, cfg, SMALL, mcfg, monkeypatch, kill_at=BATCHES + 18)
    assert step == 15
    assert_same_weights(full, cut)
    scales_full, scales_cut = full["method_state"]["scales"], cut["method_state"]["scales"]
    assert int(scales_full["steps"]) == 2 * BATCHES
    for part in ("log_scale", "m", "v"):
        for n, v in scales_full[part].items():
            assert torch.equal(v, scales_cut[part][n]), (part, n)
    assert [r["valid_ppl_q"] for r in full["log"]] == [r["valid_ppl_q"] for r in cut["log"]]
    factors = [r["alpha_factor/decoder.weight"] for r in full["log"]]
    assert factors == [r["alpha_factor/decoder.weight"] for r in cut["log"]] and factors[0] != 1.0
    assert read_checkpoint(tmp_path / "full" / "best.pt")["method_config"]["alpha_lr"] == 1e-2
