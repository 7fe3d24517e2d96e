"""Faults: kill -9 and resume (small version of bench/kill_resume.py), full disk, unwritable output paths."""

from __future__ import annotations

import shutil
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from bench.kill_resume import (RESCORE_OUTPUTS, _admmq, _env, fingerprint, finished, prepare, prepare_rescore,
                               rescore_outputs_ok, run_to_end, same, train_cmd)
from rescorer.pack.checkpoint import save_checkpoint
from rescorer.cli.group import cli
from rescorer.errors import AdmmqError
from rescorer.fileio import atomic_open, check_free_space, remove_stale_temps
from rescorer.lm.model import ModelConfig
from rescorer.train.loop import TrainConfig, train

from write_faults import FileWithFault, disk_full


@pytest.mark.slow
def test_training_killed_after_a_checkpoint_resumes_from_it_to_the_same_model(tmp_path):
    data = prepare(tmp_path, 60)
    ref = tmp_path / "reference"
    run_to_end(data, ref, "admm")
    out = tmp_path / "killed"
    last = out / "last.pt"
    p = _admmq(train_cmd(data, out, "admm", resume=False))
    deadline = time.time() + 120
    while not last.exists():  # kill -9 as soon as the first last.pt is there (written every 3 steps)
        assert p.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.communicate()
    ck = torch.load(last, map_location="cpu", weights_only=True)  # whole, loadable
    epoch, step = ck["trainer"]["epoch"], ck["trainer"]["step"]
    assert not finished(out) and p.returncode == -signal.SIGKILL
    run_to_end(data, out, "admm")  # resumes: last.pt exists
    assert f"resumed {last}: epoch {epoch + 1}, step {step}" in (out / "train.log").read_text()
    assert same(fingerprint(out / "best.pt"), fingerprint(ref / "best.pt"))
    assert same(fingerprint(out / "last.pt"), fingerprint(ref / "last.pt"))


# run `admmq rescore` with the file writes of rescorer.fileio.atomic_open wrapped: after the first write into
# the temporary file of the output named in argv[1] (its first byte), the process sends itself SIGKILL
_KILL_MID_WRITE = """
import os, sys
import rescorer.fileio as fileio
from write_faults import FileWithFault, kill_self

def _open(path, *args, **kw):
    fh = open(path, *args, **kw)
    return FileWithFault(fh, 1, kill_self) if os.path.basename(str(path)).startswith("." + sys.argv[1] + ".") else fh

fileio.open = _open
from rescorer.cli import cli
cli(sys.argv[2:], prog_name="admmq")
"""


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["summary.json"])  # text, nbest.txt, lmwt.new, wer.txt are written before
def test_rescoring_killed_while_writing_leaves_outputs_whole_or_absent(tmp_path, victim):
    args = prepare_rescore(tmp_path, utterances=5)
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, "-m", "rescorer"] + args + ["-o", str(ref)], check=True, env=_env())
    out = tmp_path / "out"
    env = dict(_env(), PYTHONPATH=f"{Path(__file__).parent}{os.pathsep}{_env()['PYTHONPATH']}")  # write_faults
    p = subprocess.run([sys.executable, "-c", _KILL_MID_WRITE, victim] + args + ["-o", str(out)], env=env)
    assert p.returncode == -signal.SIGKILL
    temps = list(out.glob(f".{victim}.*.tmp"))
    assert len(temps) == 1 and temps[0].stat().st_size > 0  # killed with the output half written
    assert not (out / victim).exists()
    before = RESCORE_OUTPUTS[:RESCORE_OUTPUTS.index(victim)]
    assert all((out / n).read_bytes() == (ref / n).read_bytes() for n in before if n != "wer.txt")
    assert rescore_outputs_ok(out, ref)  # each output there is whole (byte-equal to the reference)
    subprocess.run([sys.executable, "-m", "rescorer"] + args + ["-o", str(out)], check=True, env=_env())
    assert rescore_outputs_ok(out, ref) and not list(out.glob(".*.tmp"))
    assert all((out / n).exists() for n in RESCORE_OUTPUTS)


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


def writes_fail_and_leave_nothing(d):
    """An 800 kB checkpoint and a growing text output in ``d`` fail with the one-line disk-full error and
    leave no file behind (not even a temporary one)."""
    big = {"model": {"w": torch.zeros(200_000)}}  # 800 kB, more than the space there is
    with pytest.raises(AdmmqError, match="disk full|No space"):
        save_checkpoint(d / "last.pt", big)
    with pytest.raises(AdmmqError, match="No space"):
        with atomic_open(d / "text") as fh:
            for _ in range(40_000):
                fh.write("utt-1 some words of a hypothesis\n")
    assert sorted(p.name for p in d.iterdir()) == []


def test_disk_filling_up_while_writing_leaves_nothing(tiny_fs):
    writes_fail_and_leave_nothing(tiny_fs)


def test_disk_filling_up_while_writing_leaves_nothing_without_mount_rights(tmp_path, monkeypatch):
    """The same as the tmpfs test, as any user: the writes themselves fail with ENOSPC after 64 KiB."""
    import rescorer.fileio as fileio

    real_open, real_save = open, torch.save
    def full_after_64k(path, *a, **kw):
        return FileWithFault(real_open(path, *a, **kw), 65536, disk_full)

    monkeypatch.setattr(fileio, "open", full_after_64k, raising=False)
    monkeypatch.setattr(torch, "save", lambda obj, path: real_save(obj, full_after_64k(path, "wb")))
    writes_fail_and_leave_nothing(tmp_path)


def test_full_disk_before_training_without_mount_rights(ptb_slice, tmp_path, monkeypatch):
    import rescorer.fileio as fileio

    monkeypatch.setattr(fileio.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1 << 30, 1 << 30, 200_000))
    cfg = TrainConfig(train=str(ptb_slice / "train.txt"), valid=str(ptb_slice / "valid.txt"), epochs=1,
                      device="cpu", max_sentences=50)
    with pytest.raises(AdmmqError, match="not enough free disk space for the checkpoints") as exc:
        train(tmp_path / "run", cfg, ModelConfig(vocab_size=0, embed_dim=32, hidden_dim=32), quiet=True)
    assert "0.2 MiB free" in str(exc.value) and not (tmp_path / "run" / "last.pt").exists()


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
