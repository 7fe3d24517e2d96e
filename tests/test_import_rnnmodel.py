"""admmq import: a plain-PyTorch RNNModel LSTM LM (word_language_model example, Kaldi steps/pytorchnn)."""

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from click.testing import CliRunner

from rescorer.pack.lm_file import load_lm
from rescorer.cli.group import cli
from rescorer.train.import_rnnmodel import import_rnnmodel
from rescorer.lm.scoring import NeuralScorer


class RNNModel(nn.Module):
    """The example's model, written here: embedding -> dropout -> LSTM -> dropout -> linear (seq-first)."""

    def __init__(self, ntoken, ninp, nhid, nlayers, dropout=0.2, tie_weights=False):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout if nlayers > 1 else 0.0)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if not tie_weights:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        self.nlayers, self.nhid = nlayers, nhid

    def forward(self, inputs, hidden):
        """inputs (T, B) ids -> (T, B, ntoken) log-probabilities and the state."""
        emb = self.drop(self.encoder(inputs))
        output, hidden = self.rnn(emb, hidden)
        return F.log_softmax(self.decoder(self.drop(output)), dim=-1), hidden

    def init_hidden(self, bsz):
        z = torch.zeros(self.nlayers, bsz, self.nhid)
        return (z, z.clone())


def dictionary(lines, wrap):
    """idx2word in first-appearance order over the sentences as the script tokenizes them."""
    idx2word, word2idx = [], {}
    for line in lines:
        for w in wrap(line.split()):
            if w not in word2idx:
                word2idx[w] = len(idx2word)
                idx2word.append(w)
    return idx2word, word2idx


def train_a_little(model, ids, steps=30, bptt=20, batch=8, lr=5.0):
    """The example's loop: the token stream batchified, truncated BPTT, plain SGD with clipping."""
    n = len(ids) // batch
    data = torch.tensor(ids[: n * batch]).view(batch, n).t().contiguous()  # (n, batch)
    model.train()
    hidden = model.init_hidden(batch)
    for step in range(steps):
        i = (step * bptt) % (n - 1 - bptt)
        x, y = data[i:i + bptt], data[i + 1:i + 1 + bptt]
        hidden = tuple(h.detach() for h in hidden)
        model.zero_grad()
        out, hidden = model(x, hidden)
        F.nll_loss(out.view(-1, out.size(-1)), y.reshape(-1)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
    return model.eval()


def own_sentence_logprob(model, word2idx, words, start, end, drop=None):
    """The model's own ln P(words end | start), from a zero state; ``drop``: an output left out (renormalised)."""
    ids = torch.tensor([word2idx[start]] + [word2idx[w] for w in words]).view(-1, 1)
    targets = [word2idx[w] for w in words] + [word2idx[end]]
    with torch.no_grad():
        emb = model.encoder(ids)
        out, _ = model.rnn(emb, model.init_hidden(1))
        logits = model.decoder(out)[:, 0].double()
        if drop is not None:
            logits[:, word2idx[drop]] = -float("inf")
        lp = torch.log_softmax(logits, dim=-1)
    return float(sum(lp[t, y] for t, y in enumerate(targets)))


@pytest.fixture(scope="module")
def example_model(ptb_slice, tmp_path_factory):
    """word_language_model style: <eos> after every line, 2 tied layers, vocabulary one word a line."""
    d = tmp_path_factory.mktemp("wlm")
    lines = [ln for split in ("train", "valid", "test") for ln in (ptb_slice / f"{split}.txt").read_text().splitlines()]
    idx2word, word2idx = dictionary(lines, lambda ws: ws + ["<eos>"])
    torch.manual_seed(11)
    model = RNNModel(len(idx2word), 24, 24, 2, tie_weights=True)
    stream = [word2idx[w] for ln in (ptb_slice / "train.txt").read_text().splitlines() for w in ln.split() + ["<eos>"]]
    train_a_little(model, stream)
    torch.save(model.state_dict(), d / "model.pt")
    (d / "vocab.txt").write_text("".join(w + "\n" for w in idx2word))
    return model, word2idx, d


@pytest.fixture(scope="module")
def kaldi_model(ptb_slice, tmp_path_factory):
    """'<s> words </s>' sentences, untied, vocabulary 'word index' lines (shuffled)."""
    d = tmp_path_factory.mktemp("kaldi")
    lines = [ln for split in ("train", "valid", "test") for ln in (ptb_slice / f"{split}.txt").read_text().splitlines()]
    idx2word, word2idx = dictionary(lines, lambda ws: ["<s>"] + ws + ["</s>"])
    torch.manual_seed(12)
    model = RNNModel(len(idx2word), 16, 20, 1)
    stream = [word2idx[w] for ln in (ptb_slice / "train.txt").read_text().splitlines()
              for w in ["<s>"] + ln.split() + ["</s>"]]
    train_a_little(model, stream)
    torch.save(model.state_dict(), d / "model.pt")
    order = np.random.default_rng(0).permutation(len(idx2word))
    (d / "words.txt").write_text("".join(f"{idx2word[i]} {i}\n" for i in order))
    return model, word2idx, d


def valid_sentences(ptb_slice, n=40):
    return [ln.split() for ln in (ptb_slice / "valid.txt").read_text().splitlines()[:n]]


def test_example_model_scores_as_it_does_itself(example_model, ptb_slice, tmp_path):
    model, word2idx, d = example_model
    res = import_rnnmodel(d / "model.pt", d / "vocab.txt", tmp_path / "lm.pt")
    assert res.tied and res.layers == 2 and res.end == res.start == "<eos>" and res.unk == "<unk>"
    assert res.vocab_size == res.original_size + 1 and res.start_output is None  # admmq's <s>: a copy of <eos>
    lm = load_lm(tmp_path / "lm.pt")
    sents = valid_sentences(ptb_slice)
    got = NeuralScorer(lm.model, lm.units).score(sents).totals()
    want = [own_sentence_logprob(model, word2idx, s, "<eos>", "<eos>") for s in sents]
    assert np.allclose(got, want, atol=1e-5, rtol=0)  # float32 sums of ~25 terms: ~1e-6 apart
    assert np.mean(want) / np.mean([len(s) + 1 for s in sents]) > -np.log(len(word2idx))  # it learned


def test_kaldi_style_model_with_indexed_vocabulary(kaldi_model, ptb_slice, tmp_path):
    model, word2idx, d = kaldi_model
    res = import_rnnmodel(d / "model.pt", d / "words.txt", tmp_path / "lm.pt", sent_boundary="<s>,</s>")
    assert not res.tied and (res.end, res.start) == ("</s>", "<s>") and res.start_output == "<s>@output"
    assert res.vocab_size == res.original_size + 1  # <s> as input (admmq's <s>) and as an output word
    lm = load_lm(tmp_path / "lm.pt")
    sents = valid_sentences(ptb_slice)
    got = NeuralScorer(lm.model, lm.units).score(sents).totals()
    want = [own_sentence_logprob(model, word2idx, s, "<s>", "</s>") for s in sents]
    assert np.allclose(got, want, atol=1e-5, rtol=0)
    # the <s> output's mass matters on this briefly trained model: dropping it would be far off
    renormalised = [own_sentence_logprob(model, word2idx, s, "<s>", "</s>", drop="<s>") for s in sents]
    assert np.abs(np.array(renormalised) - want).max() > 1e-2


def test_cli_import_then_eval_rescore_and_train_init_from(example_model, ptb_slice, tmp_path):
    model, word2idx, d = example_model
    out = tmp_path / "sub" / "imported.pt"
    r = CliRunner().invoke(cli, ["import", str(d / "model.pt"), "--vocab", str(d / "vocab.txt"), "-o", str(out),
                                 "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["tied"] is True and out.is_file()
    per = tmp_path / "per.txt"
    r = CliRunner().invoke(cli, ["eval", "--lm", str(out), "--text", str(ptb_slice / "valid.txt"), "--per-sentence",
                                 str(per), "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    sents = [ln.split() for ln in (ptb_slice / "valid.txt").read_text().splitlines()]
    want = np.array([own_sentence_logprob(model, word2idx, s, "<eos>", "<eos>") for s in sents])
    cost = np.array([float(ln.split()[1]) for ln in per.read_text().splitlines()])
    assert np.allclose(cost, -want, atol=1e-4)  # the costs file has 6 decimals
    ev = json.loads(r.output)
    tokens = sum(len(s) + 1 for s in sents)
    assert ev["oov"] == 0 and ev["ppl"] == pytest.approx(np.exp(-want.sum() / tokens), rel=1e-6)
    nb = tmp_path / "nb"
    nb.mkdir()
    (nb / "words_text").write_text("".join(f"u1-{k} {' '.join(s)}\n" for k, s in enumerate(sents[:3], 1)))
    (nb / "acwt").write_text("".join(f"u1-{k} 5.0\n" for k in range(1, 4)))
    r = CliRunner().invoke(cli, ["rescore", str(nb), "--lm", str(out), "--lm-scale", "1", "-o", str(tmp_path / "rs"),
                                 "--quiet"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["train", "--train", str(ptb_slice / "train.txt"), "--valid", str(ptb_slice / "valid.txt"),
                                 "--init-from", str(out), "-o", str(tmp_path / "ft"), "--epochs", "1",
                                 "--max-sentences", "40", "--lr", "0.1", "--device", "cpu", "--quiet"])
    assert r.exit_code == 0, r.output
    ft = load_lm(tmp_path / "ft" / "best.pt")
    assert ft.model.cfg.tie_embeddings and ft.model.cfg.layers == 2 and ft.units == load_lm(out).units


def test_import_errors_are_one_line(example_model, tmp_path):
    model, word2idx, d = example_model
    sd = model.state_dict()

    def run(weights, vocab):
        r = CliRunner().invoke(cli, ["import", str(weights), "--vocab", str(vocab), "-o", str(tmp_path / "x.pt"),
                                     "--quiet"])
        assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
        assert r.output.startswith("admmq: error:") and not (tmp_path / "x.pt").exists()
        return r.output

    no_bias = {k: v for k, v in sd.items() if k != "decoder.bias"}
    torch.save(no_bias, tmp_path / "nobias.pt")
    assert "missing ['decoder.bias']" in run(tmp_path / "nobias.pt", d / "vocab.txt")
    bad = dict(sd, **{"rnn.weight_hh_l1": torch.zeros(96, 23)})
    torch.save(bad, tmp_path / "shape.pt")
    assert "weight_hh_l1" in run(tmp_path / "shape.pt", d / "vocab.txt")
    short = tmp_path / "short.txt"
    short.write_text("".join(w + "\n" for w in list(word2idx)[:-1]))
    assert f"has {len(word2idx) - 1} words but the model has {len(word2idx)} rows" in run(d / "model.pt", short)
    torch.save(model, tmp_path / "whole.pt")  # the pickled module, not its state dict
    assert "save model.state_dict()" in run(tmp_path / "whole.pt", d / "vocab.txt")
    gru = {k.replace("rnn.", "rnn."): v[: v.shape[0] * 3 // 4] if k.startswith("rnn.") else v for k, v in sd.items()}
    torch.save(gru, tmp_path / "gru.pt")
    assert "GRU" in run(tmp_path / "gru.pt", d / "vocab.txt")


@pytest.fixture(scope="module")
def pytorchnn_model(ptb_slice, tmp_path_factory):
    """Kaldi steps/pytorchnn style: running text with '<s>' after every line, vocabulary Kaldi's words.txt
    ('word index' lines: <eps> 0, the words, #0, <s>, </s>), tied."""
    d = tmp_path_factory.mktemp("pytorchnn")
    lines = [ln for split in ("train", "valid", "test") for ln in (ptb_slice / f"{split}.txt").read_text().splitlines()]
    words, _ = dictionary(lines, lambda ws: ws)
    idx2word = ["<eps>"] + words + ["#0", "<s>", "</s>"]
    word2idx = {w: i for i, w in enumerate(idx2word)}
    torch.manual_seed(13)
    model = RNNModel(len(idx2word), 20, 20, 1, tie_weights=True)
    stream = [word2idx[w] for ln in (ptb_slice / "train.txt").read_text().splitlines() for w in ln.split() + ["<s>"]]
    train_a_little(model, stream)
    torch.save(model.state_dict(), d / "model.pt")
    (d / "words.txt").write_text("".join(f"{w} {i}\n" for i, w in enumerate(idx2word)))
    return model, word2idx, d


def test_kaldi_pytorchnn_model_takes_s_for_both_ends_and_keeps_it_through_export(pytorchnn_model, ptb_slice,
                                                                               tmp_path):
    model, word2idx, d = pytorchnn_model
    res = import_rnnmodel(d / "model.pt", d / "words.txt", tmp_path / "lm.pt")
    assert res.start == res.end == "<s>" and res.start_output is None
    assert res.vocab_size == res.original_size + 1  # admmq's <s>: a copy of <s>'s row, an input only
    lm = load_lm(tmp_path / "lm.pt")
    assert lm.units.sent_boundary == "<s>" and "</s>@output" in lm.units.index_of and "<eps>" in lm.units.index_of
    sents = valid_sentences(ptb_slice)
    want = [own_sentence_logprob(model, word2idx, s, "<s>", "<s>") for s in sents]  # Kaldi's <s> w1..wn <s>
    got = NeuralScorer(lm.model, lm.units).score(sents).totals()
    assert np.allclose(got, want, atol=1e-5, rtol=0)
    # the boundary survives export: the packed file's vocabulary says it, and scores are the same
    r = CliRunner().invoke(cli, ["export", "--lm", str(tmp_path / "lm.pt"), "-o", str(tmp_path / "q.pt"), "--quiet"])
    assert r.exit_code == 0, r.output
    packed = load_lm(tmp_path / "q.pt")
    assert packed.units.sent_boundary == "<s>" and packed.units == lm.units
    assert np.allclose(NeuralScorer(packed.model, packed.units).score(sents).totals(), got, atol=1e-5)
    # the old default (separate <s>/</s>) would end every sentence with </s>, a row this model never trained
    other = import_rnnmodel(d / "model.pt", d / "words.txt", tmp_path / "two.pt", sent_boundary="<s>,</s>")
    assert (other.start, other.end) == ("<s>", "</s>")
    two = load_lm(tmp_path / "two.pt")
    assert NeuralScorer(two.model, two.units).score(sents).totals().mean() < np.mean(want) - 1.0
    r = CliRunner().invoke(cli, ["import", str(d / "model.pt"), "--vocab", str(d / "words.txt"), "-o",
                                 str(tmp_path / "x.pt"), "--sent-boundary", "<bos>", "--quiet"])
    assert r.exit_code == 1 and "'<bos>' is not in the vocabulary" in r.output
