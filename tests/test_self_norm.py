"""Self-normalised training (``admmq train --self-norm A``): CE + A (log Z)^2 drives log Z towards 0."""

import pytest
import torch

from rescorer.fileio import read_sentences
from rescorer.lm.corpus import encode_sentences
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.pack.checkpoint import read_checkpoint
from rescorer.pack.lm_file import load_lm
from rescorer.train.loop import TrainConfig, train

SMALL = ModelConfig(vocab_size=0, embed_dim=16, hidden_dim=16)


def test_the_penalty_changes_the_gradient_not_the_reported_loss():
    torch.manual_seed(0)
    m = LSTMLM(ModelConfig(vocab_size=60, embed_dim=8, hidden_dim=8))
    x, y = torch.randint(0, 60, (4, 7)), torch.randint(0, 59, (4, 7))
    y[0, 5:] = -100  # padding
    plain, _ = m.loss(x, y)
    m.log_z_penalty = 0.3
    penalised, _ = m.loss(x, y)
    assert abs(float(penalised.detach()) - float(plain.detach())) <= 1e-4 * float(plain.detach())
    penalised.backward()
    got = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    h, _ = m(x)
    keep = y != -100
    logits = m.logits(h[keep])
    log_z = torch.logsumexp(logits, -1)
    (torch.nn.functional.cross_entropy(logits, y[keep], reduction="sum") + 0.3 * (log_z ** 2).sum()).backward()
    for n, p in m.named_parameters():
        assert torch.allclose(got[n], p.grad, atol=1e-5), n


def mean_square_log_z(path, text) -> float:
    lm = load_lm(path)
    corpus = encode_sentences(lm.units, [s.words for s in read_sentences(text)][:60])
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(len(corpus)):
            ids = corpus.sentence(i).tolist()
            h, _ = lm.model(torch.tensor([[lm.units.bos_id] + ids]))
            log_z = torch.logsumexp(lm.model.logits(h[0]), -1)
            total += float((log_z ** 2).sum())
            count += log_z.numel()
    return total / count


@pytest.mark.usefixtures("one_torch_thread")
def test_self_norm_training_brings_log_z_to_zero(ptb_slice, tmp_path):
    runs = {}
    for a in (0.0, 1.0):
        cfg = TrainConfig(train=str(ptb_slice / "train.txt"), valid=str(ptb_slice / "valid.txt"), epochs=2,
                          batch_size=10, lr=1.0, device="cpu", seed=3, schedule="constant", self_norm=a)
        res = train(tmp_path / f"a{a}", cfg, SMALL, quiet=True)
        runs[a] = (mean_square_log_z(tmp_path / f"a{a}" / "best.pt", ptb_slice / "valid.txt"), res.best_valid_ppl)
    (plain_z2, plain_ppl), (sn_z2, sn_ppl) = runs[0.0], runs[1.0]
    assert plain_z2 > 4.0  # an ordinary LM's normaliser is far from 1 ...
    # ... a self-normalised one's near it: 8x closer on one CPU, 10x+ on another (two epochs at lr 1 on a slice
    # follow the floating-point path), so the bar is 4x, which a broken penalty (ratio about 1) cannot pass
    assert sn_z2 < 0.25 * plain_z2, (sn_z2, plain_z2)
    assert sn_ppl < float("inf")  # (its perplexity cost is measured on all of PTB: docs/speed.md)
    stored = read_checkpoint(tmp_path / "a1.0" / "best.pt")
    assert stored["train_config"]["self_norm"] == 1.0
    from rescorer.pack.lm_file import export_packed
    export_packed(tmp_path / "a1.0" / "best.pt", tmp_path / "sn.packed")  # the packed file says so too
    assert load_lm(tmp_path / "sn.packed").self_norm == 1.0 == load_lm(tmp_path / "a1.0").self_norm
    assert load_lm(tmp_path / "a0.0").self_norm == 0.0
    with pytest.raises(Exception, match="--self-norm must be >= 0"):
        TrainConfig(train="t", valid="v", self_norm=-1.0)


def test_a_run_from_a_trained_model_starts_with_log_z_centred_and_the_same_probabilities():
    from rescorer.lm.vocab import Vocab
    from rescorer.train.self_norm import centre_log_z
    from tests.conftest import ptb_lines

    sents = [line.split() for line in ptb_lines("train", 120)]
    vocab = Vocab.build(sents)
    torch.manual_seed(1)
    m = LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=12, hidden_dim=12)).eval()
    with torch.no_grad():
        m.decoder.bias.add_(3.0)
    corpus = encode_sentences(vocab, sents)
    x = torch.tensor([[vocab.bos_id] + corpus.sentence(0).tolist()])
    y = torch.tensor([corpus.sentence(0).tolist() + [vocab.eos_id]])
    before, _ = m.token_nll(x, y)
    said = []
    shift = centre_log_z(m, corpus, vocab, said.append, sentences=50)
    assert len(said) == 1 and "normalised model is unchanged" in said[0]
    after, _ = m.token_nll(x, y)
    assert torch.allclose(before, after, atol=1e-5) and shift > 3.0
    with torch.no_grad():
        h, _ = m(x)
        assert abs(float(torch.logsumexp(m.logits(h[0]), -1).mean())) < 1.0  # was about shift before
