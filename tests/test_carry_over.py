"""Cross-sentence LSTM state (rescorer.lm.carry_over): the carried states and the scores started from them
equal a plain sequential run of the model over the chain, on both scoring paths, in one batched pass."""

import numpy as np
import pytest
import torch

from rescorer.lm.carry_over import History, SentenceContext, history_states
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.lm.scoring import NeuralScorer
from rescorer.lm.vocab import Vocab
from tests.test_log_normalizer import CAN_BUILD

WORDS = "the a cat dog sat ran on mat".split()


def model_and_vocab(sent_boundary=None, pad_word=False, layers=2):
    v = Vocab((["<eps>"] if pad_word else []) + WORDS, sent_boundary=sent_boundary)
    torch.manual_seed(3)
    m = LSTMLM(ModelConfig(vocab_size=len(v), embed_dim=12, hidden_dim=12, layers=layers))
    with torch.no_grad():  # large weights: the carried state changes the scores a lot
        for p in m.parameters():
            p.uniform_(-1.0, 1.0)
    return m.eval(), v


@torch.no_grad()
def reference_logprob(m, v, sentence, chain, history, kaldi=False):
    """ln P(sentence) from the state left by reading the history entries ``chain`` in order (nn.LSTM)."""
    state = None
    for k in chain:
        ids = [v.bos_id] + [v.index(w) for w in history.words[k]]
        if kaldi:
            ids += [v.index_of.get("<eps>", 0)] * (int(history.pad_to[k]) - len(ids))
        elif v.sent_boundary is None:
            ids.append(v.eos_id)
        _, state = m(torch.tensor([ids]), state)
    inputs = [v.bos_id] + [v.index(w) for w in sentence]
    targets = [v.index(w) for w in sentence] + [v.eos_id]
    nll, _ = m.token_nll(torch.tensor([inputs]), torch.tensor([targets]), state)
    return -float(nll.double().sum())


def chain_of(history, k):
    out = []
    while k >= 0:
        out.append(k)
        k = int(history.after[k])
    return out[::-1]


HIST = History((("the", "cat", "sat"), ("a", "dog"), ("on", "the", "mat"), (), ("cat",), ("dog", "ran")),
               np.array([-1, 0, 1, -1, 3, -1]), np.array([5, 3, 6, 2, 4, 3]))
SENTS = [("the", "cat"), ("the", "cat"), ("the", "cat", "ran"), (), ("dog",), ("the", "cat"), ("a", "mat", "on")]
START = np.array([-1, 0, 0, 2, 4, 5, 1])


@pytest.mark.parametrize("native", [None, False])  # None: the compiled kernels where they load; False: PyTorch
@pytest.mark.parametrize("prefix_sharing", [True, False])
@pytest.mark.parametrize("boundary,kaldi", [(None, False), ("<eos>", False), (None, True)])
def test_scores_equal_a_sequential_run_over_the_chain(prefix_sharing, boundary, kaldi, native, one_torch_thread):
    m, v = model_and_vocab(boundary, pad_word=kaldi)
    hist = History(HIST.words, HIST.after, HIST.pad_to, kaldi)
    scorer = NeuralScorer(m, v, prefix_sharing=prefix_sharing, native=native)
    if native is False or CAN_BUILD:  # which stepper ran the history and the trees
        assert type(scorer.step_lm).__name__ == ("StepLM" if native is False else "KernelStep")
    got = scorer.score(SENTS, context=SentenceContext(hist, START)).totals()
    want = np.array([reference_logprob(m, v, s, chain_of(hist, k), hist, kaldi) for s, k in zip(SENTS, START)])
    assert np.abs(got - want).max() < 1e-4
    zero = scorer.score(SENTS).totals()
    assert np.abs(got - zero)[START >= 0].min() > 1e-2  # every carried state mattered
    assert np.abs(got - zero)[START < 0].max() < 1e-5  # from zeros: the plain scores


def test_inputs_read_the_end_symbol_only_for_two_symbol_models():
    """A model with its own </s> reads '<s> w </s>' between sentences; one boundary symbol is read once."""
    for boundary, extra in ((None, 1), ("<s>", 0)):
        m, v = model_and_vocab(boundary)
        scorer = NeuralScorer(m, v)
        hist = History((("the", "cat"),), np.array([-1]), np.array([3]))
        scorer.score([("a",)], context=SentenceContext(hist, np.array([0])))
        assert scorer.stats.history_steps == 3 + extra


def test_kaldi_rule_reads_the_padding():
    m, v = model_and_vocab(pad_word=True)
    hist = History((("the", "cat"),), np.array([-1]), np.array([6]), kaldi=True)
    scorer = NeuralScorer(m, v)
    padded = scorer.score([("a",)], context=SentenceContext(hist, np.array([0]))).totals()
    assert scorer.stats.history_steps == 6  # <s> the cat <eps> <eps> <eps>
    unpadded = NeuralScorer(m, v).score([("a",)], context=SentenceContext(
        History(hist.words, hist.after, np.array([3]), kaldi=True), np.array([0]))).totals()
    assert abs(padded[0] - unpadded[0]) > 1e-3


@pytest.mark.parametrize("native", [False, True])
def test_one_batched_pass_over_chain_depth_not_per_utterance(native):
    """40 chains of 10 utterances: one LSTM call per chain depth (10), or, for a model that runs its native
    cell, one step call per depth and position over all chains at once (<= 10 x 9, not 400 x 7)."""
    m, v = model_and_vocab()
    m.native_lstm = native
    rng = np.random.default_rng(0)
    words = tuple(tuple(rng.choice(WORDS, size=rng.integers(3, 8))) for _ in range(400))
    after = np.array([k - 40 if k >= 40 else -1 for k in range(400)])  # chain c: entries c, c+40, c+80, ...
    hist = History(words, after, np.zeros(400, dtype=np.int64))
    from rescorer.lm.step_lm import StepLM
    step = StepLM(m)
    steps_called, lstm_called = [], []
    original = step.step
    step.step = lambda tokens, prev, parents: steps_called.append(int(tokens.size)) or original(tokens, prev, parents)
    hook = m.lstm.register_forward_hook(lambda mod, inp, out: lstm_called.append(1))
    (h, c), steps = history_states(step, v, hist, np.arange(400))
    hook.remove()
    lengths = np.array([len(w) + 2 for w in words])
    assert steps == lengths.sum()
    if native:
        assert sum(steps_called) == steps and not lstm_called
        assert len(steps_called) == sum(lengths[d * 40:(d + 1) * 40].max() for d in range(10))
    else:
        assert len(lstm_called) == 10 and not steps_called
    k = 399  # the last entry of chain 39: its state equals reading the whole chain in one sequence
    ids = [i for j in chain_of(hist, k) for i in [v.bos_id] + [v.index(w) for w in words[j]] + [v.eos_id]]
    m.native_lstm = False
    with torch.no_grad():
        _, (href, cref) = m(torch.tensor([ids]))
    assert torch.allclose(h[:, k + 1], href[:, 0], atol=1e-5) and torch.allclose(c[:, k + 1], cref[:, 0], atol=1e-5)


def test_restrict_keeps_what_the_sentences_need_and_concat_offsets():
    sub, start = HIST.restrict(np.array([2, -1]))
    assert sub.words == HIST.words[:3] and list(sub.after) == [-1, 0, 1] and list(start) == [2, -1]
    both, offsets = History.concat([sub, HIST])
    assert offsets == [0, 3] and len(both) == 9 and list(both.after[3:]) == [-1, 3, 4, -1, 6, -1]
    with pytest.raises(AssertionError):
        History((("a",), ("b",)), np.array([1, -1]), np.zeros(2, dtype=np.int64))  # an entry before its parent


@pytest.mark.skipif(not CAN_BUILD, reason="needs a C compiler and an AVX2/FMA CPU")
@pytest.mark.parametrize("kaldi", [False, True])
def test_the_torch_free_kernel_scorer_carries_the_state(tmp_path, kaldi):
    """What 'admmq rescore --carry-over' builds on the CPU kernels (numpy weights, KernelScorer): numpy
    start-state tables, the same scores as the sequential PyTorch reference."""
    from rescorer.lm.kernel_scorer import KernelScorer
    from rescorer.lm.word_scores import NeuralOptions
    from rescorer.ngram.scorers import kernel_scorer_for
    from rescorer.pack.checkpoint import save_checkpoint

    m, v = model_and_vocab(pad_word=kaldi)
    path = tmp_path / "fp.pt"
    save_checkpoint(path, {"model_config": m.cfg.to_dict(), "units": v.to_state(), "model": m.state_dict(),
                           "method_config": {"method": "fp"}})
    scorer = kernel_scorer_for(path, NeuralOptions(threads=1), "cpu", 8192)
    assert isinstance(scorer, KernelScorer)
    hist = History(HIST.words, HIST.after, HIST.pad_to, kaldi)
    got = scorer.score(SENTS, context=SentenceContext(hist, START)).totals()
    assert isinstance(scorer._history[1][0], np.ndarray) and scorer.stats.history_steps > 0
    want = np.array([reference_logprob(m, v, s, chain_of(hist, k), hist, kaldi) for s, k in zip(SENTS, START)])
    assert np.abs(got - want).max() < 1e-4, np.abs(got - want).max()
