"""Shared fixtures: small slices of the real Penn Treebank text (shipped gzipped in data/)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
PTB_DIR = DATA / "ptb"
NBEST_DIR = DATA / "ptb-tts"


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
