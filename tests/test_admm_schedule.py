"""ADMM schedules: updates every N mini-batches (--admm-interval), γ growth and cap, the
quantized-point gradient, and exact resumption under each schedule."""

from dataclasses import replace

import pytest
import torch

from rescorer.errors import AdmmqError
from rescorer.lm.batching import make_batch
from rescorer.pack.checkpoint import read_checkpoint
from rescorer.lm.corpus import load_corpus
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.quant import MethodConfig, build_method
from rescorer.quant.admm import AdmmMethod
from rescorer.train.loop import train

from quant_helpers import SMALL, admm_run_killed_and_resumed, assert_same_weights, cfg_for, slice_vocab

BATCHES = 40  # the PTB slice's 400 training sentences in batches of 10


def update_points(monkeypatch, tmp_path, ptb_slice, interval, epochs=2):
    """The mini-batch counts (1-based, per epoch) after which an ADMM iteration ran."""
    seen, count = [], {"batches": 0}
    real_step, real_iter = AdmmMethod.train_step, AdmmMethod.admm_iteration

    def step(self, *a, **kw):
        count["batches"] += 1
        return real_step(self, *a, **kw)

    def iteration(self, model):
        seen.append(count["batches"])
        return real_iter(self, model)

    monkeypatch.setattr(AdmmMethod, "train_step", step)
    monkeypatch.setattr(AdmmMethod, "admm_iteration", iteration)
    mcfg = MethodConfig(method="admm", qset="pm1", tying="layer", admm_interval=interval)
    res = train(tmp_path / f"i{interval}", cfg_for(ptb_slice, epochs=epochs), SMALL, mcfg, quiet=True)
    return seen, res


@pytest.mark.parametrize("interval, expect", [
    (0, [40, 80]),  # once per epoch, after its last batch (the paper)
    (15, [15, 30, 40, 55, 70, 80]),  # every 15 batches of an epoch, and at its end
    (20, [20, 40, 60, 80]),  # the last batch of an epoch is an update: none added
])
def test_updates_run_at_the_stated_batches(ptb_slice, tmp_path, monkeypatch, interval, expect):
    seen, res = update_points(monkeypatch, tmp_path, ptb_slice, interval)
    assert seen == expect, (interval, seen)
    per_epoch = [r["admm_updates"] for r in res.log]
    assert per_epoch == [len([s for s in expect if (e - 1) * BATCHES < s <= e * BATCHES]) for e in (1, 2)]
    assert res.log[-1]["admm_iter"] == len(expect)


def test_epoch_schedule_equals_an_interval_of_one_epoch(ptb_slice, tmp_path):
    """``epoch`` (one iteration after each epoch's last batch, the schedule before intervals existed)
    and an interval equal to the epoch's batch count run the same updates: identical runs."""
    out = {}
    for interval in (0, BATCHES):
        mcfg = MethodConfig(method="admm", qset="pm12", tying="node", gamma=1e-2, admm_interval=interval)
        train(tmp_path / str(interval), cfg_for(ptb_slice, epochs=2), SMALL, mcfg, quiet=True)
        out[interval] = read_checkpoint(tmp_path / str(interval) / "last.pt")
    for key in ("model", "quantized"):
        a, b = out[0][key], out[BATCHES][key]
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], torch.Tensor):
                assert torch.equal(a[k], b[k]), k
    assert [r["valid_ppl_q"] for r in out[0]["log"]] == [r["valid_ppl_q"] for r in out[BATCHES]["log"]]


def test_gamma_grows_per_iteration_up_to_its_cap(ptb_slice):
    vocab = slice_vocab(ptb_slice)
    model = LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=8, hidden_dim=8))
    method = build_method(MethodConfig(method="admm", gamma=1e-3, gamma_growth=2.0, gamma_max=5e-3))
    method.setup(model)
    used = [method.admm_iteration(model)["admm_gamma"] for _ in range(5)]
    assert used == pytest.approx([1e-3, 2e-3, 4e-3, 5e-3, 5e-3])


@pytest.mark.parametrize("restart_growth, expect", [
    (3.0, [1e-3, 2e-3, 4e-3, 1e-3, 3e-3, 5e-3, 5e-3]),  # after iteration 3: from γ again, ×3, same cap
    (0.0, [1e-3, 2e-3, 4e-3, 1e-3, 2e-3, 4e-3, 5e-3]),  # 0: the first warm-up's growth
])
def test_gamma_restarts_once_after_the_stated_iteration(ptb_slice, restart_growth, expect):
    vocab = slice_vocab(ptb_slice)
    model = LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=8, hidden_dim=8))
    method = build_method(MethodConfig(method="admm", gamma=1e-3, gamma_growth=2.0, gamma_max=5e-3,
                                       gamma_restart_after=3, gamma_restart_growth=restart_growth))
    method.setup(model)
    used = [method.admm_iteration(model)["admm_gamma"] for _ in range(len(expect))]
    assert used == pytest.approx(expect)
    with pytest.raises(AdmmqError, match="gamma restart"):
        MethodConfig(method="admm", gamma_restart_after=-1)


def schedule_events(monkeypatch, tmp_path, ptb_slice, mcfg, sentences, batch_size, epochs=3):
    """(progress in epochs, γ of the coming mini-batches) after each ADMM iteration of a run on the first
    ``sentences`` slice sentences in batches of ``batch_size``; and the run's result."""
    events = []
    real_iter = AdmmMethod.admm_iteration

    def iteration(self, model):
        figures = real_iter(self, model)
        events.append((self.progress(), self.gamma))
        return figures

    monkeypatch.setattr(AdmmMethod, "admm_iteration", iteration)
    cfg = cfg_for(ptb_slice, epochs=epochs, batch_size=batch_size, max_sentences=sentences)
    out = tmp_path / f"s{sentences}_b{batch_size}_k{mcfg.admm_per_epoch}_i{mcfg.admm_interval}_e{epochs}"
    res = train(out, cfg, SMALL, mcfg, quiet=True)
    monkeypatch.setattr(AdmmMethod, "admm_iteration", real_iter)
    return events, res


EPOCH_UNITS = MethodConfig(method="admm", qset="pm1", tying="layer", gamma=1e-3, gamma_growth=20.0, gamma_max=2e-2,
                           gamma_restart_after=1.4, gamma_restart_growth=3.0, admm_per_epoch=5,
                           warm_start="quantized")


def test_epoch_unit_schedule_lands_at_the_same_fractions_for_any_corpus_or_batch_size(ptb_slice, tmp_path,
                                                                                      monkeypatch):
    """``admm_per_epoch``: the ADMM iterations, γ's growth, cap and second warm-up happen at the same points of
    training (in epochs) on 400 or 200 sentences, in batches of 10 or 20 (40, 20 or 10 mini-batches per
    epoch); the iteration-counted form does not."""
    runs = {(n, b): schedule_events(monkeypatch, tmp_path, ptb_slice, EPOCH_UNITS, n, b)
            for n, b in ((400, 10), (200, 10), (400, 20), (200, 20))}
    expect_t = [e + k / 5 for e in range(3) for k in range(1, 6)]
    for key, (events, res) in runs.items():
        assert [t for t, _ in events] == pytest.approx(expect_t), key
        # γ(t) = 1e-3·20^t to the cap 2e-2; from t = 1.4: 1e-3·3^(t − 1.4) to the same cap
        gammas = [min(1e-3 * (20.0 ** t if t < 1.4 - 1e-9 else 3.0 ** (t - 1.4)), 2e-2) for t in expect_t]
        assert [g for _, g in events] == pytest.approx(gammas), key
        assert [r["admm_updates"] for r in res.log] == [5, 5, 5], key
    assert gammas[6] == pytest.approx(1e-3)  # the restart happened (t = 1.4), and the cap was reached before it
    assert gammas[4] == gammas[5] == pytest.approx(2e-2)
    # K that does not divide the batch count: the same fractions within one mini-batch of the smaller corpus
    odd = replace(EPOCH_UNITS, admm_per_epoch=3)
    a, _ = schedule_events(monkeypatch, tmp_path, ptb_slice, odd, 400, 10, epochs=2)
    b, _ = schedule_events(monkeypatch, tmp_path, ptb_slice, odd, 200, 10, epochs=2)
    assert len(a) == len(b) == 6
    assert [ta for ta, _ in a] == pytest.approx([tb for tb, _ in b], abs=1 / 20)
    # the iteration-counted form (every 10 mini-batches, growth per iteration) runs twice the iterations
    # on twice the text, so its γ is further along after the same epochs
    legacy = MethodConfig(method="admm", qset="pm1", tying="layer", gamma=1e-3, gamma_growth=1.2, admm_interval=10)
    big, _ = schedule_events(monkeypatch, tmp_path, ptb_slice, legacy, 400, 10, epochs=1)
    small, _ = schedule_events(monkeypatch, tmp_path, ptb_slice, legacy, 200, 10, epochs=1)
    assert (len(big), len(small)) == (4, 2) and big[-1][1] > small[-1][1]


def test_batch_interval_with_an_epoch_unit_schedule_is_refused():
    """An interval in mini-batches counts γ per ADMM iteration: a schedule whose γ grows per epoch needs its
    growth restated, else the one-line error says so."""
    from rescorer.train.options import TrainOptions, resolve_options

    with pytest.raises(AdmmqError, match="per epoch"):
        resolve_options(TrainOptions(train="t", valid="v", method="admm", admm_schedule="trained-adam",
                                     admm_interval=(0, 50)))
    s = resolve_options(TrainOptions(train="t", valid="v", method="admm", admm_schedule="trained-adam",
                                     admm_interval=(0, 50), gamma_growth=1.01, gamma_restart_after=300))
    assert (s.method_cfg.admm_interval, s.method_cfg.admm_per_epoch, s.method_cfg.schedule_unit) == \
        (50, 0, "iteration")
    s = resolve_options(TrainOptions(train="t", valid="v", method="admm", admm_schedule="trained-adam",
                                     admm_interval=(20, 0)))
    assert (s.method_cfg.admm_interval, s.method_cfg.admm_per_epoch, s.method_cfg.schedule_unit) == \
        (0, 20, "epoch")


def test_quantized_extragradient_takes_the_loss_gradient_at_q(ptb_slice):
    """``extragradient=quantized``: ∇F_ce at the quantized weights (by autograd on a model holding Q),
    plus the penalty γ(Θ − Q + λ) at Θ (eq. 16)."""
    vocab = slice_vocab(ptb_slice)
    corpus = load_corpus(vocab, ptb_slice / "train.txt")
    model = LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=8, hidden_dim=8))
    gamma = 0.05
    method = build_method(MethodConfig(method="admm", qset="pm1", tying="node", gamma=gamma,
                                       extragradient="quantized"))
    method.setup(model)
    for n in method.names:
        method.lam[n] = torch.randn_like(method.lam[n]) * 0.01
        method._refresh_target(n)
    batch = make_batch(corpus, list(range(6)), vocab.bos_id, vocab.eos_id).normalised("token")
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    q_model = LSTMLM(model.cfg)
    q_model.load_state_dict(model.state_dict())
    qm = method.quantized_matrices(model)
    with torch.no_grad():
        for n, p in q_model.named_parameters():
            if n in qm:
                p.copy_(qm[n].dequantize())
    loss, _ = q_model.loss(batch.inputs, batch.targets)
    (loss / batch.ntokens).backward()
    expect = {}
    for n, p in q_model.named_parameters():
        expect[n] = p.grad.clone()
        if n in method.names:
            expect[n] += gamma * (theta[n] - method.target[n])
    lr = 0.5
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    method.train_step(model, opt, batch, None, clip=0.0)
    for n, p in model.named_parameters():
        assert torch.allclose(p.detach(), theta[n] - lr * expect[n], atol=1e-6), n


@pytest.mark.parametrize("warm", ["none", "centre", "quantized"])
def test_warm_start_modes_move_theta_as_stated(ptb_slice, warm):
    """After eqs. 18-21: ``quantized`` puts Θ on Q and leaves Θ + λ (what eq. 18 projects) where it
    was; ``centre`` keeps Θ's offset from the centre Q − λ; ``none`` leaves Θ alone."""
    vocab = slice_vocab(ptb_slice)
    torch.manual_seed(3)
    model = LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=8, hidden_dim=8))
    method = build_method(MethodConfig(method="admm", qset="pm124", tying="node", warm_start=warm))
    method.setup(model)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n in method.names:  # a Θ and λ away from the first projection, as after some training
            method.lam[n] = torch.randn_like(method.lam[n]) * 0.02
            method._refresh_target(n)
            params[n].add_(torch.randn_like(params[n]) * 0.05)
    before = {n: (params[n].detach().clone(), method.lam[n].clone(), method.target[n].clone()) for n in method.names}
    figures = method.admm_iteration(model)
    assert figures["admm_codes_changed"] > 0, figures
    for n, (theta, lam, centre) in before.items():
        now = params[n].detach()
        if warm == "quantized":
            assert torch.equal(now, method._dense_q(n)), n
            assert torch.allclose(now + method.lam[n], theta + lam, atol=1e-6), n
        elif warm == "centre":
            assert torch.allclose(now - method.target[n], theta - centre, atol=1e-6), n
        else:
            assert torch.equal(now, theta), n
        assert torch.allclose(method.lam[n], lam + theta - method._dense_q(n), atol=1e-6), n  # eq. 21


def test_checkpoints_from_before_the_warm_start_modes_still_load():
    assert MethodConfig.from_dict({"method": "admm", "warm_start": True}).warm_start == "centre"
    assert MethodConfig.from_dict({"method": "admm", "warm_start": False}).warm_start == "none"


@pytest.mark.parametrize("interval, mode, warm, optimizer, restart, per_epoch",
                         [(0, "past", "none", "sgd", 0, 0),
                          (7, "quantized", "quantized", "sgd", 0, 0),
                          (7, "past", "quantized", "adam", 0, 0),
                          (7, "past", "quantized", "adam", 9, 0),
                          (0, "past", "quantized", "sgd", 0, 6),
                          (0, "past", "quantized", "adam", 1.5, 6)])
def test_resume_mid_epoch_equals_uninterrupted_under_each_schedule(ptb_slice, tmp_path, monkeypatch, interval,
                                                                    mode, warm, optimizer, restart, per_epoch):
    """``restart`` 9: γ's second warm-up starts after the 9th ADMM iteration (epoch 2's 3rd, after its
    21st batch), i.e. in the resumed part of the run; ``per_epoch`` 6: the epoch-unit schedule, whose
    warm-up restarts 1.5 epochs in (after epoch 2's 20th batch), also in the resumed part."""
    mcfg = MethodConfig(method="admm", qset="pm124", tying="node", gamma=1e-2,
                        gamma_growth=1.5 if per_epoch else 1.01, extragradient=mode, admm_interval=interval,
                        admm_per_epoch=per_epoch, warm_start=warm, gamma_restart_after=restart,
                        gamma_restart_growth=2.0 if per_epoch else 1.05)
    lr = {"sgd": 1.0, "adam": 5e-3}[optimizer]
    cfg = cfg_for(ptb_slice, epochs=2, save_every=15, optimizer=optimizer, lr=lr)
    # killed in epoch 2, after the save at its step 15
    full, cut, step = admm_run_killed_and_resumed(tmp_path, cfg, SMALL, mcfg, monkeypatch, kill_at=BATCHES + 18)
    assert step == 15
    assert_same_weights(full, cut)
    for k in ("iteration", "gamma", "since_update"):
        assert torch.equal(full["method_state"][k], cut["method_state"][k]), k
    if per_epoch:  # 12 iterations, the last at t = 2 epochs: γ = 1e-2·2^(2 − 1.5) with the restart, else ·1.5^2
        assert int(full["method_state"]["iteration"]) == 12
        assert float(full["method_state"]["gamma"]) == pytest.approx(1e-2 * (2.0 ** 0.5 if restart else 1.5 ** 2))
    elif restart:  # 12 iterations: 9 at ×1.01, then from 1e-2 again for 3 at ×1.05
        assert int(full["method_state"]["iteration"]) == 12
        assert float(full["method_state"]["gamma"]) == pytest.approx(1e-2 * 1.05 ** 3)
    assert full["train_config"]["optimizer"] == optimizer
    moments = [s for s in full["optimizer"]["state"].values() if "exp_avg_sq" in s]
    assert len(moments) == (len(full["model"]) if optimizer == "adam" else 0)  # Adam's moments are saved
    for i, st in full["optimizer"]["state"].items():
        for k, v in st.items():
            assert torch.equal(v, cut["optimizer"]["state"][i][k]), (i, k)
    assert [r["valid_ppl_q"] for r in full["log"]] == [r["valid_ppl_q"] for r in cut["log"]]
    assert [r["admm_updates"] for r in full["log"]] == [r["admm_updates"] for r in cut["log"]]


def tiny_cli_run(ptb_slice, out, *extra):
    """`admmq train` of a tiny model on 20 slice sentences into ``out``; its last.pt."""
    from click.testing import CliRunner

    from rescorer.cli.group import cli

    args = ["train", "--train", str(ptb_slice / "train.txt"), "--valid", str(ptb_slice / "valid.txt"),
            "--epochs", "1", "--max-sentences", "20", "--embed-dim", "8", "--hidden-dim", "8", "--quiet",
            "-o", str(out), *extra]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    return read_checkpoint(out / "last.pt")


def test_cli_schedule_defaults_follow_init_from(ptb_slice, tmp_path):
    """`admmq train --method admm`: the paper's schedule from scratch; with --init-from ``trained-adam``
    whatever the table ({±1}, {0,±1}, {±1,±2}, {±1,±2,±4}); --admm-schedule paper and trained are one
    option away and explicit settings win."""
    from rescorer.quant.method import ADMM_SCHEDULES, TRAINING_KEYS
    from rescorer.train.config import ADAM_LR

    def method_config(name, *extra):
        return tiny_cli_run(ptb_slice, tmp_path / name, *extra)["method_config"]

    method_config("fp", "--lr", "0.5")
    fp = str(tmp_path / "fp" / "best.pt")
    keys = ("admm_interval", "admm_per_epoch", "warm_start", "gamma", "gamma_growth", "gamma_max",
            "gamma_restart_after", "gamma_restart_growth", "alpha_lr")

    def schedule(name):  # a schedule without a setting leaves MethodConfig's default
        out = {k: getattr(MethodConfig(), k) for k in keys}
        out.update({k: v for k, v in ADMM_SCHEDULES[name].items() if k not in TRAINING_KEYS})
        assert set(out) == set(keys), (name, sorted(out))
        return out

    scratch = method_config("scratch", "--method", "admm")
    assert {k: scratch[k] for k in keys} == schedule("paper")
    trained = method_config("trained", "--method", "admm", "--init-from", fp)  # --qset pm1, the default
    assert {k: trained[k] for k in keys} == schedule("trained-adam")
    for qset, tying in (("0pm1", "layer"), ("pm12", "layer"), ("pm124", "node")):
        larger = method_config(f"larger_{qset}", "--method", "admm", "--init-from", fp, "--qset", qset, "--tying",
                               tying)
        assert {k: larger[k] for k in keys} == schedule("trained-adam"), qset
    sgd = method_config("sgd_schedule", "--method", "admm", "--init-from", fp, "--admm-schedule", "trained")
    assert {k: sgd[k] for k in keys} == schedule("trained")
    for name in ADMM_SCHEDULES:  # every named schedule is stated per epoch, not in one corpus's mini-batches
        assert ADMM_SCHEDULES[name]["admm_per_epoch"] > 0 and ADMM_SCHEDULES[name]["admm_interval"] == 0, name
    for name in ("trained", "trained-adam"):
        assert ADMM_SCHEDULES[name]["warm_start"] == "quantized"
    paper = method_config("paper", "--method", "admm", "--init-from", fp, "--admm-schedule", "paper")
    assert {k: paper[k] for k in keys} == schedule("paper")
    mixed = method_config("mixed", "--method", "admm", "--init-from", fp, "--gamma", "0.02", "--admm-interval",
                          "epoch", "--warm-start", "none")
    assert (mixed["gamma"], mixed["admm_interval"], mixed["admm_per_epoch"], mixed["warm_start"]) == \
        (0.02, 0, 1, "none")
    assert {k: mixed[k] for k in ("gamma_growth", "gamma_max")} == \
        {k: schedule("trained-adam")[k] for k in ("gamma_growth", "gamma_max")}  # pm1: trained-adam's γ growth
    # --gamma-restart-after counts epochs under an epoch-unit schedule, so a fraction of one is a setting
    frac = method_config("restart_frac", "--method", "admm", "--init-from", fp, "--gamma-restart-after", "2.5")
    assert (frac["gamma_restart_after"], frac["admm_per_epoch"]) == (2.5, schedule("trained-adam")["admm_per_epoch"])

    # the optimizer: Adam at the schedule's rate under trained-adam; SGD otherwise, which with --init-from
    # starts at the rate the checkpoint's best epoch was trained with; --optimizer and --lr win, and the
    # schedule's rate is for its own optimizer and method (Adam elsewhere starts at ADAM_LR)
    def optimisation(name, *extra):
        if extra:
            method_config(name, *extra)
        tc = read_checkpoint(tmp_path / name / "last.pt")["train_config"]
        return tc["optimizer"], tc["lr"]

    assert ADMM_SCHEDULES["trained-adam"]["optimizer"] == "adam" and ADMM_SCHEDULES["trained-adam"]["lr"] != ADAM_LR
    assert optimisation("trained") == ("adam", ADMM_SCHEDULES["trained-adam"]["lr"])
    assert optimisation("larger_pm124") == optimisation("larger_0pm1") == ("adam", ADMM_SCHEDULES["trained-adam"]["lr"])
    assert optimisation("sgd_schedule") == ("sgd", 0.5)
    assert optimisation("scratch") == ("sgd", 1.0)
    assert optimisation("paper") == ("sgd", 0.5)
    assert optimisation("given_lr", "--method", "admm", "--init-from", fp, "--lr", "0.3") == ("adam", 0.3)
    assert optimisation("sgd", "--method", "admm", "--init-from", fp, "--optimizer", "sgd") == ("sgd", 0.5)
    assert optimisation("binlin", "--method", "bin-lin", "--init-from", fp) == ("sgd", 0.5)
    assert optimisation("fp_adam", "--init-from", fp, "--optimizer", "adam") == ("adam", ADAM_LR)
    assert optimisation("binlin_adam", "--method", "bin-lin", "--init-from", fp, "--optimizer", "adam") == \
        ("adam", ADAM_LR)
    # trained-adam halves Adam's rate when an epoch gains under 1 %; the others keep 0.3 %; --min-improvement wins
    def stall(name, *extra):
        if extra:
            method_config(name, *extra)
        return read_checkpoint(tmp_path / name / "last.pt")["train_config"]["min_improvement"]

    assert stall("trained") == ADMM_SCHEDULES["trained-adam"]["min_improvement"] == 0.01
    assert stall("larger_pm124") == 0.01 and stall("sgd_schedule") == stall("paper") == stall("binlin") == 0.003
    assert stall("given_stall", "--method", "admm", "--init-from", fp, "--min-improvement", "0.05") == 0.05
    trained_ckpt = read_checkpoint(tmp_path / "trained" / "last.pt")
    assert all("exp_avg" in st for st in trained_ckpt["optimizer"]["state"].values())  # Adam really ran
    # trained-adam's penalty starts loose and grows per epoch up to a cap; one epoch of 2 mini-batches here, so
    # (more iterations per epoch than mini-batches) one ADMM iteration after each, the last at t = 1 epoch
    sched, admm_state = ADMM_SCHEDULES["trained-adam"], trained_ckpt["method_state"]
    assert sched["gamma_growth"] > 1 and sched["gamma_max"] > sched["gamma"], sched
    assert int(admm_state["iteration"]) == 2
    assert sched["gamma_restart_after"] == 0 or sched["gamma_restart_after"] > 1  # before any second warm-up
    assert float(admm_state["gamma"]) == pytest.approx(min(sched["gamma"] * sched["gamma_growth"], sched["gamma_max"]))


def test_finishing_lr_is_the_best_epochs_rate():
    from rescorer.train.config import finishing_lr

    log = [{"epoch": 1, "lr": 1.0}, {"epoch": 2, "lr": 0.5}, {"epoch": 3, "lr": 0.25}]
    assert finishing_lr({"trainer": {"best_epoch": 1, "lr": 0.125}, "log": log}) == 0.5
    assert finishing_lr({"trainer": {"best_epoch": 2}, "log": log}) == 0.25
    assert finishing_lr({"trainer": {}, "log": log}) is None  # imported models have no log
    assert finishing_lr({}) is None


def test_cli_dropout_default_with_init_from(ptb_slice, tmp_path):
    """Dropout: 0 from scratch; with --init-from the checkpoint's own, raised to 0.3 for a quantized
    method (the checkpoint's shape stays); an explicit --dropout wins."""
    from rescorer.train.config import QUANTIZED_INIT_DROPOUT

    def model_config(name, *extra):
        return tiny_cli_run(ptb_slice, tmp_path / name, *extra)["model_config"]

    assert model_config("fp")["dropout"] == 0.0
    fp = str(tmp_path / "fp" / "best.pt")
    assert model_config("refit", "--init-from", fp)["dropout"] == 0.0
    admm = model_config("admm", "--method", "admm", "--init-from", fp, "--embed-dim", "16")
    assert (admm["dropout"], admm["embed_dim"]) == (QUANTIZED_INIT_DROPOUT, 8)
    assert model_config("binlin", "--method", "bin-lin", "--init-from", fp)["dropout"] == QUANTIZED_INIT_DROPOUT
    assert model_config("given", "--method", "admm", "--init-from", fp, "--dropout", "0.1")["dropout"] == 0.1
    dropped = str(tmp_path / "given" / "best.pt")  # a checkpoint with dropout 0.1 of its own
    assert model_config("own", "--init-from", dropped)["dropout"] == 0.1


def test_optimizer_setting_is_checked_and_old_configs_mean_sgd(ptb_slice):
    from rescorer.errors import AdmmqError
    from rescorer.train.config import TrainConfig

    with pytest.raises(AdmmqError, match="optimizer must be one of"):
        cfg_for(ptb_slice, optimizer="rmsprop")
    with pytest.raises(AdmmqError, match="momentum 0.9 is an SGD setting"):
        cfg_for(ptb_slice, optimizer="adam", momentum=0.9)
    old = cfg_for(ptb_slice).to_dict()
    del old["optimizer"]  # a checkpoint from before --optimizer
    assert TrainConfig.from_dict(old).optimizer == "sgd"
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert isinstance(cfg_for(ptb_slice, optimizer="adam", lr=0.01).build_optimizer(params), torch.optim.Adam)
    sgd = cfg_for(ptb_slice, momentum=0.5).build_optimizer(params)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.5


def test_schedule_help_follows_the_table(monkeypatch):
    """`--admm-schedule`'s help is made from ADMM_SCHEDULES, so a changed default changes the help."""
    import rescorer.quant.method as method
    from rescorer.quant.method import describe_schedule

    text = describe_schedule("trained-adam")
    assert text.startswith("80 per epoch, warm start, Adam at 1e-2, γ from 5e-4 growing ×1.9 per epoch to 0.1"), text
    assert "after 6 epochs growing ×5.4 per epoch" in text and "under 1%" in text, text
    assert "α's factor trained at 1e-2" in text and "factor" not in describe_schedule("trained"), text
    assert describe_schedule("paper") == "one ADMM iteration per epoch, SGD, γ 3e-3, fixed"
    changed = dict(method.ADMM_SCHEDULES["trained-adam"], gamma_growth=1.4, gamma_restart_after=0)
    monkeypatch.setitem(method.ADMM_SCHEDULES, "trained-adam", changed)
    text = describe_schedule("trained-adam")
    assert "×1.4 per epoch" in text and "started again" not in text, text
