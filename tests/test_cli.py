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


def test_a_command_imports_only_its_own_module():
    """Commands are imported on first use: 'admmq rescore' loads neither training nor quantization code
    (start-up time), and 'admmq --help' still lists every command."""
    import subprocess
    import sys

    code = ("import sys\nimport rescorer.cli as c\ntry:\n    c.cli.main(args=['rescore', '--help'], "
            "standalone_mode=False)\nexcept SystemExit:\n    pass\nprint(sorted(m for m in sys.modules if "
            "m.startswith(('rescorer.train', 'rescorer.quant', 'rescorer.cli.cmd_'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "['rescorer.cli.cmd_rescore']"
    r = CliRunner().invoke(cli, ["--help"])
    listed = {line.split()[0] for line in r.output.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == {"eval", "export", "import", "info", "interpolate", "nbest", "plot", "report", "rescore",
                      "sensitivity", "train", "wer"}


def test_rescore_as_a_process_ends_early_with_everything_written(tmp_path):
    """'admmq rescore' skips the interpreter's teardown once its outputs are closed (rescorer.cli.main):
    stdout is complete, the exit status 0, every output in place."""
    import subprocess
    import sys

    import torch

    from rescorer.lm.model import LSTMLM, ModelConfig
    from rescorer.lm.vocab import Vocab
    from rescorer.pack.checkpoint import save_checkpoint
    from tests.test_rescore import ptb_tts_slice

    d, ref = ptb_tts_slice(tmp_path, lines=200)
    vocab = Vocab.build([ln.split()[1:] for ln in (d / "words_text").read_text().splitlines()])
    torch.manual_seed(0)
    m = LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=8, hidden_dim=8))
    save_checkpoint(tmp_path / "lm.pt", {"model_config": m.cfg.to_dict(), "units": vocab.to_state(),
                                         "model": m.state_dict(), "method_config": {"method": "fp"}})
    r = subprocess.run([sys.executable, "-m", "rescorer.cli", "rescore", str(d), "--lm", str(tmp_path / "lm.pt"),
                        "-o", str(tmp_path / "out"), "--lm-scale", "5", "--wip", "0", "--ref", str(ref), "--quiet"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[-2].startswith("time (s): startup") and lines[-1].startswith("outputs in ")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["timing"]["startup"] > 0 and summary["hypotheses"] == 200
    assert len((tmp_path / "out" / "text").read_text().splitlines()) == 2


def test_rescore_on_the_cpu_kernels_never_imports_torch(tmp_path):
    """Importing PyTorch is most of a short run's time: the kernel path reads the model with numpy
    (--carry-over too: its start states are numpy tables)."""
    import os
    import subprocess
    import sys

    from rescorer.lm.model import LSTMLM, ModelConfig
    from rescorer.lm.vocab import Vocab
    from rescorer.pack.checkpoint import save_checkpoint
    from tests.test_log_normalizer import CAN_BUILD
    from tests.test_rescore import ptb_tts_slice

    d, ref = ptb_tts_slice(tmp_path, lines=100)
    vocab = Vocab.build([ln.split()[1:] for ln in (d / "words_text").read_text().splitlines()])
    m = LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=8, hidden_dim=8))
    save_checkpoint(tmp_path / "lm.pt", {"model_config": m.cfg.to_dict(), "units": vocab.to_state(),
                                         "model": m.state_dict(), "method_config": {"method": "fp"}})
    code = ("import sys\nimport rescorer.cli as c\ntry:\n    c.cli.main(args=sys.argv[1:], standalone_mode=False)\n"
            "except SystemExit:\n    pass\nprint('torch' in sys.modules)")
    args = ["rescore", str(d), "--lm", str(tmp_path / "lm.pt"), "--lm-scale", "5", "--wip", "0", "--quiet"]
    chosen = {}
    for flags, native, torch_expected in ((["--threads", "1"], "1", not CAN_BUILD), (["--threads", "1"], "0", True),
                                          (["--threads", "0"], "1", True), (["--int8"], "1", True),
                                          (["--threads", "1", "--carry-over", "kaldi"], "1", not CAN_BUILD),
                                          (["--threads", "1", "--carry-over", "kaldi"], "0", True)):
        # --threads 0: PyTorch's default, two threads here; ADMMQ_NATIVE=0: as on a machine without the kernels
        env = dict(os.environ, OMP_NUM_THREADS="2", ADMMQ_NATIVE=native)
        o = tmp_path / f"o{len(chosen)}"
        out = subprocess.run([sys.executable, "-c", code] + args + ["-o", str(o)] + flags,
                             capture_output=True, text=True, check=True, env=env).stdout
        assert out.strip().splitlines()[-1] == str(torch_expected), (flags, native, out)
        chosen[len(chosen)] = (o / "text").read_text()
    assert chosen[0] == chosen[1] == chosen[2]  # the fallbacks choose the same hypotheses
    assert chosen[4] == chosen[5]  # carry-over on the kernels (numpy state tables) and on PyTorch
