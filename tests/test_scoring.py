import numpy as np
import torch

from rescorer.lm.batching import IGNORE, make_batch
from rescorer.lm.corpus import encode_sentences
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.lm.scoring import NeuralScorer
from rescorer.lm.subword import SubwordUnits
from rescorer.lm.vocab import Vocab
from tests.conftest import ptb_lines

SENTS = [line.split() for line in ptb_lines("valid", 40)]


def model_for(units, seed=0):
    torch.manual_seed(seed)
    return LSTMLM(ModelConfig(vocab_size=len(units), embed_dim=16, hidden_dim=16)).eval()


def manual_logprobs(model, units, words):
    """Score one sentence step by step, carrying the state by hand."""
    ids = [units.bos_id] + units.encode_sentence(words).tolist() + [units.eos_id]
    state = None
    out = []
    with torch.no_grad():
        for a, b in zip(ids[:-1], ids[1:]):
            h, state = model(torch.tensor([[a]]), state)
            out.append(torch.log_softmax(model.logits(h[0, 0]).double(), -1)[b].item())
    return np.array(out)


def test_padding_never_leaks_into_scores():
    v = Vocab.build(SENTS)
    m = model_for(v)
    corpus = encode_sentences(v, SENTS[:10])
    batch = make_batch(corpus, list(range(10)), v.bos_id, v.eos_id)
    assert (batch.targets == IGNORE).sum() > 0  # the batch really is padded
    with torch.no_grad():
        nll, _ = m.token_nll(batch.inputs, batch.targets)
    for i in range(10):
        one = make_batch(corpus, [i], v.bos_id, v.eos_id)
        with torch.no_grad():
            nll1, _ = m.token_nll(one.inputs, one.targets)
        n = corpus.sentence(i).size + 1
        assert torch.allclose(nll[i, :n], nll1[0, :n], atol=1e-5)
        assert (nll[i, n:] == 0).all()


def test_scores_equal_step_by_step_and_do_not_depend_on_batching():
    v = Vocab.build(SENTS[5:])  # some words of SENTS[:5] are OOV
    m = model_for(v)
    big = NeuralScorer(m, v, batch_tokens=100000).score(SENTS)
    tiny = NeuralScorer(m, v, batch_tokens=16).score(SENTS)
    assert np.allclose(big.logprob, tiny.logprob, atol=1e-5)
    for i in (0, 3, 17):
        assert np.allclose(big.sentence(i), manual_logprobs(m, v, SENTS[i]), atol=1e-5)
    assert big.oov.sum() == sum(v.is_oov(w) for s in SENTS for w in s) > 0
    assert np.allclose(big.totals(), [big.sentence(i).sum() for i in range(len(SENTS))])


def test_dedup_gives_identical_scores():
    v = Vocab.build(SENTS)
    m = model_for(v)
    sents = SENTS[:5] + SENTS[:5] + [[]]
    a = NeuralScorer(m, v).score(sents, dedup=True)
    b = NeuralScorer(m, v).score(sents, dedup=False)
    assert np.allclose(a.logprob, b.logprob, atol=1e-6)
    assert np.allclose(a.totals()[:5], a.totals()[5:10])
    assert a.sentence(10).size == 1  # the empty sentence has only </s>


def test_subword_scores_are_per_word_sums():
    units = SubwordUnits.train(SENTS, vocab_size=200)
    m = model_for(units)
    s = NeuralScorer(m, units).score(SENTS[:6])
    for i in range(6):
        pieces = manual_logprobs(m, units, SENTS[i])
        counts = units.units_per_word(SENTS[i])
        assert s.sentence(i).size == len(SENTS[i]) + 1
        assert np.isclose(s.sentence(i).sum(), pieces.sum(), atol=1e-4)
        assert np.isclose(s.sentence(i)[0], pieces[: counts[0]].sum(), atol=1e-5)
