"""admmq report: the recipe's results table from what the stages wrote."""

import json

import pytest
from click.testing import CliRunner

from rescorer.cli.group import cli
from rescorer.errors import AdmmqError
from rescorer.report.results import read_rows, render_results, write_results


def _run(exp, name, method, epochs, test_ppl=None):
    d = exp / "train" / name
    d.mkdir(parents=True)
    (d / "train.log").write_text(f"2026-11-23 12:00:00 method config: {json.dumps(method)}\n"
                                 '2026-11-23 12:00:00 model config: {"hidden_dim": 200, "layers": 1}\n')
    rows = [{"epoch": e, "lr": 1.0, "seconds": 10.0 * e, "valid_ppl": 300.0 - e,
             "valid_ppl_q": None if method["method"] == "fp" else 320.0 - e, "best": e < epochs}
            for e in range(1, epochs + 1)]
    (d / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if test_ppl is not None:
        (d / "test_eval.json").write_text(json.dumps({"ppl": test_ppl}))


def _summary(subsets):
    def table(offset):
        return {s: {"wer": w + offset, "errors": 1, "words": 10} for s, w in subsets.items()}
    return {"wer": {"rescored": table(0.0), "first_pass": table(5.0), "oracle": table(-5.0)},
            "weights": {"lm_scale": 8.5, "wip": 0.5}}


@pytest.fixture
def exp(tmp_path):
    exp = tmp_path / "exp"
    _run(exp, "admm_layer_pm1", {"method": "admm", "qset": "pm1", "tying": "layer"}, 3, test_ppl=150.25)
    _run(exp, "std", {"method": "fp"}, 2, test_ppl=130.5)
    _run(exp, "binlin", {"method": "bin-lin"}, 4)  # no test_eval.json yet: blanks
    (exp / "export").mkdir()
    (exp / "export" / "admm_layer_pm1.info.json").write_text(json.dumps({"paper_mib": 0.515, "paper_ratio": 32.09}))
    (exp / "export" / "std.info.json").write_text(json.dumps({"paper_mib": 16.524, "paper_ratio": 1.0}))
    (exp / "interp" / "std").mkdir(parents=True)
    (exp / "interp" / "std" / "weights.json").write_text(json.dumps(
        {"components": [{"kind": "lstm", "weight": 0.6}, {"kind": "ngram", "weight": 0.4}]}))
    (exp / "interp" / "std" / "test_eval.json").write_text(json.dumps({"ppl": 110.75}))
    (exp / "lm").mkdir()
    (exp / "lm" / "test_eval.json").write_text(json.dumps({"ppl": 142.72}))
    for name, w in (("4gram", 24.0), ("std", 22.0), ("std+4gram", 20.0)):
        (exp / "rescore" / name).mkdir(parents=True)
        (exp / "rescore" / name / "summary.json").write_text(json.dumps(
            _summary({"slt": w + 5, "rms": w - 5, "total": w})))
    return exp


def test_rows_in_paper_order_with_what_each_stage_wrote(exp):
    rows = read_rows(exp)
    assert [r.name for r in rows] == ["std", "binlin", "admm_layer_pm1"]
    std, binlin, admm = rows
    assert (std.label, binlin.label, admm.label) == ("STD", "Bin+Lin", "ADMM {±1} layer")
    assert (admm.epochs, admm.best_epoch) == (3, 2)  # last epoch marked best
    assert admm.seconds_per_epoch == pytest.approx(20.0)
    assert (admm.size_mib, admm.ratio, admm.test_ppl) == (0.515, 32.09, 150.25)
    assert std.ngram_weight == pytest.approx(0.4) and std.interp_ppl == 110.75
    assert std.wer["alone"] == {"slt": 27.0, "rms": 17.0, "total": 22.0}
    assert std.wer["+4gram"]["total"] == 20.0 and admm.wer == {}
    assert binlin.test_ppl is None and binlin.size_mib is None
    assert admm.paper().ppl == 121.8 and std.paper().ppl == 114.4 and binlin.paper().ppl == 121.5


def test_a_run_the_recipe_does_not_make_is_named_not_taken_for_a_row(exp):
    """An extra fp run left in EXP/train (a side experiment) is labelled with its directory, so the
    table never shows two STD rows."""
    _run(exp, "fp_dropout03", {"method": "fp"}, 1)
    rows = read_rows(exp)
    labels = [r.label for r in rows]
    assert labels.count("STD") == 1 and "STD (fp_dropout03)" in labels, labels
    assert rows[-1].name == "fp_dropout03" and rows[-1].paper().ppl == 114.4


def test_markdown_tables_hold_our_numbers_beside_the_paper(exp, tmp_path):
    out = tmp_path / "RESULTS.md"
    text = write_results(exp, out, title="PTB results", note="quick run")
    assert out.read_text() == text and text.startswith("# PTB results\n\nquick run\n")
    line = next(ln for ln in text.splitlines() if ln.startswith("| ADMM {±1} layer |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells == ["ADMM {±1} layer", "3 (2)", "20", "0.515", "32.1×", "150.25", "–", "0.52", "31.8×", "121.8"]
    std = next(ln for ln in text.splitlines() if ln.startswith("| STD |"))
    assert "110.75 (0.40)" in std
    assert "4-gram alone: test PPL 142.72" in text
    wer_header = next(ln for ln in text.splitlines() if ln.startswith("| LM |"))
    assert wer_header.count("slt") == 2 and wer_header.count("total") == 2
    first = next(ln for ln in text.splitlines() if ln.startswith("| first pass"))
    assert "| 34.00 | 24.00 | 29.00 |" in first  # subsets in first-seen order, then total
    wer_std = next(ln for ln in text.splitlines() if ln.startswith("| STD |") and "22.00" in ln)
    assert wer_std.split("|")[2:8] == [" 27.00 ", " 17.00 ", " 22.00 ", " 25.00 ", " 15.00 ", " 20.00 "]


def test_not_an_experiment_directory_is_a_one_line_error(tmp_path):
    with pytest.raises(AdmmqError, match="no train/ directory"):
        render_results(tmp_path)
    res = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert res.exit_code == 1 and "no train/ directory" in res.output and "Traceback" not in res.output


def test_cli_writes_and_prints(exp, tmp_path):
    out = tmp_path / "r.md"
    res = CliRunner().invoke(cli, ["report", str(exp), "-o", str(out), "--title", "T"])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == out.read_text().strip() and "| Bin+Lin |" in res.output
    res = CliRunner().invoke(cli, ["report", str(exp), "--quiet", "-o", str(out)])
    assert res.exit_code == 0 and res.output == ""
