"""Loading a model without PyTorch for the compiled kernels: the same weights, units and errors as load_lm."""

import pickle
import zipfile

import numpy as np
import pytest
import torch

from rescorer.errors import FormatError, MismatchError
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.lm.vocab import Vocab
from rescorer.pack.checkpoint import save_checkpoint
from rescorer.pack.lm_file import export_packed, load_lm
from rescorer.pack.numpy_lm import load_weights_lm
from rescorer.pack.torch_zip import load_torch_zip
from tests.conftest import ptb_lines
from tests.packed_models import make_quantized_checkpoint

WORDS = sorted({w for line in ptb_lines("train", 200) for w in line.split()})[:400]


def fp_checkpoint(path, **cfg):
    vocab = Vocab(WORDS)
    torch.manual_seed(0)
    m = LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=12, hidden_dim=12, **cfg))
    save_checkpoint(path, {"model_config": m.cfg.to_dict(), "units": vocab.to_state(), "model": m.state_dict(),
                           "method_config": {"method": "fp"}, "train_config": {"self_norm": 0.25},
                           "log": [{"epoch": 1, "valid_ppl": 123.4}]})
    return path


def same_as_load_lm(path):
    a, b = load_weights_lm(path), load_lm(path)
    state = {k: v.numpy() for k, v in b.model.state_dict().items()}
    assert set(a.weights) == set(state)
    for k, v in state.items():
        assert a.weights[k].dtype == np.float32 and np.array_equal(a.weights[k], v), k
    assert a.units == b.units and a.cfg == b.model.cfg and a.kind == b.kind and a.self_norm == b.self_norm
    return a


@pytest.mark.parametrize("cfg", [{}, {"layers": 2, "tie_embeddings": True},
                                 {"input_linear": True, "output_linear": True}])
def test_fp_checkpoints_read_without_torch_equal_torch_load(tmp_path, cfg):
    p = fp_checkpoint(tmp_path / "m.pt", **cfg)
    raw, ref = load_torch_zip(p), torch.load(p, weights_only=True)
    assert raw["log"] == ref["log"] and raw["train_config"] == ref["train_config"]
    assert same_as_load_lm(p).self_norm == 0.25
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "best.pt").write_bytes(p.read_bytes())  # a training directory stands for its best.pt
    assert same_as_load_lm(tmp_path / "run").path == str(tmp_path / "run" / "best.pt")


@pytest.mark.parametrize("scheme", ["binary", "ternary", "pow4", "multibit2"])
def test_quantized_checkpoints_and_packed_files_dequantize_alike(tmp_path, scheme):
    make_quantized_checkpoint(tmp_path / "q.pt", WORDS, scheme=scheme, tying="node", dim=16)
    export_packed(tmp_path / "q.pt", tmp_path / "q.packed")
    same_as_load_lm(tmp_path / "q.pt")
    assert same_as_load_lm(tmp_path / "q.packed").kind == "packed"


def test_anything_but_an_admmq_checkpoint_is_a_one_line_error(tmp_path):
    p = fp_checkpoint(tmp_path / "m.pt")
    data = p.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="not a readable admmq checkpoint"):
        load_weights_lm(tmp_path / "cut.pt")
    torch.save({"x": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(FormatError, match="no 'admmq-checkpoint' format tag"):
        load_weights_lm(tmp_path / "other.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    with zipfile.ZipFile(tmp_path / "evil.pt", "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps({"format": "admmq-checkpoint", "x": Evil()}, protocol=2))
    with pytest.raises(FormatError, match="refusing to load .*print: not part of an admmq checkpoint"):
        load_weights_lm(tmp_path / "evil.pt")
    state = torch.load(p, weights_only=True)
    state["model"]["decoder.bias"] = torch.zeros(7)
    torch.save(state, tmp_path / "shape.pt")
    with pytest.raises(MismatchError, match="weight 'decoder.bias' has shape \\(7,\\)"):
        load_weights_lm(tmp_path / "shape.pt")
