"""The default scoring path (prefix-shared, fused log-normaliser) equals the reference forward pass.

The reference is the model's own ``forward`` + ``log_softmax`` in float64, one padded batch
(``corpus_unit_nll`` on a float64 copy).  Checked on real ptb-tts hypotheses and PTB sentences, for
fp32 and packed low-bit models, 1 and 2 layers, with and without the compiled kernel:
within 1e-4 nats per sentence.
"""

import copy

import numpy as np
import pytest
import torch

from rescorer.lm import native_kernel
from rescorer.lm.corpus import encode_sentences
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.lm.scoring import NeuralScorer, corpus_unit_nll
from rescorer.lm.vocab import Vocab
from rescorer.nbest.kaldi_dir import read_nbest
from rescorer.pack.lm_file import export_packed, load_lm
from tests.conftest import NBEST_DIR, ptb_lines
from tests.packed_models import make_quantized_checkpoint
from tests.test_log_normalizer import CAN_BUILD

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

TRAIN = [line.split() for line in ptb_lines("train", 3000)]
VOCAB = Vocab.build(TRAIN)  # ~6k words: several kernel panels and PyTorch chunks


def sentences():
    """Real n-best hypotheses (ptb-tts test, OOV words included, duplicates and shared prefixes) and PTB text."""
    nb = read_nbest(NBEST_DIR / "test")
    hyps = list(nb.words[: nb.offsets[4]])
    return hyps + [tuple(line.split()) for line in ptb_lines("valid", 60)] + [()]


def reference(model: LSTMLM, units, sents) -> np.ndarray:
    """ln P(words </s>) per sentence by the model's own forward pass, in float64."""
    m = copy.deepcopy(model).double()
    per = corpus_unit_nll(m, encode_sentences(units, sents), units.bos_id, units.eos_id, batch_tokens=4096)
    return -np.array([p.sum() for p in per])


@pytest.fixture(params=["kernel", "pytorch"])
def path(request, monkeypatch):
    if request.param == "kernel" and not CAN_BUILD:
        pytest.skip("needs a C compiler and an AVX2/FMA CPU")
    if request.param == "pytorch":
        monkeypatch.setenv("ADMMQ_NATIVE", "0")
    native_kernel.reset()
    yield request.param
    native_kernel.reset()


def trained_like(layers: int, dim: int = 48) -> LSTMLM:
    """A model whose output layer is far from uniform (larger weights than the init), like a trained one."""
    torch.manual_seed(layers)
    m = LSTMLM(ModelConfig(vocab_size=len(VOCAB), embed_dim=dim, hidden_dim=dim, layers=layers)).eval()
    with torch.no_grad():
        m.decoder.weight.mul_(20.0)
        m.decoder.bias.normal_(0.0, 2.0)
    return m


@pytest.mark.parametrize("layers,dim", [(1, 48), (2, 30)])  # 30: gates padded to 16 columns, an 8-lane tail
def test_fp32_default_path_equals_the_reference_forward_pass(path, layers, dim):
    model = trained_like(layers, dim)
    sents = sentences()
    scorer = NeuralScorer(model, VOCAB)
    got = scorer.score(sents).totals()
    want = reference(model, VOCAB, sents)
    assert np.abs(got - want).max() <= 1e-4, np.abs(got - want).max()
    assert ("fused" in scorer.describe()) == (path == "kernel")
    assert scorer.stats.output_seconds > 0 and scorer.stats.lstm_seconds > 0


@pytest.mark.parametrize("scheme", ["binary", "pow2", "pow4"])
def test_packed_low_bit_default_path_equals_the_reference_forward_pass(path, tmp_path, scheme):
    make_quantized_checkpoint(tmp_path / "q.pt", VOCAB.symbols[2:-1], scheme=scheme, tying="node", dim=40)
    export_packed(tmp_path / "q.pt", tmp_path / "q.packed")
    lm = load_lm(tmp_path / "q.packed")
    sents = sentences()
    got = NeuralScorer(lm.model, lm.units, quantized=lm.quantized).score(sents).totals()
    want = reference(lm.model, lm.units, sents)
    assert np.abs(got - want).max() <= 1e-4, np.abs(got - want).max()


def test_without_the_normaliser_a_word_costs_its_logit(path):
    model = trained_like(1)
    sents = sentences()[:150]
    got = NeuralScorer(model, VOCAB, normalize=False).score(sents)
    m = copy.deepcopy(model).double()
    for i in (0, 7, 120, len(sents) - 1):
        ids = VOCAB.encode_sentence(sents[i]).tolist()
        h, _ = m(torch.tensor([[VOCAB.bos_id] + ids]))
        logits = m.logits(h[0])
        want = logits[torch.arange(len(ids) + 1), torch.tensor(ids + [VOCAB.eos_id])].detach().numpy()
        assert np.abs(got.sentence(i) - want).max() <= 1e-4, i
    normalised = NeuralScorer(model, VOCAB).score(sents).totals()
    assert np.abs(got.totals() - normalised).max() > 1.0  # this model is not self-normalised


@pytest.mark.skipif(not CAN_BUILD, reason="needs a C compiler and an AVX2/FMA CPU")
@pytest.mark.parametrize("scheme", [None, "binary", "pow4"])
def test_the_scorer_loaded_without_torch_equals_the_reference(tmp_path, monkeypatch, scheme):
    """What 'admmq rescore' builds on the CPU kernels: weights read by numpy, KernelScorer."""
    from rescorer.lm.kernel_scorer import KernelScorer
    from rescorer.lm.word_scores import NeuralOptions
    from rescorer.ngram.scorers import kernel_scorer_for
    from rescorer.pack.checkpoint import save_checkpoint

    native_kernel.reset()
    if scheme is None:
        model = trained_like(2, 24)
        path = tmp_path / "fp.pt"
        save_checkpoint(path, {"model_config": model.cfg.to_dict(), "units": VOCAB.to_state(),
                               "model": model.state_dict(), "method_config": {"method": "fp"}})
    else:
        make_quantized_checkpoint(tmp_path / "q.pt", VOCAB.symbols[2:-1], scheme=scheme, tying="node", dim=40)
        export_packed(tmp_path / "q.pt", tmp_path / "q.packed")
        path = tmp_path / "q.packed"
    scorer = kernel_scorer_for(path, NeuralOptions(threads=1), "cpu", 8192)
    assert isinstance(scorer, KernelScorer)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert kernel_scorer_for(path, NeuralOptions(threads=0), "cpu", 8192) is None  # PyTorch's threads: its path
    assert kernel_scorer_for(path, NeuralOptions(int8=True), "cpu", 8192) is None
    lm = load_lm(path)
    sents = sentences()
    got = scorer.score(sents).totals()
    want = reference(lm.model, lm.units, sents)
    assert np.abs(got - want).max() <= 1e-4, np.abs(got - want).max()
