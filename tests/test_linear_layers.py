"""Bin+Lin's partially quantized linear layers, for bin-lin and for ADMM (``--linear-layers``)."""

import math

import pytest
import torch

from rescorer.errors import AdmmqError
from rescorer.lm.corpus import load_corpus
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.lm.scoring import corpus_nll
from rescorer.pack.checkpoint import read_checkpoint
from rescorer.pack.lm_file import export_packed, load_lm
from rescorer.quant import MethodConfig, build_method
from rescorer.quant.linear_layers import can_insert, hadamard, insert_linear_layers
from rescorer.train.runlogs import method_label

from quant_helpers import slice_vocab
from test_admm_schedule import tiny_cli_run


def test_hadamard_matrices_of_every_constructed_order():
    for n in (1, 2, 4, 8, 12, 16, 20, 200, 256):  # Sylvester, Paley (q = 11, 19, 199) and products
        h = hadamard(n)
        assert set(h.unique().tolist()) <= {-1.0, 1.0}
        assert torch.equal(h @ h.T, n * torch.eye(n)), n
    with pytest.raises(AdmmqError, match="Hadamard matrix of order 6"):
        hadamard(6, "fp.pt")
    assert can_insert(ModelConfig(vocab_size=5, embed_dim=16, hidden_dim=12))
    assert not can_insert(ModelConfig(vocab_size=5, embed_dim=16, hidden_dim=6))
    assert not can_insert(ModelConfig(vocab_size=5, embed_dim=16, hidden_dim=16, tie_embeddings=True))


@pytest.mark.parametrize("qset", ["pm1", "0pm1"])
def test_admm_with_linear_layers_starts_with_the_fp_function_and_exact_binary_layers(ptb_slice, qset):
    """ADMM ``linear_layers`` from a trained model: the started latent model computes the fp model's logits,
    and the first projection (layer {±1}, and {0,±1}, whose best α for equal magnitudes uses no zero) holds
    the two Hadamard layers exactly (α = 1/√n), so the quantized model differs from the fp one only by the
    original matrices' projections."""
    vocab = slice_vocab(ptb_slice)
    fp = LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=16, hidden_dim=12)).eval()
    method = build_method(MethodConfig(method="admm", qset=qset, tying="layer", linear_layers=True))
    cfg = method.adapt_model_config(fp.cfg)
    assert cfg.input_linear and cfg.output_linear
    started = LSTMLM(cfg).eval()
    started.load_weights(method.adapt_init_weights(fp.state_dict(), cfg, "fp.pt"))
    inputs = torch.randint(0, len(vocab), (3, 7))
    with torch.no_grad():
        assert torch.allclose(fp.logits(fp(inputs)[0]), started.logits(started(inputs)[0]), atol=1e-5)
    method.setup(started)
    assert {"input_linear.weight", "output_linear.weight"} <= set(method.names)
    q = method.quantized_matrices(started)
    for name, n in (("input_linear.weight", 16), ("output_linear.weight", 12)):
        assert q[name].alpha.shape == (1, 1) and q[name].alpha.item() == pytest.approx(1 / math.sqrt(n))
        assert torch.allclose(q[name].dequantize(), dict(started.named_parameters())[name].detach()), name
    # without the setting nothing changes, and a model that has the layers keeps its weights
    plain = build_method(MethodConfig(method="admm", qset="pm1", tying="layer"))
    assert plain.adapt_model_config(fp.cfg) == fp.cfg
    weights = insert_linear_layers(fp.state_dict(), cfg, "fp.pt")
    assert insert_linear_layers(weights, cfg, "fp.pt") is weights
    with pytest.raises(AdmmqError, match="tied embeddings"):
        insert_linear_layers(fp.state_dict(), ModelConfig(vocab_size=len(vocab), embed_dim=16, hidden_dim=16,
                                                          tie_embeddings=True), "tied.pt")


def test_cli_linear_layers_default_and_the_deployed_model(ptb_slice, tmp_path):
    """`admmq train --method admm`: the linear layers by default for layer {±1} and {0,±1} with --init-from
    only (not from scratch, not for node tying or other tables, not where the sizes have no Hadamard matrix);
    --no-linear-layers and --linear-layers win; other methods refuse the option.  The trained models, their
    packed exports and their run labels carry the layers, and each export scores what its checkpoint
    scores."""
    from click.testing import CliRunner

    from rescorer.cli.group import cli

    def configs(name, *extra):
        ckpt = tiny_cli_run(ptb_slice, tmp_path / name, *extra)
        return ckpt["method_config"]["linear_layers"], ckpt["model_config"]["input_linear"]

    tiny_cli_run(ptb_slice, tmp_path / "fp")
    fp = str(tmp_path / "fp" / "best.pt")
    assert configs("pm1", "--method", "admm", "--init-from", fp) == (True, True)
    assert configs("scratch", "--method", "admm") == (False, False)
    assert configs("node", "--method", "admm", "--init-from", fp, "--qset", "pm124", "--tying", "node") == \
        (False, False)
    assert configs("ternary", "--method", "admm", "--init-from", fp, "--qset", "0pm1") == (True, True)
    assert configs("pm12", "--method", "admm", "--init-from", fp, "--qset", "pm12") == (False, False)
    assert configs("ternary_node", "--method", "admm", "--init-from", fp, "--qset", "0pm1", "--tying",
                   "node") == (False, False)
    assert configs("off", "--method", "admm", "--init-from", fp, "--no-linear-layers") == (False, False)
    assert configs("node_on", "--method", "admm", "--init-from", fp, "--qset", "pm124", "--tying", "node",
                   "--linear-layers") == (True, True)
    tiny_cli_run(ptb_slice, tmp_path / "fp6", "--hidden-dim", "6")  # no Hadamard matrix of order 6
    assert configs("odd", "--method", "admm", "--init-from", str(tmp_path / "fp6" / "best.pt"),
                   "--hidden-dim", "6") == (False, False)
    r = CliRunner().invoke(cli, ["train", "--train", str(ptb_slice / "train.txt"), "--valid",
                                 str(ptb_slice / "valid.txt"), "--method", "bin", "--linear-layers", "--quiet",
                                 "-o", str(tmp_path / "bin")])
    assert r.exit_code != 0 and "apply to --method admm" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "bin").exists()

    ckpt = read_checkpoint(tmp_path / "pm1" / "last.pt")
    assert method_label(ckpt["method_config"], ckpt["model_config"]) == "ADMM {±1} layer +Lin H=8"
    assert method_label(read_checkpoint(tmp_path / "off" / "last.pt")["method_config"], None) == "ADMM {±1} layer"
    ckpt = read_checkpoint(tmp_path / "ternary" / "last.pt")
    assert method_label(ckpt["method_config"], ckpt["model_config"]) == "ADMM {0,±1} layer +Lin H=8"
    for run, magnitudes in (("pm1", {1}), ("ternary", {1, 2})):  # one scale times a sign; or also zeros
        export_packed(tmp_path / run, tmp_path / f"{run}.admmq")
        ref, packed = load_lm(tmp_path / run), load_lm(tmp_path / f"{run}.admmq")
        assert packed.model.cfg.input_linear and packed.model.cfg.output_linear
        for name in ("input_linear.weight", "output_linear.weight"):
            w = dict(packed.model.named_parameters())[name].detach()
            assert len(w.abs().unique()) in magnitudes, (run, name, w.abs().unique())
        corpus = load_corpus(ref.units, ptb_slice / "valid.txt")
        a = corpus_nll(ref.model, corpus, ref.units.bos_id, ref.units.eos_id)
        b = corpus_nll(packed.model, corpus, packed.units.bos_id, packed.units.eos_id)
        assert a[1] == b[1] and a[0] == pytest.approx(b[0], rel=1e-6), run
