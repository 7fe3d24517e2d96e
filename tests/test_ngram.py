"""NgramScorer: the built-in and kenlm backends, vocabulary conventions, natural-log word scores."""

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import rescorer.ngram.ngram_lm as ngram
from rescorer.errors import AdmmqError
from rescorer.ngram.ngram_lm import NgramScorer, resolve_backend

from ngram_fixtures import TINY_ARPA, TINY_EXPECTED, backoff_arpa, write

needs_kenlm = pytest.mark.skipif(ngram.kenlm_module() is None, reason="kenlm Python module not installed "
                                 "(pip install ufal.kenlm)")


@pytest.fixture
def tiny(tmp_path):
    return write(tmp_path / "tiny.arpa", TINY_ARPA)


def backends():
    return ["builtin"] + (["kenlm"] if ngram.kenlm_module() is not None else [])


@pytest.mark.parametrize("backend", backends())
def test_word_scores_are_natural_log_per_word_plus_end(tiny, backend):
    s = NgramScorer(tiny, backend=backend)
    ws = s.score([w for w, _ in TINY_EXPECTED])
    assert list(np.diff(ws.offsets)) == [len(w) + 1 for w, _ in TINY_EXPECTED]
    for i, (_, expected) in enumerate(TINY_EXPECTED):
        np.testing.assert_allclose(ws.sentence(i), np.array(expected) * math.log(10), atol=1e-5)
    expected_oov = [w == "zz" for words, _ in TINY_EXPECTED for w in words + ["</s>"]]
    assert ws.oov.tolist() == expected_oov and sum(expected_oov) == 1


@pytest.mark.parametrize("backend", backends())
def test_boundary_symbols_inside_a_sentence_are_oov(tiny, backend):
    ws = NgramScorer(tiny, backend=backend).score([["a", "<s>", "</s>", "<unk>", "<UNK>"]])
    assert ws.oov.tolist() == [False, True, True, False, False, False]
    # the OOV boundary symbols and the class token are all scored as <unk>
    ref = NgramScorer(tiny, backend=backend).score([["a", "<unk>", "<unk>", "<unk>", "<unk>"]])
    np.testing.assert_allclose(ws.logprob, ref.logprob, atol=1e-6)


@pytest.mark.parametrize("backend", backends())
def test_upper_case_arpa_with_case_mapping(tmp_path, backend):
    upper = re.sub(r"\b([abc])\b", lambda m: m.group(1).upper(), TINY_ARPA).replace("<unk>", "<UNK>")
    p = write(tmp_path / "up.arpa", upper)
    kept = NgramScorer(p, backend=backend).score([["a", "b"]])
    assert kept.oov[:2].all()
    mapped = NgramScorer(p, backend=backend, case="upper")
    assert mapped.unk == ("<UNK>" if backend == "builtin" else "<unk>")  # kenlm reads both as its <unk>
    assert not mapped.is_oov("a") and mapped.is_oov("zz")
    np.testing.assert_allclose(mapped.score([["a", "b"], ["<unk>"]]).logprob,
                               np.array([-0.3, -0.1, -0.15, -1.5, -0.6]) * math.log(10), atol=1e-5)


def test_backend_resolution(monkeypatch, tiny):
    assert resolve_backend("builtin") == "builtin"
    with pytest.raises(AdmmqError, match="must be one of"):
        resolve_backend("srilm")
    monkeypatch.setattr(ngram, "kenlm_module", lambda: None)
    assert resolve_backend("auto") == "builtin"
    with pytest.raises(AdmmqError, match="pip install ufal.kenlm"):
        NgramScorer(tiny, backend="kenlm")


# --------------------------------------------------------- kenlm is the reference
@needs_kenlm
def test_kenlm_and_builtin_agree_on_hand_written_files(tmp_path):
    for text in (TINY_ARPA, TINY_ARPA.replace("<unk>", "<UNK>"),
                 TINY_ARPA.replace("ngram 1=6", "ngram 1=5").replace("-1.0\t<unk>\t0\n", "")):
        p = write(tmp_path / "t.arpa", text)
        k, b = NgramScorer(p, backend="kenlm"), NgramScorer(p, backend="builtin")
        assert k.has_unk == b.has_unk
        sents = [["a", "b"], ["zz", "a", "c", "b", "b"], [], ["<unk>", "b", "a", "<s>"], ["c", "c", "c"]]
        ks, bs = k.score(sents), b.score(sents)
        np.testing.assert_allclose(ks.logprob, bs.logprob, atol=1e-4)
        assert ks.oov.tolist() == bs.oov.tolist()


@needs_kenlm
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sents=st.lists(st.lists(st.sampled_from("abcdef"), max_size=7), min_size=3, max_size=10),
       probe=st.lists(st.lists(st.sampled_from("abcdefxy"), max_size=9), min_size=1, max_size=6),
       order=st.integers(2, 5))
def test_kenlm_and_builtin_agree_on_estimated_models(tmp_path, sents, probe, order):
    try:
        text = backoff_arpa(sents, order)
    except ValueError:
        assume(False)
    p = write(tmp_path / "e.arpa", text)
    ks = NgramScorer(p, backend="kenlm").score(probe)
    bs = NgramScorer(p, backend="builtin").score(probe)
    np.testing.assert_allclose(ks.logprob, bs.logprob, atol=1e-4)
