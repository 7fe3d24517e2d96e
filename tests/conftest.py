"""Shared fixtures: small slices of the real Penn Treebank text (shipped gzipped in data/)."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
PTB_DIR = DATA / "ptb"
NBEST_DIR = DATA / "ptb-tts"
HUB5_GLM = DATA / "glm" / "en20030506.glm.gz"
SCTK_BIN = Path("/usr/lib/sctk/bin")  # Debian's sctk: sclite, csrfilt.sh, rfilter1, hubscr.pl
HAVE_SCTK = all(os.access(SCTK_BIN / t, os.X_OK) for t in ("sclite", "csrfilt.sh", "rfilter1", "hubscr.pl"))
# CI sets ADMMQ_REQUIRE_SCTK=1 (.ci/run): there the NIST oracle tests must run, so a missing sctk fails them
_skip_without_sctk = pytest.mark.skipif(not HAVE_SCTK and not os.environ.get("ADMMQ_REQUIRE_SCTK"),
                                        reason="NIST sctk not installed (bin/setup-env as root installs it)")


def needs_sctk(test):
    """Marks a test that runs sctk (marker ``sclite``): skipped without it, unless ADMMQ_REQUIRE_SCTK is set."""
    return pytest.mark.sclite(_skip_without_sctk(test))


@pytest.fixture
def sctk():
    """The sctk tool folder; fails (rather than skips) when ADMMQ_REQUIRE_SCTK is set and sctk is missing."""
    if not HAVE_SCTK:
        pytest.fail(f"ADMMQ_REQUIRE_SCTK is set but sctk is not installed in {SCTK_BIN}")
    if shutil.which("perl") is None:
        pytest.fail("sctk's csrfilt.sh and hubscr.pl need perl")
    return SCTK_BIN


def ptb_lines(split: str, n: int, start: int = 0):
    """The first ``n`` lines (after ``start``) of PTB's ``split`` file, newline included."""
    out = []
    with gzip.open(PTB_DIR / f"ptb.{split}.txt.gz", "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i < start:
                continue
            out.append(line)
            if len(out) >= n:
                break
    return out


@pytest.fixture(scope="session")
def ptb_slice(tmp_path_factory):
    """A small real PTB corpus: 400 training sentences, 80 validation, 80 test."""
    d = tmp_path_factory.mktemp("ptb")
    for split, n in (("train", 400), ("valid", 80), ("test", 80)):
        (d / f"{split}.txt").write_text("".join(ptb_lines(split, n)), encoding="utf-8")
    return d


def train_tiny(out: Path, ptb: Path, sentences: int, dim: int) -> Path:
    """A real LSTM LM of ``dim`` units trained for one epoch on the first ``sentences`` of ``ptb``/train.txt
    (constant lr, seed 1) into the run directory ``out``."""
    from rescorer.lm.model import ModelConfig
    from rescorer.train.loop import TrainConfig, train

    cfg = TrainConfig(train=str(ptb / "train.txt"), valid=str(ptb / "valid.txt"), epochs=1,
                      device="cpu", seed=1, schedule="constant", max_sentences=sentences)
    train(out, cfg, ModelConfig(vocab_size=0, embed_dim=dim, hidden_dim=dim), quiet=True)
    return out


@pytest.fixture(scope="session")
def tiny_lm(ptb_slice, tmp_path_factory):
    """A real LSTM LM (16 units) trained for one epoch on 200 PTB sentences."""
    return train_tiny(tmp_path_factory.mktemp("lm") / "run", ptb_slice, 200, 16) / "best.pt"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_torch_thread():
    """One PyTorch CPU thread for the test: scoring's many small products run ~10x slower with a
    second thread on a loaded 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
