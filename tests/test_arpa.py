"""The ARPA reader and the built-in back-off scorer (rescorer.ngram.arpa)."""

import gzip
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import rescorer.ngram.arpa_reader as arpa_reader
from rescorer.ngram.arpa_reader import iter_entries, read_arpa
from rescorer.errors import FormatError

from ngram_fixtures import TINY_ARPA, TINY_EXPECTED, backoff_arpa, write


def log10_scores(model, words):
    toks = ["<s>"] + list(words) + ["</s>"]
    ids = model.ids(toks)
    return model.log10_probs(ids, np.arange(len(toks)))[1:]


def next_word_log10(model, history, candidates):
    """log10 p(w | <s> history) for every w in candidates, in one vectorised call."""
    toks, hist = [], []
    for w in candidates:
        s = ["<s>"] + list(history) + [w]
        toks += s
        hist += list(range(len(s)))
    lp = model.log10_probs(model.ids(toks), np.array(hist))
    ends = np.cumsum([len(history) + 2] * len(candidates)) - 1
    return lp[ends]


@pytest.fixture
def tiny(tmp_path):
    return write(tmp_path / "tiny.arpa", TINY_ARPA)


def test_reads_counts_words_and_entries(tiny):
    m = read_arpa(tiny)
    assert m.order == 3 and m.counts() == [6, 4, 2] and m.declared == [6, 4, 2]
    assert m.words == ["<unk>", "<s>", "</s>", "a", "b", "c"] and m.unk == "<unk>" and m.has_unk
    entries = {(n, w): (round(p, 6), round(b, 6)) for n, w, p, b in iter_entries(tiny)}
    assert entries[(1, ("<s>",))] == (-99.0, -0.5)
    assert entries[(2, ("a", "b"))] == (-0.4, -0.25)
    assert entries[(3, ("a", "b", "</s>"))] == (-0.15, 0.0)
    assert len(entries) == 12


@pytest.mark.parametrize("words,expected", TINY_EXPECTED)
def test_hand_computed_backoff(tiny, words, expected):
    m = read_arpa(tiny)
    np.testing.assert_allclose(log10_scores(m, words), expected, atol=1e-6)


def test_gzip_reads_the_same(tiny, tmp_path):
    gz = tmp_path / "tiny.arpa.gz"
    gz.write_bytes(gzip.compress(TINY_ARPA.encode()))
    a, b = read_arpa(tiny), read_arpa(gz)
    for n in range(1, 4):
        np.testing.assert_array_equal(a.logp[n], b.logp[n])
    np.testing.assert_array_equal(a.keys[3], b.keys[3])


def test_missing_prefix_gets_a_placeholder_that_backs_off(tmp_path):
    # "c a b" is listed but its prefix "c a" is not: "c a" is added with no probability of its own
    text = TINY_ARPA.replace("ngram 3=2", "ngram 3=3").replace("-0.15\ta b </s>", "-0.15\ta b </s>\n-0.05\tc a b")
    m = read_arpa(write(tmp_path / "p.arpa", text))
    assert m.placeholders == 1
    # a | <s> c: no "<s> c a"; "c a" is only a placeholder -> p(a | c) = bo(c) + p(a) = -0.5
    # b | c a: the trigram itself; </s> | a b: listed trigram
    np.testing.assert_allclose(log10_scores(m, ["c", "a", "b"]), [-1.4, -0.5, -0.05, -0.15], atol=1e-6)
    # c | c a (placeholder history, back-off 1): p(c | a) = -0.5
    np.testing.assert_allclose(log10_scores(m, ["c", "a", "c"])[2], -0.5, atol=1e-6)


def test_closed_vocabulary_gets_kenlm_unk(tmp_path):
    text = TINY_ARPA.replace("ngram 1=6", "ngram 1=5").replace("-1.0\t<unk>\t0\n", "")
    m = read_arpa(write(tmp_path / "c.arpa", text))
    assert not m.has_unk and m.unk == "<unk>"
    assert log10_scores(m, ["zz"])[0] == pytest.approx(-0.5 - 100.0)


def test_upper_case_unk_is_the_unknown_word(tmp_path):
    m = read_arpa(write(tmp_path / "u.arpa", TINY_ARPA.replace("<unk>", "<UNK>")))
    assert m.unk == "<UNK>" and m.has_unk
    assert log10_scores(m, ["zz"])[0] == pytest.approx(-1.5)


def test_irstlm_style_header_spacing(tmp_path):
    text = TINY_ARPA.replace("ngram 1=6", "ngram  1=     6").replace("ngram 2=4", "ngram 2 = 4")
    assert read_arpa(write(tmp_path / "s.arpa", text)).counts() == [6, 4, 2]


# ----------------------------------------------------------------- errors
def _replace(old, new):
    assert old in TINY_ARPA
    return TINY_ARPA.replace(old, new, 1)


MALFORMED = [
    ("no data", TINY_ARPA.replace("\\data\\\n", ""), None, "no \\data\\ line"),
    ("fewer 2-grams than declared", _replace("ngram 2=4", "ngram 2=5"), 19, "declares 5 2-grams but the section ends after 4"),
    ("more 2-grams than declared", _replace("ngram 2=4", "ngram 2=3"), 18, "more 2-grams than the 3 declared on line 3"),
    ("missing section", _replace("\\3-grams:\n-0.1\t<s> a b\n-0.15\ta b </s>\n", ""), 21, "expected the section header '\\3-grams:'"),
    ("non-numeric probability", _replace("-0.4\ta b", "x0.4\ta b"), 16, "log10 probability 'x0.4' is not a number"),
    ("non-numeric back-off", _replace("a b\t-0.25", "a b\tfoo"), 16, "back-off weight 'foo' is not a number"),
    ("positive probability", _replace("-0.5\ta c", "0.5\ta c"), 18, "must be a number <= 0"),
    ("positive 1-gram probability", _replace("-0.7\tb\t-0.2", "0.7\tb\t-0.2"), 11, "must be a number <= 0"),
    ("nan probability", _replace("-0.5\ta c", "nan\ta c"), 18, "must be a number <= 0"),
    ("unknown word", _replace("-0.5\ta c", "-0.5\ta d"), 18, "word 'd' of this 2-gram is not among the 1-grams"),
    ("duplicate 2-gram", _replace("-0.5\ta c", "-0.5\ta b"), 18, "duplicate 2-gram 'a b' (first on line 16)"),
    ("duplicate 1-gram", _replace("-0.9\tc", "-0.9\ta"), 12, "duplicate 1-gram 'a' (first on line 10)"),
    ("too many fields", _replace("-0.2\tb </s>", "-0.2\tb </s> x y"), 17, "got 5 fields"),
    ("back-off in highest order", _replace("-0.1\t<s> a b", "-0.1\t<s> a b\t-0.2"), 21, "the highest order has no back-off"),
    ("no end", TINY_ARPA.replace("\\end\\\n", ""), 23, "file ends without the \\end\\ line"),
    ("bad count line", _replace("ngram 2=4", "ngram two=4"), 3, "expected 'ngram N=count'"),
    ("order gap", _replace("ngram 2=4\n", ""), 3, "gives no count for 2-grams"),
    ("file ends in a section", TINY_ARPA[: TINY_ARPA.index("-0.15")], 21, "file ends after 1 of the 2 3-grams"),
]


@pytest.mark.parametrize("name,text,line,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_arpa_names_the_line(tmp_path, name, text, line, message):
    p = write(tmp_path / "bad.arpa", text)
    with pytest.raises(FormatError) as err:
        read_arpa(p)
    assert err.value.line == line, str(err.value)
    assert message in err.value.message
    assert str(p) in str(err.value)


def test_kenlm_binary_and_broken_gzip_are_reported(tmp_path):
    b = tmp_path / "lm.bin"
    b.write_bytes(b"mmap lm http://kheafield.com/code format version 5\n\x00\x01")
    with pytest.raises(FormatError, match="kenlm binary"):
        read_arpa(b)
    gz = tmp_path / "cut.arpa.gz"
    gz.write_bytes(gzip.compress(TINY_ARPA.encode())[:60])
    with pytest.raises(FormatError, match="cannot read|ends"):
        read_arpa(gz)


def test_non_utf8_word_is_reported(tmp_path):
    p = tmp_path / "latin1.arpa"
    p.write_bytes(TINY_ARPA.replace("-0.9\tc", "-0.9\tc\xe9").encode("latin-1"))
    with pytest.raises(FormatError, match="UTF-8") as err:
        read_arpa(p)
    assert err.value.line == 12


def test_small_chunks_read_the_same_and_locate_errors(tmp_path, monkeypatch):
    """Bulk parsing works chunk by chunk; a bad line in a later chunk is still located exactly."""
    sents = [["a", "b", "c", "d"][i % 4:] + ["e"] * (i % 3) for i in range(12)]
    text = backoff_arpa(sents, 3)
    p = write(tmp_path / "m.arpa", text)
    whole = read_arpa(p)
    monkeypatch.setattr(arpa_reader, "_CHUNK_LINES", 3)
    chunked = read_arpa(p)
    for n in range(1, 4):
        np.testing.assert_array_equal(whole.logp[n], chunked.logp[n])
        if n > 1:
            np.testing.assert_array_equal(whole.keys[n], chunked.keys[n])
    lines = text.split("\n")
    k = lines.index("\\2-grams:") + 5  # 0-based index of the 5th 2-gram: in the second chunk of 3
    lines[k] = lines[k].replace("\t", "\tzzz ", 1)
    bad = write(tmp_path / "bad.arpa", "\n".join(lines))
    with pytest.raises(FormatError) as err:
        read_arpa(bad)
    assert err.value.line == k + 1 and "fields" in err.value.message


# ------------------------------------------------- properties of estimated models
corpora = st.lists(st.lists(st.sampled_from("abcdefgh"), min_size=0, max_size=6), min_size=3, max_size=12)


def _check_normalised(model, words, histories):
    cands = list(words) + ["</s>"]
    for h in histories:
        total = float(np.sum(10.0 ** next_word_log10(model, h, cands)))
        assert abs(total - 1.0) < 1e-4, (h, total)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sents=corpora, order=st.integers(2, 5))
def test_probabilities_sum_to_one(tmp_path, sents, order):
    try:
        text = backoff_arpa(sents, order)
    except ValueError:
        assume(False)
    m = read_arpa(write(tmp_path / "p.arpa", text))
    words = sorted({w for s in sents for w in s})
    histories = [[], ["a"], ["h", "h"], sents[0][:3], (sents[1] + ["b", "c", "d"])[:4]]
    _check_normalised(m, words, histories)


def test_five_gram_scores_match_the_oracle(tmp_path):
    """Order 5: the reader's back-off scores equal the estimator's own recursion."""
    sents = [list("abcab"), list("bcabca"), list("cab"), list("aabbc"), list("ddd")]
    m = read_arpa(write(tmp_path / "5.arpa", backoff_arpa(sents, 5)))
    assert m.order == 5
    _check_normalised(m, "abcd", [[], list("abca"), list("ddd"), list("cabca")])
    # the whole training sentence "c a b" is listed at order 4 ("<s> c a b") and 5 ("c a b </s>" ...)
    assert np.all(np.isfinite(log10_scores(m, list("cab"))))
    assert math.isclose(float(log10_scores(m, ["d", "d", "d"]).sum()), float(log10_scores(m, list("ddd")).sum()))
