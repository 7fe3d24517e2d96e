"""Faults: kill -9 and resume (small version of bench/kill_resume.py), full disk, unwritable output paths."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from bench.kill_resume import kill_rescore_loop, kill_resume_loop
from rescorer.pack.checkpoint import save_checkpoint
from rescorer.cli.group import cli
from rescorer.errors import AdmmqError
from rescorer.fileio import atomic_open, check_free_space, remove_stale_temps
from rescorer.lm.model import ModelConfig
from rescorer.train.loop import TrainConfig, train


@pytest.mark.slow
def test_training_killed_at_random_moments_resumes_to_the_same_model(tmp_path):
    res = kill_resume_loop(tmp_path, trials=1, kills=1, method="admm", seed=5, sentences=60)
    assert res["matched"] == res["trials"] == 1, res
    assert all(d["loadable"] for d in res["details"]), res


@pytest.mark.slow
def test_rescoring_killed_leaves_outputs_whole_or_absent(tmp_path):
    res = kill_rescore_loop(tmp_path, trials=1, seed=3, utterances=5)
    assert res["ok"] == res["trials"] == 1, res


@pytest.fixture()
def tiny_fs(tmp_path):
    """A 256 KiB tmpfs (a real full disk); skipped where mounting is not allowed."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()[:100]}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_full_disk_is_a_clear_error_before_training_starts(ptb_slice, tiny_fs):
    cfg = TrainConfig(train=str(ptb_slice / "train.txt"), valid=str(ptb_slice / "valid.txt"), epochs=1,
                      device="cpu", max_sentences=50)
    with pytest.raises(AdmmqError, match="not enough free disk space for the checkpoints") as exc:
        train(tiny_fs / "run", cfg, ModelConfig(vocab_size=0, embed_dim=32, hidden_dim=32), quiet=True)
    assert "MiB free" in str(exc.value) and not (tiny_fs / "run" / "last.pt").exists()


def test_disk_filling_up_while_writing_leaves_nothing(tiny_fs):
    big = {"model": {"w": torch.zeros(200_000)}}  # 800 kB > 256 KiB
    with pytest.raises(AdmmqError, match="disk full|No space"):
        save_checkpoint(tiny_fs / "last.pt", big)
    with pytest.raises(AdmmqError, match="No space"):
        with atomic_open(tiny_fs / "text") as fh:
            for _ in range(40_000):
                fh.write("utt-1 some words of a hypothesis\n")
    assert sorted(p.name for p in tiny_fs.iterdir()) == []


def test_free_space_check_and_stale_temporaries(tmp_path):
    check_free_space(tmp_path, 1, "x")
    with pytest.raises(AdmmqError, match="not enough free disk space for the outputs"):
        check_free_space(tmp_path, 1 << 62, "the outputs")
    (tmp_path / ".text.abc123.tmp").write_text("partial")
    (tmp_path / ".other.abc.tmp").write_text("not ours")
    assert remove_stale_temps(tmp_path, ["text", "nbest.txt"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == [".other.abc.tmp"]


def test_output_under_a_file_is_one_line_before_work(ptb_slice, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    r = CliRunner().invoke(cli, ["train", "--train", str(ptb_slice / "train.txt"), "--valid",
                                 str(ptb_slice / "valid.txt"), "-o", str(blocker / "run"), "--quiet"])
    assert r.exit_code == 1 and "cannot create the output directory" in r.output, r.output
    nb = Path(__file__).resolve().parents[1] / "data" / "ptb-tts" / "dev"
    r = CliRunner().invoke(cli, ["rescore", str(nb), "--ngram", str(blocker), "--lm-scale", "5",
                                 "-o", str(blocker / "out"), "--quiet"])
    assert r.exit_code == 1 and "is not a directory" in r.output and "Traceback" not in r.output, r.output
