"""Knowledge distillation (``admmq train --teacher``): the objective, its gradient, and runs with it."""

import math

import pytest
import torch
import torch.nn.functional as F

from rescorer.errors import AdmmqError, MismatchError
from rescorer.lm.batching import make_batch
from rescorer.lm.corpus import load_corpus
from rescorer.lm.distillation import distillation_loss
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.pack.checkpoint import read_checkpoint
from rescorer.quant import MethodConfig
from rescorer.train.loop import train

from quant_helpers import SMALL, cfg_for, slice_vocab


def batch_of(ptb_slice, n=6):
    vocab = slice_vocab(ptb_slice)
    corpus = load_corpus(vocab, ptb_slice / "train.txt")
    return vocab, make_batch(corpus, list(range(n)), vocab.bos_id, vocab.eos_id)


def models(vocab, seeds=(1, 2)):
    out = []
    for seed in seeds:
        torch.manual_seed(seed)
        out.append(LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=8, hidden_dim=8)).eval())
    return out


def test_objective_mixes_data_and_teacher_cross_entropy(ptb_slice):
    """β = 0: the data's cross entropy; β = 1: Σ_t Σ_v −p_T(v|h_t) log p_S(v|h_t), checked position by position."""
    vocab, batch = batch_of(ptb_slice)
    student, teacher = models(vocab)
    ce_ref, _ = student.loss(batch.inputs, batch.targets)
    obj0, ce0, _ = distillation_loss(student, teacher, batch.inputs, batch.targets, 0.0)
    assert float(obj0.detach()) == pytest.approx(float(ce_ref), rel=1e-6) and float(ce0.detach()) == pytest.approx(float(ce_ref), rel=1e-6)
    obj1, ce1, _ = distillation_loss(student, teacher, batch.inputs, batch.targets, 1.0)
    hs, _ = student(batch.inputs)
    ht, _ = teacher(batch.inputs)
    soft = 0.0
    for b in range(batch.targets.shape[0]):
        for t in range(batch.targets.shape[1]):
            if int(batch.targets[b, t]) < 0:
                continue
            p_t = F.softmax(teacher.logits(ht[b, t]), -1)
            soft -= float((p_t * F.log_softmax(student.logits(hs[b, t]), -1)).sum())
    assert float(obj1) == pytest.approx(soft, rel=1e-5)
    assert float(ce1) == pytest.approx(float(ce_ref), rel=1e-6)  # the reported loss stays the data's
    obj_half, _, _ = distillation_loss(student, teacher, batch.inputs, batch.targets, 0.5)
    assert float(obj_half) == pytest.approx(0.5 * float(ce_ref) + 0.5 * soft, rel=1e-5)
    with pytest.raises(AssertionError):
        distillation_loss(student, teacher, batch.inputs, batch.targets, 1.5)


def test_a_student_equal_to_its_teacher_gets_no_gradient_from_it(ptb_slice):
    """At p_S = p_T the soft-target term is at its minimum over the student's logits: zero gradient."""
    vocab, batch = batch_of(ptb_slice)
    student, _ = models(vocab)
    teacher = LSTMLM(student.cfg).eval()
    teacher.load_state_dict(student.state_dict())

    def largest_gradient(teacher_model, weight):
        student.zero_grad()
        obj, _, _ = distillation_loss(student, teacher_model, batch.inputs, batch.targets, weight)
        obj.backward()
        return max(float(p.grad.abs().max()) for p in student.parameters() if p.grad is not None)

    data = largest_gradient(teacher, 0.0)  # the data's cross entropy alone
    same = largest_gradient(teacher, 1.0)
    other = largest_gradient(models(vocab, (5,))[0], 1.0)  # a different teacher does pull
    assert same < 1e-4 * data, (same, data)
    assert other > 100 * same, (other, same)


def test_distilled_quantized_run_resumes_exactly_and_checks_the_teacher(ptb_slice, tmp_path, monkeypatch):
    """``--teacher`` with ADMM from the teacher's weights: a killed run resumes to the same weights; a teacher
    with another vocabulary is refused before anything is written."""
    from quant_helpers import admm_run_killed_and_resumed

    fp = tmp_path / "fp"
    train(fp, cfg_for(ptb_slice, epochs=1), SMALL, MethodConfig(), quiet=True)
    cfg = cfg_for(ptb_slice, epochs=2, save_every=15, init_from=str(fp / "best.pt"), teacher=str(fp / "best.pt"),
                  distill_weight=0.5, optimizer="adam", lr=5e-3)
    mcfg = MethodConfig(method="admm", qset="pm1", tying="layer", gamma=1e-3, admm_per_epoch=4,
                        warm_start="quantized")
    full, cut, step = admm_run_killed_and_resumed(tmp_path, cfg, SMALL, mcfg, monkeypatch, kill_at=40 + 18)
    assert step == 15
    for k, v in full["model"].items():
        assert torch.equal(v, cut["model"][k]), k
    assert [r["valid_ppl_q"] for r in full["log"]] == [r["valid_ppl_q"] for r in cut["log"]]
    assert full["train_config"]["teacher"] == str(fp / "best.pt")
    # the same run without the teacher ends elsewhere: the teacher was used
    train(tmp_path / "plain", cfg_for(ptb_slice, epochs=2, init_from=str(fp / "best.pt"), optimizer="adam",
                                      lr=5e-3), SMALL, mcfg, quiet=True)
    plain = read_checkpoint(tmp_path / "plain" / "last.pt")
    assert plain["log"][-1]["valid_ppl_q"] != full["log"][-1]["valid_ppl_q"]
    assert all(math.isfinite(r["train_ppl"]) for r in full["log"])
    # a teacher over other words
    other = tmp_path / "other_text"
    other.mkdir()
    (other / "train.txt").write_text("a b c\nb c d\n" * 20)
    train(tmp_path / "other", cfg_for(other, epochs=1, valid=str(ptb_slice / "valid.txt")), SMALL, MethodConfig(),
          quiet=True)
    bad = cfg_for(ptb_slice, epochs=1, teacher=str(tmp_path / "other" / "best.pt"), distill_weight=0.5)
    with pytest.raises(MismatchError, match="vocabulary"):
        train(tmp_path / "refused", bad, SMALL, MethodConfig(), quiet=True)
    assert not (tmp_path / "refused").exists()
    with pytest.raises(AdmmqError, match="distillation weight"):
        cfg_for(ptb_slice, distill_weight=2.0)


def test_quantizing_a_trained_model_distils_from_it_by_default(ptb_slice, tmp_path):
    """A quantized method with --init-from learns from that model (β 0.5); --distill-weight 0 turns it off;
    full-precision fine-tuning does not distil unless told; an explicit teacher wins."""
    from rescorer.train.options import DISTILL_WEIGHT, TrainOptions, resolve_options

    fp = tmp_path / "fp"
    train(fp, cfg_for(ptb_slice, epochs=1), SMALL, MethodConfig(), quiet=True)
    base = dict(train=str(ptb_slice / "train.txt"), valid=str(ptb_slice / "valid.txt"), init_from=str(fp))

    def distillation(**kw):
        cfg = resolve_options(TrainOptions(**{**base, **kw})).cfg
        return cfg.teacher, cfg.distill_weight

    for method in ("admm", "bin-lin", "bin"):
        assert distillation(method=method) == (str(fp), DISTILL_WEIGHT), method
    assert DISTILL_WEIGHT == 0.5
    assert distillation(method="admm", distill_weight=0.0) == (None, 0.0)
    assert distillation(method="admm", distill_weight=0.8) == (str(fp), 0.8)
    assert distillation(method="fp") == (None, 0.0)
    other = str(fp / "best.pt")
    assert distillation(method="fp", teacher=other) == (other, DISTILL_WEIGHT)
    assert distillation(method="admm", init_from=None) == (None, 0.0)  # from scratch: nothing to learn from
