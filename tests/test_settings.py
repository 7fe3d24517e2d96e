"""rescorer.settings: checkpoint settings from dicts, and the one reader of comma-separated numbers."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rescorer.cli import cli
from rescorer.errors import AdmmqError, MismatchError
from rescorer.lm.model import ModelConfig
from rescorer.settings import parse_numbers, settings_from_dict


def test_parse_numbers_reads_what_the_options_document():
    assert parse_numbers("0.6,0.4", "--weights") == (0.6, 0.4)
    assert parse_numbers(" 1 , -0.5,2e-3,", "grid") == (1.0, -0.5, 0.002)  # spaces, a trailing comma
    assert parse_numbers("7", "--weights") == (7.0,)
    for bad in ("", ",", "0.6,,0.4", "a,b", "0.6;0.4"):
        with pytest.raises(AdmmqError, match=r"^--weights: expected comma-separated numbers, got "):
            parse_numbers(bad, "--weights")
    with pytest.raises(AdmmqError, match="grid: expected a list, got 'x'"):
        parse_numbers("x", "grid", "a list")


def test_settings_from_dict_refuses_unknown_names():
    assert settings_from_dict(ModelConfig, {"vocab_size": 5}, "model").vocab_size == 5
    with pytest.raises(MismatchError, match=r"unknown model settings \['colour'\]"):
        settings_from_dict(ModelConfig, {"vocab_size": 5, "colour": 1}, "model")


@pytest.mark.parametrize("args, message", [
    (["interpolate", "--weights", "0.5,x"], "--weights: expected comma-separated numbers, got '0.5,x'"),
    (["eval", "--weights", "0.5;0.5"], "--weights: expected a weights file (from admmq interpolate) or "
                                       "comma-separated numbers, got '0.5;0.5'"),
    (["rescore", "--wip-grid", "0,,1"], "grid: expected START:STOP:STEP (STEP > 0) or a comma list of numbers, "
                                        "got '0,,1'"),
])
def test_the_three_number_lists_of_the_cli_fail_alike(tmp_path, args, message):
    text = tmp_path / "t.txt"
    text.write_text("a b\n")
    arpa = tmp_path / "lm.arpa"
    arpa.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-0.5\t<s>\t0\n-0.3\ta\n-0.3\t</s>\n\n\\end\\\n")
    nbest = tmp_path / "nbest.txt"
    nbest.write_text("u1-1 1.0 0.0 a\n")
    extra = {"interpolate": ["--ngram", str(arpa), "--ngram", str(arpa), "--valid", str(text)],
             "eval": ["--ngram", str(arpa), "--ngram", str(arpa), "--text", str(text)],
             "rescore": [str(nbest), "--ngram", str(arpa), "-o", str(tmp_path / "out"), "--lm-scale", "1"]}[args[0]]
    res = CliRunner().invoke(cli, args + extra)
    assert res.exit_code == 1, res.output
    assert res.output.strip().splitlines()[-1] == f"admmq: error: {message}"
