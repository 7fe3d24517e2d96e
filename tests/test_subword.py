import numpy as np
import pytest

from rescorer.lm.subword import SubwordUnits, units_from_state
from tests.conftest import ptb_lines


@pytest.fixture(scope="module")
def spm_units():
    sents = [line.split() for line in ptb_lines("train", 1500)]
    return SubwordUnits.train(sents, vocab_size=300)


def test_each_word_has_one_deterministic_segmentation(spm_units):
    words = "the company said it expects profit".split()
    ids = spm_units.encode_sentence(words)
    counts = spm_units.units_per_word(words)
    assert counts.sum() == ids.size and (counts >= 1).all()
    # the concatenation of per-word encodings is the sentence encoding
    assert np.array_equal(np.concatenate([spm_units.encode_sentence([w]) for w in words]), ids)
    assert np.array_equal(spm_units.encode_sentence(words), ids)


def test_layout_and_state_roundtrip(spm_units):
    assert spm_units.eos_id == 0 and spm_units.unk_id == 1 and spm_units.bos_id == len(spm_units) - 1
    again = units_from_state(spm_units.to_state())
    words = "investors bought shares".split()
    assert np.array_equal(again.encode_sentence(words), spm_units.encode_sentence(words))


def test_unknown_characters_make_a_word_oov(spm_units):
    assert spm_units.is_oov("日本")
    assert not spm_units.is_oov("the")
