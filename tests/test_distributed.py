"""Data-parallel training (gloo, 2 CPU processes) equals single-process training with the same global batch.

Tolerance: the two runs do the same arithmetic except the order of float32
sums (each rank sums its sentences' gradients, then the all-reduce adds the
two partial sums; the single process sums all sentences in one pass).  Each
step's gradient therefore differs by a few float32 ulps (~1e-7 relative);
over the ~30 SGD steps at lr 1 of these runs that grows to ~1e-5 on the
weights (measured: ≤ 8e-6), so weights must agree to 2e-4 absolute and
validation perplexities to 1e-5 relative.  ADMM codes are compared exactly
(a weight within 1e-5 of a decision threshold could flip one; none does).
Across the ranks of one run the weights and ADMM state must be bitwise equal.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from rescorer.train.distributed import Dist, init_from_env, sharded_sentence_batches, spawn
from rescorer.lm.batching import epoch_order, sentence_batches
from rescorer.lm.corpus import encode_sentences
from rescorer.errors import AdmmqError
from rescorer.lm.model import ModelConfig
from rescorer.quant import MethodConfig
from rescorer.train.loop import TrainConfig, train
from rescorer.lm.vocab import Vocab

METHODS = ("fp", "admm", "bin", "bin-lin", "multibit")


def _cfgs(data: Path, epochs: int = 1):
    cfg = TrainConfig(train=str(data / "train.txt"), valid=str(data / "valid.txt"), epochs=epochs, batch_size=7,
                      max_sentences=90, device="cpu", save_every=5, schedule="constant")
    return cfg, ModelConfig(vocab_size=0, embed_dim=12, hidden_dim=12)


def _rank_state(out: Path):
    ck = torch.load(out / "last.pt", weights_only=True)
    return ck


def _train_every_method(root: str, data: str):
    """Runs in each of the 2 spawned processes: every method 1 epoch, ADMM resumed for a 2nd epoch."""
    dist = init_from_env("cpu")
    root_p, data_p = Path(root), Path(data)
    cfg, mcfg = _cfgs(data_p)
    for method in METHODS:
        out = root_p / f"ddp-{method}"
        train(out, cfg, mcfg, MethodConfig(method=method), quiet=True, dist=dist)
    train(root_p / "ddp-admm", resume=True, epochs=2, quiet=True, dist=dist)
    # what this rank holds, to check that the ranks agree bitwise
    from rescorer.train.loop import Trainer
    t = Trainer(root_p / "ddp-admm", resume=True, quiet=True, dist=dist)
    torch.save({"model": t.model.state_dict(), "method": t.method.state_dict()}, root_p / f"rank{dist.rank}.pt")
    return dist.world


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(ptb_slice, tmp_path):
    world = spawn(2, _train_every_method, (str(tmp_path), str(ptb_slice)))
    assert world == 2
    cfg, mcfg = _cfgs(ptb_slice)
    for method in METHODS:
        single = tmp_path / f"one-{method}"
        train(single, cfg, mcfg, MethodConfig(method=method), quiet=True,
              epochs=2 if method == "admm" else 1)
        a, b = _rank_state(single), _rank_state(tmp_path / f"ddp-{method}")
        assert a["trainer"]["epoch"] == b["trainer"]["epoch"], method
        for k in a["model"]:
            diff = (a["model"][k] - b["model"][k]).abs().max().item()
            assert diff < 2e-4, (method, k, diff)
        for k in a["quantized"]:
            assert torch.equal(a["quantized"][k]["codes"], b["quantized"][k]["codes"]), (method, k)
        for ra, rb in zip(a["log"], b["log"]):
            for col in ("valid_ppl", "valid_ppl_q", "train_ppl"):
                if ra[col] is not None:
                    assert abs(ra[col] - rb[col]) <= 1e-5 * ra[col], (method, col, ra[col], rb[col])
        assert len(b["trainer"]["rng_cpu_ranks"]) == 2
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in r0["model"]:
        assert torch.equal(r0["model"][k], r1["model"][k]), k
    for store in ("codes", "alpha", "lam"):
        for k in r0["method"][store]:
            assert torch.equal(r0["method"][store][k], r1["method"][store][k]), (store, k)


def test_shards_cover_the_global_batch_with_its_norm(ptb_slice):
    lines = (ptb_slice / "train.txt").read_text().splitlines()[:23]
    sents = [ln.split() for ln in lines]
    vocab = Vocab.build(sents)
    corpus = encode_sentences(vocab, sents)
    order = epoch_order(len(corpus), 1, 0)
    full = list(sentence_batches(corpus, 5, order, vocab.bos_id, vocab.eos_id))
    parts = [list(sharded_sentence_batches(corpus, 5, order, vocab.bos_id, vocab.eos_id, 0, "token", Dist(r, 3)))
             for r in range(3)]
    assert all(len(p) == len(full) for p in parts)
    for i, batch in enumerate(full):
        got = sorted(int(j) for p in parts for j in p[i].index)
        assert got == sorted(int(j) for j in batch.index)
        assert {p[i].norm for p in parts} == {float(batch.ntokens)}
    last = [p[-1] for p in parts]  # 23 = 4*5 + 3 sentences: the last batch has 3 rows, one per rank
    assert [b.inputs.shape[0] for b in last] == [1, 1, 1]


def test_streaming_is_refused_with_several_processes(ptb_slice, tmp_path):
    cfg, mcfg = _cfgs(ptb_slice)
    cfg = TrainConfig(**{**cfg.to_dict(), "bptt": 20})
    with pytest.raises(AdmmqError, match="bptt"):
        train(tmp_path / "s", cfg, mcfg, quiet=True, dist=Dist(0, 2))


def test_single_process_when_not_under_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_from_env("cpu") == Dist()
    assert os.environ.get("WORLD_SIZE") is None
