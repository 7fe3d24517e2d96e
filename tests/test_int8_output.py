import numpy as np
import pytest
import torch

from rescorer.pack.lm_file import load_lm
from rescorer.errors import AdmmqError
from rescorer.lm.int8_output import (Int8Output, int8_rows, integer_levels, output_quantized_matrix,
                                     quantized_kernels_available)
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.pack.lm_file import export_packed
from rescorer.lm.quantized import QuantizedMatrix
from rescorer.lm.scoring import NeuralScorer
from tests.conftest import ptb_lines
from tests.packed_models import SETS, make_quantized_checkpoint, project_multibit, project_scaled

needs_kernels = pytest.mark.skipif(not quantized_kernels_available(), reason="no quantized CPU kernels in this torch")
WORDS = sorted({w for line in ptb_lines("train", 300) for w in line.split()})[:600]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def stacked_weights(q: QuantizedMatrix) -> torch.Tensor:
    """The int8 form of q, back to floats: sum over the K stacked blocks of ints * row scale."""
    ints, scales = int8_rows(q)
    R = q.shape[0]
    w = ints.double() * scales[:, None]
    return w.reshape(-1, R, q.shape[1]).sum(dim=0)


@pytest.mark.parametrize("scheme", sorted(SETS) + ["multibit2", "multibit3"])
@pytest.mark.parametrize("tying", ["layer", "node"])
def test_int8_codes_and_scales_are_the_dequantized_weights(scheme, tying):
    torch.manual_seed(0)
    w = torch.randn(40, 24)
    q = project_multibit(w, int(scheme[-1])) if scheme.startswith("multibit") else project_scaled(w, SETS[scheme], tying)
    ints, scales = int8_rows(q)
    assert ints.dtype == torch.int8 and ints.shape == (q.basis.shape[1] * 40, 24)
    assert int(ints.abs().max()) <= 127
    ref = q.dequantize().double()
    assert torch.allclose(stacked_weights(q), ref, rtol=1e-6, atol=1e-7), (scheme, tying)


def test_integer_levels_finds_a_common_step_or_none():
    q, s = integer_levels(torch.tensor([-1.5, -0.5, 0.5, 1.5]))
    assert q.tolist() == [-3, -1, 1, 3] and abs(s - 0.5) < 1e-12
    q, s = integer_levels(torch.tensor([-4.0, -1.0, 0.0, 2.0]))
    assert q.tolist() == [-4, -1, 0, 2] and s == 1.0
    assert integer_levels(torch.tensor([-1.0, 0.3141, 1.0])) is None  # no small integer grid: not exact
    assert int8_rows(QuantizedMatrix(torch.zeros(3, 4, dtype=torch.uint8), torch.tensor([[-1.0], [0.3141], [1.0]]),
                                     torch.ones(1, 1))) is None


def packed_lm(d, scheme):
    make_quantized_checkpoint(d / "ckpt.pt", WORDS, scheme=scheme, tying="node", dim=32)
    export_packed(d / "ckpt.pt", d / "lm.packed")
    return load_lm(d / "lm.packed")


@pytest.fixture(scope="module")
def packed_ternary(tmp_path_factory):
    return packed_lm(tmp_path_factory.mktemp("int8"), "ternary")


@needs_kernels
@pytest.mark.parametrize("scheme,k,levels", [("ternary", 1, [-1, 0, 1]), ("multibit2", 2, [-1, 1])])
def test_int8_logits_from_the_packed_file_are_exact_weights_times_8_bit_activations(tmp_path, scheme, k, levels):
    lm = packed_lm(tmp_path, scheme)
    assert lm.kind == "packed"
    out = Int8Output(lm.model, lm.quantized)
    assert out.exact_weights and out.k == k and "exact int8 weights" in out.describe()
    assert out.levels == levels and not out.reduce_range
    torch.manual_seed(1)
    h = torch.rand(50, 32) * 2 - 1  # LSTM outputs lie in (-1, 1)
    W = lm.model.output_weight.detach().double()  # the dequantized packed weights
    exact = h.double() @ W.t() + lm.model.decoder.bias.detach().double()
    got = out(h).double()
    # activations rounded to a grid of step 2/255: each logit moves by at most half a step times sum |W[r, :]|
    bound = (1.0 / 255) * W.abs().sum(dim=1) + 1e-4
    err = (got - exact).abs()
    assert (err <= bound).all(), float((err - bound).max())
    assert err.max() > 0  # the activations are quantized: this is an approximation, opt-in
    alone = out(h[:3])  # one activation scale for every batch: a row's logits do not depend on its batch
    assert torch.equal(alone, got[:3].float())


@needs_kernels
def test_int8_scorer_is_close_to_the_exact_scorer_and_batch_independent(packed_ternary):
    lm = packed_ternary
    sents = [tuple(w for w in line.split() if w in set(WORDS)) for line in ptb_lines("valid", 60)]
    exact = NeuralScorer(lm.model, lm.units).score(sents).totals()
    s = NeuralScorer(lm.model, lm.units, int8=True, quantized=lm.quantized)
    got = s.score(sents).totals()
    assert np.abs(got - exact).max() <= 0.05 * max(1.0, np.abs(exact).max() / 100)
    assert np.abs(got - exact).max() > 0
    assert s.describe().startswith("prefix-shared, int8 output layer (exact int8 weights")
    again = NeuralScorer(lm.model, lm.units, int8=True, quantized=lm.quantized, batch_tokens=8).score(sents[:7])
    assert np.abs(again.totals() - got[:7]).max() <= 1e-4


@needs_kernels
def test_int8_on_a_float_model_rounds_the_weights_and_says_so():
    torch.manual_seed(2)
    m = LSTMLM(ModelConfig(vocab_size=30, embed_dim=8, hidden_dim=8)).eval()
    out = Int8Output(m, {})
    assert not out.exact_weights and "rounded to int8 per row" in out.describe()
    assert output_quantized_matrix(m, {}) is None
    with pytest.raises(AdmmqError, match="--int8 runs on the prefix-shared path"):
        NeuralScorer(m, None, int8=True, prefix_sharing=False)
