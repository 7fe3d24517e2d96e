"""The exact low-bit output layer: a quantized model's integer codes as fp16 weights (fbgemm)."""

import numpy as np
import pytest
import torch

from rescorer.lm.code_output import CodesOutput, codes_output, fp16_kernels_available
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.lm.scoring import NeuralScorer
from tests.conftest import ptb_lines
from tests.test_int8_output import WORDS, packed_lm

needs_fp16 = pytest.mark.skipif(not fp16_kernels_available(), reason="no fbgemm fp16 kernels in this torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@needs_fp16
@pytest.mark.parametrize("scheme,k", [("ternary", 1), ("pow4", 1), ("binary", 1), ("multibit2", 2)])
def test_codes_output_is_the_dequantized_layer_to_float_rounding(tmp_path, scheme, k):
    lm = packed_lm(tmp_path, scheme)
    out = codes_output(lm.model, lm.quantized)
    assert isinstance(out, CodesOutput) and out.k == k and out.exact
    torch.manual_seed(3)
    h = torch.randn(70, 32)  # any activations: nothing about them is approximated
    W = lm.model.output_weight.detach().double()
    exact = h.double() @ W.t() + lm.model.decoder.bias.detach().double()
    got = out(h).double()
    assert got.shape == exact.shape
    assert (got - exact).abs().max() <= 1e-5 * (1 + exact.abs().max()), float((got - exact).abs().max())
    assert torch.equal(out(h[:5]), out(h)[:5])  # a row does not depend on its batch


@needs_fp16
def test_quantized_scorer_uses_the_codes_and_scores_like_the_float_path(tmp_path):
    lm = packed_lm(tmp_path, "pow4")
    sents = [tuple(w for w in line.split() if w in set(WORDS)) for line in ptb_lines("valid", 60)]
    plain = NeuralScorer(lm.model, lm.units, prefix_sharing=False).score(sents).totals()
    fast = NeuralScorer(lm.model, lm.units, quantized=lm.quantized)
    got = fast.score(sents).totals()
    assert "integer codes as fp16 weights" in fast.describe()
    assert np.abs(got - plain).max() <= 1e-4, np.abs(got - plain).max()


def test_float_model_or_other_precision_keeps_the_fp32_layer(tmp_path):
    torch.manual_seed(4)
    m = LSTMLM(ModelConfig(vocab_size=30, embed_dim=8, hidden_dim=8)).eval()
    assert codes_output(m, {}) is None
    lm = packed_lm(tmp_path, "ternary")
    s = NeuralScorer(lm.model, lm.units, quantized=lm.quantized, precision="bf16")
    assert s.describe().split(", ")[1] == "fp32 output layer"
