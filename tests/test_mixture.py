"""MixtureScorer: linear interpolation per word, vocabulary mapping, the OOV policy, load_scorer, weights files."""

import json
import math

import numpy as np
import pytest
import torch

from rescorer.errors import AdmmqError, FormatError, MismatchError
from rescorer.ngram.mixture import MixtureScorer, OovPolicy
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.ngram.ngram_lm import NgramScorer
from rescorer.ngram.scorers import load_scorer, unseen_types
from rescorer.lm.scoring import NeuralScorer
from rescorer.lm.vocab import Vocab
from rescorer.ngram.weightsfile import read_weights, write_weights

from ngram_fixtures import TINY_ARPA, backoff_arpa, write

LN10 = math.log(10)
# a unigram model whose vocabulary has "d" but not "c" (TINY_ARPA has "c" but not "d")
UNIGRAM_ARPA = """\\data\\
ngram 1=6

\\1-grams:
-1.2\t<unk>
-99\t<s>
-0.5\t</s>
-0.6\ta
-0.8\tb
-0.9\td

\\end\\
"""


@pytest.fixture
def two(tmp_path):
    return (NgramScorer(write(tmp_path / "a.arpa", TINY_ARPA), backend="builtin"),
            NgramScorer(write(tmp_path / "b.arpa", UNIGRAM_ARPA), backend="builtin"))


def lg(*terms):
    """ln of sum of weight * 10**log10p over (weight, log10p) pairs."""
    return math.log(sum(w * 10 ** p for w, p in terms))


def test_hand_computed_mixture_and_vocabulary_mapping(two):
    a, b = two
    ws = MixtureScorer([a, b], [0.25, 0.75]).score([["a", "c", "d", "zz"]])
    expected = [
        lg((0.25, -0.3), (0.75, -0.6)),  # a: both know it
        -0.6 * LN10,  # c: only the trigram knows it -> its probability alone
        -0.9 * LN10,  # d: only the unigram model knows it
        # zz: no one knows it -> each model's <unk> probability shared among 10^4 types, then mixed
        # (the trigram sees "d" as <unk>: p(<unk> | c <unk>) = p(<unk>) = -1.0)
        lg((0.25, -1.0 - 4), (0.75, -1.2 - 4)),
        lg((0.25, -0.6), (0.75, -0.5)),  # </s> | <unk> <unk> and unigram </s>
    ]
    np.testing.assert_allclose(ws.logprob, expected, atol=1e-5)
    assert ws.oov.tolist() == [False, False, False, True, False]


@pytest.mark.parametrize("policy,expected", [
    (OovPolicy("fixed", logprob=-20.0), -20.0),
    (OovPolicy("unk"), lg((0.25, -1.0), (0.75, -1.2))),
    (OovPolicy("share", types=100), lg((0.25, -1.0 - 2), (0.75, -1.2 - 2))),
])
def test_oov_policies(two, policy, expected):
    ws = MixtureScorer(list(two), [0.25, 0.75], policy).score([["a", "c", "d", "zz"]])
    assert ws.logprob[3] == pytest.approx(expected, abs=1e-5)


def test_class_token_is_every_components_unknown_word(tmp_path):
    torch.manual_seed(0)
    vocab = Vocab(["a", "b", "c"], unk="<UNK>")
    lstm = LSTMLM(ModelConfig(vocab_size=len(vocab), embed_dim=8, hidden_dim=8)).eval()
    neural = NeuralScorer(lstm, vocab)
    ng = NgramScorer(write(tmp_path / "a.arpa", TINY_ARPA), backend="builtin")  # spells it <unk>
    mixture = MixtureScorer([neural, ng], [0.5, 0.5])
    ws = mixture.score([["a", "<unk>", "b"]])
    assert not ws.oov.any() and not mixture.is_oov("<unk>") and not mixture.is_oov("<UNK>")
    cs = mixture.component_scores([["a", "<unk>", "b"]])
    np.testing.assert_allclose(cs.raw[0], neural.score([["a", "<UNK>", "b"]]).logprob, atol=1e-6)
    np.testing.assert_allclose(cs.raw[1], ng.score([["a", "<unk>", "b"]]).logprob, atol=1e-9)
    # a word outside the LSTM's vocabulary but in the n-gram's is the n-gram's alone
    assert mixture.component_scores([["a", "b"]]).complete.all()
    # unseen by both: each component scores its own unknown-word token (<UNK> / <unk>), less the same share
    zz = mixture.component_scores([["zz"]])
    unk = [neural.score([["<UNK>"]]).logprob[0], ng.score([["<unk>"]]).logprob[0]]
    np.testing.assert_allclose(zz.raw[:, 0], unk, atol=1e-6)
    share = zz.raw[:, 0] - zz.logprob[:, 0]
    assert share[0] > 0 and share[0] == pytest.approx(share[1])
    mixed = math.log(0.5 * math.exp(zz.logprob[0, 0]) + 0.5 * math.exp(zz.logprob[1, 0]))
    assert mixture.score([["zz"]]).logprob[0] == pytest.approx(mixed, abs=1e-6)


def test_mixture_of_normalised_models_is_normalised(tmp_path):
    words = list("abcd")
    m1 = NgramScorer(write(tmp_path / "1.arpa", backoff_arpa([list("abcd"), list("abca"), list("dd")], 3)))
    m2 = NgramScorer(write(tmp_path / "2.arpa", backoff_arpa([list("dcba"), list("bb"), list("cad")], 2)))
    mix = MixtureScorer([m1, m2], [0.3, 0.7])
    for h in ([], ["a"], ["d", "c"], ["a", "b", "c"]):
        ws = mix.score([h + [w] for w in words] + [h])
        last = [ws.sentence(i)[len(h)] for i in range(len(words) + 1)]
        assert abs(sum(math.exp(x) for x in last) - 1.0) < 1e-4, h


def test_weights_are_checked_and_normalised(two):
    assert MixtureScorer(list(two), [1, 3]).weights.tolist() == [0.25, 0.75]
    for bad in ([1.0], [-1, 2], [0, 0], [float("nan"), 1]):
        with pytest.raises(AdmmqError):
            MixtureScorer(list(two), bad)
    with pytest.raises(AdmmqError):
        OovPolicy("share", types=0)
    with pytest.raises(AdmmqError):
        OovPolicy("nope")


def test_load_scorer_weights_file_list_and_single(tmp_path):
    a = write(tmp_path / "a.arpa", TINY_ARPA)
    b = write(tmp_path / "b.arpa", UNIGRAM_ARPA)
    w = tmp_path / "w.json"
    write_weights(w, ["ngram", "ngram"], [str(a), str(b)], [0.4, 0.6], OovPolicy("fixed", logprob=-9.0))
    from_file = load_scorer(weights=w, ngram_backend="builtin")  # the file's own paths
    assert from_file.weights.tolist() == [0.4, 0.6] and from_file.oov.mode == "fixed"
    assert from_file.kinds == ["ngram", "ngram"]
    listed = load_scorer(ngram_paths=[a, b], weights="0.4,0.6", ngram_backend="builtin")
    s = [["a", "c", "zz", "b"]]
    assert listed.oov.mode == "share"  # no file: the default policy
    np.testing.assert_allclose(from_file.score(s).logprob[[0, 1, 3, 4]], listed.score(s).logprob[[0, 1, 3, 4]])
    assert from_file.score(s).logprob[2] == -9.0
    single = load_scorer(ngram_paths=[a], ngram_backend="builtin")
    np.testing.assert_allclose(single.score([["a", "b"]]).logprob, NgramScorer(a).score([["a", "b"]]).logprob)
    with pytest.raises(AdmmqError, match="need interpolation weights"):
        load_scorer(ngram_paths=[a, b])
    with pytest.raises(AdmmqError, match="3 interpolation weight"):
        load_scorer(ngram_paths=[a, b], weights=[0.2, 0.3, 0.5])
    with pytest.raises(MismatchError, match=r"weights are for \(ngram, ngram\)"):
        load_scorer(ngram_paths=[a], weights=w)
    with pytest.raises(AdmmqError, match="expected a weights file"):
        load_scorer(ngram_paths=[a], weights="w.jsn")
    assert unseen_types(listed, ["a", "c", "d", "zz", "yy", "<eps>", "#0"]) == 2


def test_malformed_weights_files(tmp_path):
    p = tmp_path / "w.json"
    p.write_text('{"format": "admmq-interpolation-weights",\n "version": 1,\n "components": [}\n')
    with pytest.raises(FormatError) as err:
        read_weights(p)
    assert err.value.line == 3
    p.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(FormatError, match="not an admmq interpolation-weights file"):
        read_weights(p)
    p.write_text(json.dumps({"format": "admmq-interpolation-weights", "version": 1,
                             "components": [{"kind": "lstm", "path": "x", "weight": -1}]}))
    with pytest.raises(FormatError, match="weight"):
        read_weights(p)
