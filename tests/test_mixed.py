"""Mixed precision: exact allocation, precision files, per-matrix ADMM, export and the CLI."""

import itertools
import json
import math
import random

import pytest
import torch
from click.testing import CliRunner

from rescorer.pack.lm_file import load_lm
from rescorer.pack.checkpoint import read_checkpoint
from rescorer.cli.group import cli
from rescorer.errors import AdmmqError, FormatError
from rescorer.report.model_size import describe_lm_file
from rescorer.pack.lm_file import export_packed
from rescorer.quant import MethodConfig
from rescorer.quant.mixed import (BITS_TO_QSET, allocate, allocate_from_sensitivity, as_width, cost_bits,
                                  parse_bits_list, qset_for_bits, read_precision, stored_bits)
from rescorer.quant.qsets import parse_qset
from rescorer.train.loop import train

from quant_helpers import SMALL, cfg_for


def brute_force(sens, costs, budget):
    names = list(sens)
    best = None
    for choice in itertools.product(*(sorted(sens[n]) for n in names)):
        c = sum(costs[n][b] for n, b in zip(names, choice))
        s = sum(sens[n][b] for n, b in zip(names, choice))
        if c <= budget and (best is None or s < best[0] - 1e-12):
            best = (s, c, choice)
    return best


@pytest.mark.parametrize("seed", range(40))
def test_allocator_equals_brute_force_and_respects_the_budget(seed):
    rng = random.Random(seed)
    names = [f"m{i}" for i in range(rng.randint(1, 5))]
    bits = sorted(rng.sample([1, 2, 3, 4, 8], rng.randint(1, 5)))
    sens, costs = {}, {}
    for n in names:
        numel = rng.randint(1, 50)
        vals = sorted((rng.random() for _ in bits), reverse=True)  # usually falling with bits, not always
        if rng.random() < 0.3:
            rng.shuffle(vals)
        sens[n] = dict(zip(bits, vals))
        costs[n] = {b: cost_bits(numel, BITS_TO_QSET[b]) for b in bits}
    lo = sum(min(c.values()) for c in costs.values())
    hi = sum(max(c.values()) for c in costs.values())
    budget = rng.randint(lo, hi)
    alloc = allocate(sens, costs, budget)
    s, c, choice = brute_force(sens, costs, budget)
    assert alloc.sensitivity == pytest.approx(s), (alloc, s, choice)
    assert alloc.cost == sum(costs[n][b] for n, b in alloc.bits.items()) <= budget
    assert alloc.sensitivity == pytest.approx(sum(sens[n][b] for n, b in alloc.bits.items()))


def test_allocation_too_small_a_budget_is_a_clear_error():
    with pytest.raises(AdmmqError, match="no allocation fits"):
        allocate({"a": {1: 1.0, 2: 0.5}}, {"a": {1: 100, 2: 200}}, 99)


def test_budget_in_bits_per_weight_and_mib():
    numel = {"big": 8 * 1024 * 1024, "small": 1000}
    sens = {"big": {1: 1.0, 2: 0.1, 3: 0.05}, "small": {1: 10.0, 2: 1.0, 3: 0.5}}
    a = allocate_from_sensitivity(sens, numel, budget_bits=1.01)
    assert a.bits == {"big": 1, "small": 3}  # 3 bits on the small sensitive matrix is almost free
    assert a.cost <= 1.01 * sum(numel.values())
    m = allocate_from_sensitivity(sens, numel, budget_mb=2.01)  # 2 MiB = 8 Mi weights at 2 bits
    assert m.bits == {"big": 2, "small": 3} and m.cost <= 2.01 * 2 ** 20 * 8
    assert allocate_from_sensitivity(sens, numel, budget_mb=2.0).bits["big"] == 1  # "small" needs 1000 bits more
    with pytest.raises(AdmmqError):
        allocate_from_sensitivity(sens, numel, budget_bits=1.0, budget_mb=1.0)


def test_stored_widths_of_the_tables():
    assert [stored_bits(BITS_TO_QSET[b]) for b in (1, 2, 3, 4, 8)] == pytest.approx([1, 2, 8 / 3, 4, 8])
    assert cost_bits(10, "pm124") == 8 * 4  # 3 codes per byte: 4 bytes
    assert parse_qset("int:4").levels == tuple(float(v) for v in range(-7, 8))
    assert len(parse_qset("int:8").levels) == 255


def test_precision_file_reading(tmp_path):
    names = ["embedding.weight", "lstm.weight_ih_l0", "decoder.weight"]
    p = tmp_path / "prec.txt"
    p.write_text("# comment\nembedding.weight 2\nlstm.weight_ih_l0 pow2:2  # any set\n\ndecoder.weight 8\n")
    assert read_precision(p, names) == {"embedding.weight": "pm12", "lstm.weight_ih_l0": "pow2:2",
                                        "decoder.weight": "int:8"}
    for text, what in (("embedding.weight 5\n", "no table for 5 bits"), ("nope.weight 2\n", "not a quantized"),
                       ("embedding.weight\n", "expected 'MATRIX BITS'")):
        p.write_text(text)
        with pytest.raises(FormatError, match=what) as err:
            read_precision(p, names)
        assert ":1:" in str(err.value)
    p.write_text("embedding.weight 2\n")
    with pytest.raises(FormatError, match="no precision for lstm.weight_ih_l0, decoder.weight"):
        read_precision(p, names)


@pytest.fixture(scope="module")
def fp_run(ptb_slice, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp") / "run"
    train(out, cfg_for(ptb_slice, epochs=1), SMALL, MethodConfig(method="fp"), quiet=True)
    return out


PRECISION = {"embedding.weight": "pm12", "lstm.weight_ih_l0": "pm124", "lstm.weight_hh_l0": "int:4",
             "decoder.weight": "pm1"}


def test_mixed_admm_run_exports_and_reloads_with_its_per_matrix_bits(ptb_slice, fp_run, tmp_path):
    mcfg = MethodConfig(method="admm", gamma=1e-2, precision=tuple(PRECISION.items()), precision_note="test")
    res = train(tmp_path / "run", cfg_for(ptb_slice, epochs=1, init_from=str(fp_run)), SMALL, mcfg, quiet=True)
    assert math.isfinite(res.best_valid_ppl)
    ckpt = read_checkpoint(tmp_path / "run" / "best.pt")
    assert MethodConfig.from_dict(ckpt["method_config"]).precision == tuple(PRECISION.items())
    lm = load_lm(tmp_path / "run")
    weights = dict(lm.model.named_parameters())
    for name, spec in PRECISION.items():  # each matrix holds α·{its own set} only
        q = lm.quantized[name]
        assert q.levels == len(parse_qset(spec).levels), name
        table = q.table()[0]
        dist = (weights[name].detach().unsqueeze(-1) - table).abs().min(-1).values
        assert float(dist.max()) < 1e-6, name
    export_packed(tmp_path / "run", tmp_path / "m.pt")
    packed = load_lm(tmp_path / "m.pt")
    for name in PRECISION:
        assert torch.equal(packed.quantized[name].codes, lm.quantized[name].codes), name
        assert torch.allclose(dict(packed.model.named_parameters())[name], weights[name]), name
    report = describe_lm_file(tmp_path / "m.pt")
    widths = {m.name: m.bits for m in report.matrices}
    assert widths == pytest.approx({n: stored_bits(s) for n, s in PRECISION.items()}, abs=1e-3)
    assert report.to_dict()["set"] == "mixed"
    numel = sum(m.numel for m in report.matrices)
    codes = sum(cost_bits(m.numel, PRECISION[m.name]) for m in report.matrices) / 8
    assert report.paper_bytes == pytest.approx(codes, abs=8)  # paper-style: the codes only
    assert numel == sum(w.numel() for n, w in weights.items() if n in PRECISION)


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_cli_sensitivity_then_train_with_precision_auto(ptb_slice, fp_run, tmp_path):
    r = run_cli("sensitivity", "--lm", fp_run, "--valid", ptb_slice / "valid.txt", "--metric", "kl", "--widths",
                "1,2,4", "--sensitivity-sentences", 20, "-o", tmp_path / "sens.json", "--quiet")
    assert r.exit_code == 0, r.output
    assert "sensitivity by kl" in r.output and "decoder.weight" in r.output
    table = json.loads((tmp_path / "sens.json").read_text())
    assert set(table["values"]["decoder.weight"]) == {"1", "2", "4"}
    r = run_cli("train", "--train", ptb_slice / "train.txt", "--valid", ptb_slice / "valid.txt", "-o",
                tmp_path / "run", "--method", "admm", "--init-from", fp_run, "--allocation", "auto",
                "--metric", tmp_path / "sens.json", "--budget-bits", 2, "--widths", "1,2,4",
                "--epochs", 1, "--max-sentences", 50, "--quiet")
    assert r.exit_code == 0, r.output
    assert "precision decoder.weight:" in r.output and "bits/weight" in r.output
    chosen = read_precision(tmp_path / "run" / "precision.txt", list(PRECISION))
    stored = dict(MethodConfig.from_dict(read_checkpoint(tmp_path / "run" / "best.pt")["method_config"]).precision)
    assert chosen == stored
    numel = {m.name: m.numel for m in describe_lm_file(tmp_path / "run").matrices}
    assert sum(cost_bits(numel[n], q) for n, q in stored.items()) <= 2 * sum(numel.values())
    r = run_cli("info", "--lm", tmp_path / "run")
    assert r.exit_code == 0
    assert ("mixed" in r.output) == (len(set(stored.values())) > 1), r.output


def test_cli_hessian_sensitivity_gauss_newton_by_default_and_hutchinson_refused_when_negative(ptb_slice, fp_run):
    args = ["sensitivity", "--lm", fp_run, "--valid", ptb_slice / "valid.txt", "--metric", "hessian", "--widths", "1,2",
            "--sensitivity-sentences", 20, "--probes", 8, "--max-probes", 32, "--quiet"]
    r = run_cli(*args)
    assert r.exit_code == 0, r.output
    assert "Tr(G)" in r.output and "Gauss-Newton trace" in r.output
    traces = [float(ln.split()[-2]) for ln in r.output.splitlines() if ln.split()[0] in PRECISION]
    assert len(traces) == 4 and all(t > 0 for t in traces), r.output
    # this one-epoch LM's Hessian trace of lstm.weight_ih_l0: -0.046 ± 0.027 (32 probes): refused, not clipped
    r = CliRunner().invoke(cli, [str(a) for a in args] + ["--trace", "hutchinson"])
    assert r.exit_code == 1 and "not significantly positive" in r.output and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1


def test_named_tables_are_candidates_beside_widths(ptb_slice, fp_run, tmp_path):
    assert parse_bits_list("2, 0pm1,1,pow2:1") == (1, "0pm1", 2, "pow2:1")  # by stored bits: 1, 1.6, 2, 2.67
    with pytest.raises(AdmmqError, match="--widths must list widths"):
        parse_bits_list("1,nosuchset")
    r = run_cli("sensitivity", "--lm", fp_run, "--valid", ptb_slice / "valid.txt", "--metric", "kl", "--widths",
                "1,0pm1,2", "--sensitivity-sentences", 20, "-o", tmp_path / "sens.json", "--quiet")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[1].split()[2:] == ["1", "bit", "0pm1", "2", "bit"]
    table = json.loads((tmp_path / "sens.json").read_text())
    assert set(table["values"]["decoder.weight"]) == {"1", "0pm1", "2"}
    # ternary {0, ±1} lies between {±1} and {±1, ±2} in KL
    row = table["values"]["decoder.weight"]
    assert row["2"] < row["0pm1"] < row["1"]
    r = run_cli("train", "--train", ptb_slice / "train.txt", "--valid", ptb_slice / "valid.txt", "-o",
                tmp_path / "run", "--method", "admm", "--init-from", fp_run, "--allocation", "auto",
                "--metric", tmp_path / "sens.json", "--budget-bits", 1.6, "--widths", "1,0pm1,2",
                "--epochs", 1, "--max-sentences", 50, "--quiet")
    assert r.exit_code == 0, r.output
    chosen = read_precision(tmp_path / "run" / "precision.txt", list(PRECISION))
    numel = {m.name: m.numel for m in describe_lm_file(tmp_path / "run").matrices}
    assert set(chosen.values()) <= {"pm1", "0pm1", "pm12"}
    assert sum(cost_bits(numel[n], q) for n, q in chosen.items()) <= 1.6 * sum(numel.values())
    # the allocator's optimum over the three candidates, by brute force on the same table
    sens = {n: {as_width(b): v for b, v in table["values"][n].items()} for n in numel}
    best = min(itertools.product(*[list(sens[n]) for n in numel]),
               key=lambda c: (sum(cost_bits(numel[n], qset_for_bits(b)) for n, b in zip(numel, c))
                              > 1.6 * sum(numel.values()), sum(sens[n][b] for n, b in zip(numel, c))))
    assert chosen == {n: qset_for_bits(b) for n, b in zip(numel, best)}


def test_cli_precision_errors_are_one_line(ptb_slice, fp_run, tmp_path):
    base = ["train", "--train", ptb_slice / "train.txt", "--valid", ptb_slice / "valid.txt", "--method", "admm",
            "--init-from", fp_run, "--quiet"]
    r = CliRunner().invoke(cli, [str(a) for a in base + ["-o", tmp_path / "a", "--allocation", "auto",
                                                         "--metric", "kl", "--budget-bits", 0.5]])
    assert r.exit_code == 1 and "no allocation fits" in r.output and "Traceback" not in r.output
    bad = tmp_path / "p.txt"
    bad.write_text("decoder.weight 7\n")
    r = CliRunner().invoke(cli, [str(a) for a in base + ["-o", tmp_path / "b", "--allocation", bad]])
    assert r.exit_code == 1 and f"{bad}:1:" in r.output


def test_cli_precision_file_from_scratch(ptb_slice, tmp_path):
    prec = tmp_path / "prec.txt"
    prec.write_text("embedding.weight 1\nlstm.weight_ih_l0 3\nlstm.weight_hh_l0 4\ndecoder.weight 2\n")
    r = run_cli("train", "--train", ptb_slice / "train.txt", "--valid", ptb_slice / "valid.txt", "-o", tmp_path / "run",
                "--method", "admm", "--allocation", prec, "--embed-dim", 16, "--hidden-dim", 16, "--epochs", 1,
                "--max-sentences", 50, "--quiet")
    assert r.exit_code == 0, r.output
    lm = load_lm(tmp_path / "run")
    assert {n: q.levels for n, q in lm.quantized.items()} == {"embedding.weight": 2, "lstm.weight_ih_l0": 6,
                                                               "lstm.weight_hh_l0": 15, "decoder.weight": 4}
