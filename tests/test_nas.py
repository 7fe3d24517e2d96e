"""The differentiable precision search (--metric nas): it follows the size penalty, and its table feeds
the exact allocator like the other metrics'."""

import json
import pytest
import torch
from click.testing import CliRunner

from rescorer.pack.lm_file import load_lm
from rescorer.cli.group import cli
from rescorer.lm.corpus import load_corpus
from rescorer.errors import AdmmqError
from rescorer.quant.mixed import allocate_from_sensitivity, cost_bits, qset_for_bits
from rescorer.quant.nas import nas_preferences
from rescorer.quant.sensitivity import quantized_variants

from rescorer.quant import MethodConfig
from rescorer.train.loop import train

from quant_helpers import SMALL, cfg_for


@pytest.fixture(scope="module")
def tiny(ptb_slice, fp_run):
    lm = load_lm(fp_run)  # trained: quantizing it costs cross entropy
    corpus = load_corpus(lm.units, ptb_slice / "valid.txt", max_sentences=30)
    variants = quantized_variants(lm.model, lm.model.weight_matrix_names(), (1, 2, 8))
    return lm.model, lm.units, corpus, variants


@pytest.fixture(scope="module")
def fp_run(ptb_slice, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp") / "run"
    train(out, cfg_for(ptb_slice, epochs=1), SMALL, MethodConfig(method="fp"), quiet=True)
    return out


def preferred(values):
    return {n: min(row, key=row.get) for n, row in values.items()}


def test_search_follows_the_budget_and_leaves_the_model_alone(tiny):
    model, vocab, corpus, variants = tiny
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    tight, _, trace_tight = nas_preferences(model, corpus, vocab, variants, budget_bits=1.0, steps=60, lr=0.1)
    loose, tokens, trace_loose = nas_preferences(model, corpus, vocab, variants, budget_bits=8.0, steps=60, lr=0.1)
    assert tokens > 0 and len(trace_tight.ce) == 60
    assert set(preferred(tight).values()) == {1}  # a 1-bit budget: every matrix prefers 1 bit
    # room for 8 bits: with the penalty off, every matrix moves towards the more accurate tables
    assert trace_loose.bits[-1] > trace_loose.bits[0] + 0.5
    assert all(loose[n][8] < tight[n][8] for n in loose)
    assert sum(b == 8 for b in preferred(loose).values()) >= len(loose) // 2
    assert trace_tight.bits[-1] < trace_tight.bits[0] and trace_tight.over[0] > 0
    assert max(trace_loose.over) == 0.0  # never over the budget: no penalty
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) and p.requires_grad, n
    for row in tight.values():  # -ln pi: a probability distribution per matrix
        assert abs(sum(torch.exp(-torch.tensor(list(row.values()))).tolist()) - 1) < 1e-5


def test_search_table_allocates_within_the_budget(tiny):
    model, vocab, corpus, variants = tiny
    values, _, _ = nas_preferences(model, corpus, vocab, variants, budget_bits=2.0, steps=30, lr=0.1)
    numel = {n: p.numel() for n, p in model.named_parameters() if n in values}
    alloc = allocate_from_sensitivity(values, numel, budget_bits=2.0)
    assert sum(cost_bits(numel[n], qset_for_bits(b)) for n, b in alloc.bits.items()) <= 2.0 * sum(numel.values())
    with pytest.raises(AdmmqError, match="at least one search step"):
        nas_preferences(model, corpus, vocab, variants, budget_bits=2.0, steps=0)


def test_cli_sensitivity_method_nas(ptb_slice, fp_run, tmp_path):
    r = CliRunner().invoke(cli, ["sensitivity", "--lm", str(fp_run), "--valid", str(ptb_slice / "valid.txt"),
                                 "--metric", "nas", "--widths", "1,2,4", "--budget-bits", "2", "--steps", "15",
                                 "--sensitivity-sentences", "20", "-o", str(tmp_path / "nas.json"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "sensitivity by nas" in r.output and "lower = preferred" in r.output
    table = json.loads((tmp_path / "nas.json").read_text())
    assert table["metric"] == "nas" and table["config"]["steps"] == 15
    assert set(table["values"]["decoder.weight"]) == {"1", "2", "4"}
