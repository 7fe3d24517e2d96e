"""bench/baselines.py: the Kaldi-like stand-in scores what Kaldi's compute_sentence_scores.py scores."""

import numpy as np
import pytest
import torch

import io
import tarfile

from bench.baselines import (extract_scripts, kaldi_inputs, kaldi_like_scores, kaldi_script_dir, per_utterance_scores,
                             within)
from bench.commands import run_timed
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.nbest.kaldi_dir import read_nbest
from rescorer.lm.scoring import NeuralScorer
from rescorer.lm.vocab import Vocab
from tests.conftest import ptb_lines
from tests.test_rescore import ptb_tts_slice

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

VOCAB = Vocab.build([line.split() for line in ptb_lines("train", 400)])


def small_model(layers=1):
    torch.manual_seed(0)
    m = LSTMLM(ModelConfig(vocab_size=len(VOCAB), embed_dim=16, hidden_dim=16, layers=layers)).eval()
    with torch.no_grad():  # larger weights than the init: the carried state changes scores visibly
        for p in m.parameters():
            p.mul_(4.0)
    return m


def utterances_of(tmp_path, lines=300):
    d, _ = ptb_tts_slice(tmp_path, lines=lines)  # 3 real utterances of 100 hypotheses
    nb = read_nbest(d)
    return [list(nb.words[nb.offsets[u]: nb.offsets[u + 1]]) for u in range(nb.num_utterances)]


@torch.no_grad()
def score_from(model, sentences, state):
    """-ln P(words </s>) of each sentence, one at a time, from ``state`` ((L, 1, H) pair)."""
    out = []
    for words in sentences:
        ids = VOCAB.encode_sentence(words).tolist()
        x = torch.tensor([[VOCAB.bos_id] + ids])
        y = torch.tensor([ids + [VOCAB.eos_id]])
        nll, _ = model.token_nll(x, y, state)
        out.append(float(nll.sum()))
    return np.array(out)


@pytest.mark.parametrize("layers", [1, 2])
def test_kaldi_like_scores_carry_the_first_hypothesis_state(tmp_path, layers):
    model = small_model(layers)
    utts = utterances_of(tmp_path)
    lp, steps, lines = kaldi_like_scores(model, VOCAB, utts, "cpu")
    n = [len(u) for u in utts]
    assert len(lp) == sum(n) == len(lines)
    # the first utterance starts from zeros: the zero-state scores admmq computes
    plain = NeuralScorer(model, VOCAB, prefix_sharing=False).score(utts[0]).totals()
    assert np.abs(lp[: n[0]] - plain).max() < 1e-4
    # each later one from the state after the previous utterance's first hypothesis (padded to its batch's
    # longest, from that utterance's own initial state)
    L, H = layers, 16
    state = (torch.zeros(L, 1, H), torch.zeros(L, 1, H))
    offset = 0
    for u, hyps in enumerate(utts):
        if u:
            expect = -score_from(model, hyps, state)
            got = lp[offset: offset + len(hyps)]
            assert np.abs(got - expect).max() < 1e-4
            assert np.abs(got - NeuralScorer(model, VOCAB, prefix_sharing=False).score(hyps).totals()).max() > 1e-3
        T = max(len(h) for h in hyps) + 1
        ids = VOCAB.encode_sentence(hyps[0]).tolist()
        x = torch.tensor([[VOCAB.bos_id] + ids + [VOCAB.bos_id] * (T - 1 - len(ids))])
        with torch.no_grad():
            _, state = model(x, state)
        offset += len(hyps)
    assert steps == sum(len(h) * (max(len(s) for s in h) + 1) + max(len(s) for s in h) + 1 for h in utts)
    # the text the script writes: key, then one cost per word and </s>, four decimals, summing to the score
    key, *costs = lines[1].split()
    assert key == "0-2" and len(costs) == len(utts[0][1]) + 1
    assert all(len(c.split(".")[1]) == 4 for c in costs)
    assert abs(sum(map(float, costs)) + lp[1]) < 1e-3 * len(costs)


def test_per_utterance_scores_equal_the_zero_state_scores(tmp_path):
    model = small_model()
    utts = utterances_of(tmp_path)
    lp, positions = per_utterance_scores(model, VOCAB, utts, "cpu")
    plain = NeuralScorer(model, VOCAB, prefix_sharing=False).score([h for u in utts for h in u]).totals()
    assert np.abs(lp - plain).max() < 1e-4
    assert positions == sum(len(u) * (max(len(h) for h in u) + 1) for u in utts)


def test_kaldi_inputs_are_the_scripts_formats(tmp_path):
    """The vocabulary (`word index`, <s> = 0), hypotheses (`<utt>-<rank> words`) and an RNNModel-layout state
    dict with tied embeddings, loadable into that layout."""
    model = small_model()
    utts = utterances_of(tmp_path)
    infile, vocab, weights = kaldi_inputs(model, VOCAB, utts, tmp_path)
    words = [ln.split() for ln in vocab.read_text().splitlines()]
    assert words[0] == ["<s>", "0"] and all(int(i) == k for k, (_, i) in enumerate(words))
    assert sorted(w for w, _ in words) == sorted(VOCAB.symbols)
    hyps = infile.read_text().splitlines()
    assert len(hyps) == sum(len(u) for u in utts) and hyps[100].split()[0] == "1-1"
    assert hyps[100].split()[1:] == list(utts[1][0])
    state = torch.load(weights, weights_only=True)
    V = len(words)
    layout = torch.nn.ModuleDict({"encoder": torch.nn.Embedding(V, 16), "rnn": torch.nn.LSTM(16, 16, 1),
                                  "decoder": torch.nn.Linear(16, V)})
    layout.load_state_dict(state)
    assert torch.equal(state["encoder.weight"], state["decoder.weight"])


def test_within_twenty_percent():
    assert within(36.0, 30.0) and within(24.0, 30.0)
    assert not within(36.1, 30.0) and not within(23.9, 30.0)


def make_tarball(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_the_scripts_are_extracted_from_the_kaldi_tarball_once(tmp_path):
    rel = "kaldi/egs/wsj/s5/steps/pytorchnn/"
    tgz = make_tarball(tmp_path / "k.tar.gz", {rel + "compute_sentence_scores.py": "print('scores')\n",
                                               rel + "model.py": "class RNNModel: pass\n",
                                               rel + "train.py": "x = 1\n", "kaldi/COPYING": "Apache\n",
                                               "kaldi/egs/other/model.py": "wrong\n"})
    d = extract_scripts(tgz, tmp_path / "cache")
    assert sorted(p.name for p in d.iterdir()) == ["COPYING", "compute_sentence_scores.py", "model.py"]
    assert (d / "model.py").read_text() == "class RNNModel: pass\n"
    stamp = (d / "model.py").stat().st_mtime_ns
    assert extract_scripts(tgz, tmp_path / "cache") == d and (d / "model.py").stat().st_mtime_ns == stamp
    assert kaldi_script_dir(None, tmp_path / "absent.tar.gz") is None
    bad = make_tarball(tmp_path / "bad.tar.gz", {rel + "compute_sentence_scores.py": "x\n"})
    with pytest.raises(SystemExit, match="holds no egs/wsj/s5/steps/pytorchnn/model.py"):
        extract_scripts(bad, tmp_path / "cache")


def test_run_timed_reports_the_commands_own_peak_memory_and_status():
    held = np.ones(200 * 2**20 // 8)  # this process holds 200 MiB more than the child will
    small = run_timed(["python3", "-c", "x = bytearray(40 * 2**20)"])
    big = run_timed(["python3", "-c", "x = bytearray(120 * 2**20)"])
    assert 40 <= small.max_rss_mib < 100 and 120 <= big.max_rss_mib < 180, (small.max_rss_mib, big.max_rss_mib)
    assert held.size and small.returncode == 0 and small.seconds > 0
    failed = run_timed(["python3", "-c", "import sys; print('out'); sys.exit(3)"])
    assert failed.returncode == 3 and failed.stdout == "out\n"
