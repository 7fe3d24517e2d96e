"""ADMM's thaw (``MethodConfig.thaw``): an epoch that stalls with the codes frozen starts γ's warm-up again
instead of halving the rate, and the epoch after it is not judged; runs without such an epoch are unchanged;
a killed run resumes bitwise through a thaw."""

import pytest
import torch

from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.pack.checkpoint import read_checkpoint
from rescorer.quant import MethodConfig, build_method
from rescorer.train.loop import train

from quant_helpers import SMALL, admm_run_killed_and_resumed, assert_same_weights, cfg_for, slice_vocab
from test_admm_schedule import tiny_cli_run

BATCHES = 40  # the PTB slice's 400 training sentences in batches of 10

#: γ from 1e-3 ×10 per epoch; after a thaw from 1e-3 again ×2 per epoch; four ADMM iterations per epoch
FROZEN = MethodConfig(method="admm", qset="pm1", tying="layer", gamma=1e-3, gamma_growth=10.0,
                      gamma_restart_growth=2.0, admm_per_epoch=4, warm_start="quantized", extragradient="none",
                      thaw=True)


def frozen_run_cfg(ptb_slice, **kw):
    """SGD at a rate so small that no code can change and every epoch after the first stalls."""
    return cfg_for(ptb_slice, epochs=4, lr=1e-9, min_lr=1e-12, **kw)


def test_thaw_needs_a_frozen_projection(ptb_slice):
    """``thaw()`` answers a stall only with ``thaw`` on and when the latest ADMM iteration changed no code;
    then γ starts again from ``gamma`` at the next epoch's start and grows by ``gamma_restart_growth``."""
    vocab = slice_vocab(ptb_slice)
    torch.manual_seed(0)
    model = LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=8, hidden_dim=8))
    method = build_method(FROZEN)
    method.setup(model)
    method.begin_epoch(2, BATCHES, 0)
    assert not method.thaw()  # no ADMM iteration yet
    with torch.no_grad():  # move every weight across zero: the next projection changes codes
        for p in model.parameters():
            p.mul_(-1.0)
    assert method.admm_iteration(model)["admm_codes_changed"] > 0
    assert not method.thaw()
    gamma = method.gamma
    assert method.admm_iteration(model)["admm_codes_changed"] == 0  # Θ = Q after the warm start: a fixed point
    assert not build_method(MethodConfig(**{**FROZEN.to_dict(), "thaw": False})).thaw()
    assert method.thaw()
    assert method.thaw_at == 3.0 and method.gamma == pytest.approx(1e-3) and gamma > 1e-3
    assert method.gamma_at(3.5) == pytest.approx(1e-3 * 2.0 ** 0.5)
    assert method.gamma_at(2.5) == pytest.approx(1e-3 * 10.0 ** 2.5)  # before the thaw: the first warm-up


def test_a_frozen_stall_thaws_instead_of_halving(ptb_slice, tmp_path):
    """Epoch 2 stalls with frozen codes: γ starts again, the rate stays; epoch 3 is not judged (no halving, no
    restore); epoch 4 stalls frozen again.  Without ``thaw`` the same run halves the rate after every stall."""
    res = train(tmp_path / "thaw", frozen_run_cfg(ptb_slice), SMALL, FROZEN, quiet=True)
    log = res.log
    assert [r["admm_codes_changed"] for r in log] == [0, 0, 0, 0]
    assert [bool(r.get("thaw")) for r in log] == [False, True, False, True]
    assert [r["lr"] for r in log] == [1e-9] * 4
    assert "restored" not in log[2]
    # γ of the last iteration of each epoch: 1e-3·10^t for t = 1, 2; then 1e-3·2^(t − 2) after the thaw at t = 2
    assert [r["admm_gamma"] for r in log[:3]] == pytest.approx([1e-3 * 10 ** 0.75, 1e-3 * 10 ** 1.75,
                                                                1e-3 * 2 ** 0.75])
    ckpt = read_checkpoint(tmp_path / "thaw" / "last.pt")
    assert float(ckpt["method_state"]["thaw_at"]) == 4.0 and ckpt["trainer"]["warmup_epoch"] == 4

    off = MethodConfig(**{**FROZEN.to_dict(), "thaw": False})
    log = train(tmp_path / "off", frozen_run_cfg(ptb_slice), SMALL, off, quiet=True).log
    assert [r["lr"] for r in log] == pytest.approx([1e-9, 1e-9, 5e-10, 2.5e-10])
    assert not any(r.get("thaw") for r in log)


def test_runs_whose_codes_move_are_the_same_with_or_without_thaw(ptb_slice, tmp_path):
    """No epoch ends with frozen codes: ``thaw`` changes nothing, bit for bit."""
    out = {}
    for thaw in (True, False):
        mcfg = MethodConfig(**{**FROZEN.to_dict(), "thaw": thaw, "gamma_growth": 1.9, "admm_per_epoch": 8})
        res = train(tmp_path / str(thaw), cfg_for(ptb_slice, epochs=3, optimizer="adam", lr=5e-3,
                                                  min_improvement=0.5), SMALL, mcfg, quiet=True)
        assert all(r["admm_codes_changed"] > 0 for r in res.log), [r["admm_codes_changed"] for r in res.log]
        out[thaw] = read_checkpoint(tmp_path / str(thaw) / "last.pt")
    assert_same_weights(out[True], out[False])
    assert [r["valid_ppl_q"] for r in out[True]["log"]] == [r["valid_ppl_q"] for r in out[False]["log"]]
    assert [r["lr"] for r in out[True]["log"]][-1] < 5e-3  # a stall happened, and was answered by halving


def test_resume_through_a_thaw_equals_uninterrupted(ptb_slice, tmp_path, monkeypatch):
    """Killed in epoch 3 (the warm-up after the thaw), after the save at its step 15: the resumed run ends
    where the uninterrupted one does — weights, γ, the thaw point, the warm-up epoch and the log."""
    cfg = frozen_run_cfg(ptb_slice, save_every=15)
    full, cut, step = admm_run_killed_and_resumed(tmp_path, cfg, SMALL, FROZEN, monkeypatch,
                                                  kill_at=2 * BATCHES + 18)
    assert step == 15
    assert_same_weights(full, cut)
    for k in ("iteration", "gamma", "thaw_at", "last_changed"):
        assert torch.equal(full["method_state"][k], cut["method_state"][k]), k
    assert full["trainer"]["warmup_epoch"] == cut["trainer"]["warmup_epoch"] == 4
    keys = ("lr", "valid_ppl_q", "admm_gamma", "thaw")
    assert [[r.get(k) for k in keys] for r in full["log"]] == [[r.get(k) for k in keys] for r in cut["log"]]


def test_cli_thaw_is_off_unless_asked(ptb_slice, tmp_path):
    """`admmq train --method admm`: no thaw by default, with a trained model too; ``--thaw`` turns it on."""
    tiny_cli_run(ptb_slice, tmp_path / "fp")
    for name, extra, want in (("plain", (), False), ("init", ("--init-from", str(tmp_path / "fp" / "best.pt")), False),
                              ("thaw", ("--thaw",), True)):
        ckpt = tiny_cli_run(ptb_slice, tmp_path / name, "--method", "admm", *extra)
        assert ckpt["method_config"]["thaw"] is want, (name, ckpt["method_config"]["thaw"])
