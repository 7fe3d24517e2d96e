import json

import numpy as np
import pytest
from click.testing import CliRunner

from rescorer.pack.lm_file import load_lm
from rescorer.cli.group import cli
from rescorer.fileio import read_sentences
from rescorer.lm.scoring import NeuralScorer
from rescorer.lm.vocab import Vocab
from tests.packed_models import claim_one_bit_codes, make_quantized_checkpoint, rewrite_header


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def ptb_ckpt(ptb_slice, tmp_path_factory):
    """A 1x16 LSTM over the PTB slice's vocabulary, ternary node-tied, with the embedding left fp32."""
    d = tmp_path_factory.mktemp("ckpt")
    vocab = Vocab.build(line.split() for line in (ptb_slice / "train.txt").read_text().splitlines())
    make_quantized_checkpoint(d / "c.pt", vocab.symbols, "ternary", "node", dim=16, skip=["embedding.weight"])
    return d / "c.pt"


def test_eval_on_the_packed_file_equals_eval_on_the_checkpoint(ptb_ckpt, ptb_slice, tmp_path):
    r = run("export", "--lm", ptb_ckpt, "--bits", "1.6", "-o", tmp_path / "q.pt", "--quiet")
    assert r.exit_code == 0, r.output
    out = {}
    for name, lm in (("ckpt", ptb_ckpt), ("packed", tmp_path / "q.pt")):
        r = run("eval", "--lm", lm, "--text", ptb_slice / "test.txt", "--json", "--per-sentence", tmp_path / name)
        assert r.exit_code == 0, r.output
        out[name] = json.loads(r.output)
    assert abs(out["packed"]["ppl"] / out["ckpt"]["ppl"] - 1) <= 1e-5
    assert out["packed"]["tokens"] == out["ckpt"]["tokens"] == out["ckpt"]["words"] + 80
    assert (tmp_path / "packed").read_text() == (tmp_path / "ckpt").read_text()
    # and word by word, the rescoring primitive gives identical log-probs
    sents = [s.words for s in read_sentences(ptb_slice / "test.txt")]
    a, b = (NeuralScorer(lm.model, lm.units).score(sents) for lm in (load_lm(ptb_ckpt), load_lm(tmp_path / "q.pt")))
    assert np.array_equal(a.logprob, b.logprob) and np.array_equal(a.oov, b.oov)


def test_info_json_for_packed_files_and_checkpoints(ptb_ckpt, tmp_path):
    r = run("export", "--lm", ptb_ckpt, "-o", tmp_path / "q.pt", "--json")  # --bits auto: ternary -> 1.6
    assert r.exit_code == 0, r.output
    exported = json.loads(r.output.splitlines()[-1])
    r = run("info", "--lm", tmp_path / "q.pt", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d == exported
    assert d["size_bytes"] == (tmp_path / "q.pt").stat().st_size
    assert d["compression_ratio"] == pytest.approx(d["fp32_bytes"] / d["size_bytes"], rel=1e-4)
    assert d["method"] == "admm" and d["set"] == "{0,±1}" and d["tying"] == "node"
    mats = {m["name"]: m for m in d["matrices"]}
    assert mats["decoder.weight"]["bits"] == 1.6 and mats["decoder.weight"]["levels"] == 3
    assert mats["embedding.weight"]["bits"] == 32 and mats["embedding.weight"]["levels"] is None
    V = mats["embedding.weight"]["shape"][0]
    assert mats["decoder.weight"]["shape"] == [V - 1, 16] and mats["lstm.weight_ih_l0"]["shape"] == [64, 16]
    assert d["params"] * 4 == d["fp32_bytes"]
    assert d["paper_bytes"] == d["breakdown"]["codes"] + d["breakdown"]["matrix"]
    # a training checkpoint: the same figures, predicted for its export
    r = run("info", "--lm", ptb_ckpt, "--json")
    c = json.loads(r.output)
    assert c["kind"] == "checkpoint" and c["size_bytes"] == d["size_bytes"]
    assert c["file_bytes"] == ptb_ckpt.stat().st_size
    r = run("info", "--lm", ptb_ckpt, "--bits", "2")
    assert r.exit_code == 0 and "training checkpoint" in r.output and "2 bits" in r.output


def test_info_text_shows_the_breakdown(ptb_ckpt, tmp_path):
    run("export", "--lm", ptb_ckpt, "--bits", "2", "-o", tmp_path / "q.pt", "--quiet")
    r = run("info", "--lm", tmp_path / "q.pt")
    assert r.exit_code == 0, r.output
    for text in ("packed LM file", "method admm", "set {0,±1}", "tying node", "compression", "MiB",
                 "paper-style", "lstm.weight_hh_l0", "float32"):
        assert text in r.output, text


def test_cli_errors_are_one_line(ptb_ckpt, tmp_path):
    def one_line_error(r, *needles):
        assert r.exit_code == 1, r.output
        lines = r.output.strip().splitlines()  # a status line may precede the error
        errors = [line for line in lines if line.startswith("admmq: error:")]
        assert errors == lines[-1:] and "Traceback" not in r.output, r.output
        for n in needles:
            assert n in errors[0], (n, errors[0])

    make_quantized_checkpoint(tmp_path / "six.pt", ["a", "b", "c"], "pow4", "layer", dim=8)
    one_line_error(run("export", "--lm", tmp_path / "six.pt", "--bits", "2", "-o", tmp_path / "q6.pt"),
                   "matrix 'embedding.weight' has 6 levels", "--bits 2 holds at most 4")
    assert not (tmp_path / "q6.pt").exists()
    one_line_error(run("export", "--lm", tmp_path / "six.pt", "--bits", "9", "-o", tmp_path / "q6.pt"), "--bits '9'")

    r = run("export", "--lm", ptb_ckpt, "--bits", "2", "-o", tmp_path / "q.pt", "--quiet")
    assert r.exit_code == 0
    data = (tmp_path / "q.pt").read_bytes()
    text = tmp_path / "t.txt"
    text.write_text("the market fell\n")
    cases = {"trunc.pt": (data[: len(data) // 2], "truncated"),
             "flip.pt": (data[:-5] + bytes([data[-5] ^ 1]) + data[-4:], "payload checksum mismatch"),
             "version.pt": (data[:8] + b"\x07" + data[9:], "version 7 is not supported"),
             "magic.pt": (b"NOTADMMQ" + data[8:], "magic.pt"),
             "onebit.pt": (data, "'decoder.weight' has 3 levels but its codes are stored at 1 bit")}
    for name, (content, needle) in cases.items():
        (tmp_path / name).write_bytes(content)
        if name == "onebit.pt":
            rewrite_header(tmp_path / name, claim_one_bit_codes("decoder.weight"))
        one_line_error(run("eval", "--lm", tmp_path / name, "--text", text), name, needle)
        one_line_error(run("info", "--lm", tmp_path / name), name)
