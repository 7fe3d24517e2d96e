import json

from click.testing import CliRunner

from rescorer.cli.group import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_train_then_eval_json_and_per_sentence(ptb_slice, tmp_path):
    out = tmp_path / "run"
    r = run("train", "--train", ptb_slice / "train.txt", "--valid", ptb_slice / "valid.txt", "-o", out,
            "--epochs", 1, "--embed-dim", 16, "--hidden-dim", 16, "--device", "cpu", "--quiet")
    assert r.exit_code == 0, r.output
    assert "best epoch 1" in r.output and (out / "best.pt").exists()
    per = tmp_path / "per.txt"
    r = run("eval", "--lm", out, "--text", ptb_slice / "test.txt", "--json", "--per-sentence", per)
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["sentences"] == 80 and d["tokens"] == d["words"] + 80 and d["ppl"] > 1
    lines = per.read_text().splitlines()
    assert len(lines) == 80 and lines[0].split()[0] == "1"
    total = -sum(float(x.split()[1]) for x in lines)
    assert abs(total - d["logprob"]) < 1e-2
    # resume a finished run with a larger epoch budget continues it
    r = run("train", "--resume", out, "--epochs", 2, "--quiet")
    assert r.exit_code == 0 and "(2 epochs)" in r.output


def test_errors_are_one_line_with_nonzero_exit(ptb_slice, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    r = CliRunner().invoke(cli, ["eval", "--lm", str(bad), "--text", str(ptb_slice / "test.txt")])
    assert r.exit_code == 1
    assert r.output.strip().startswith("admmq: error:") and len(r.output.strip().splitlines()) == 1
    assert "bad.pt" in r.output
    r = CliRunner().invoke(cli, ["train", "--train", str(ptb_slice / "train.txt")])
    assert r.exit_code == 1 and "missing --valid, -o/--out" in r.output
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    r = CliRunner().invoke(cli, ["train", "--train", str(empty), "--valid", str(empty), "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and "no sentences in text file" in r.output
    r = CliRunner().invoke(cli, ["eval", "--lm", str(tmp_path / "missing"), "--text", str(empty)])
    assert r.exit_code == 2  # click's own usage error for a path that does not exist
