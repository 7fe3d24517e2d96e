"""Kaldi's Switchboard hypothesis filter (score_sclite.sh's greps, map_acronyms_ctm.py's acronym map)."""

from __future__ import annotations

import random
import subprocess

import pytest

from rescorer.errors import FormatError
from rescorer.scoring.kaldi_filter import HypothesisFilter, kaldi_swbd_drops, read_acronym_map
from tests.nist_corpus import KALDI_CTM_GREPS, NOISE, PLAIN


def test_drops_noise_unk_hesitations_and_partial_words_in_any_case():
    f = HypothesisFilter("kaldi-swbd")
    words = "UH i [noise] Think um [Laughter] you- [laughter-yes] know <UNK> [VOCALIZED-NOISE] so uhm hm-".split()
    assert f(words) == ["i", "Think", "know", "so", "uhm"]
    assert HypothesisFilter()(words) == words
    assert kaldi_swbd_drops("%hesitation") is False  # not in score_sclite.sh's list (the GLM maps it)
    with pytest.raises(ValueError):
        HypothesisFilter("swbd")


def test_the_greps_drop_the_same_ctm_lines():
    rng = random.Random(2)
    pool = NOISE + PLAIN + ["uh", "UM", "Eh", "ew", "a-", "-", "x-y", "huh-uh", "ehm", "laughter"]
    words = [rng.choice(pool) for _ in range(500)]
    ctm = "".join(f"sw_1 A {k}.00 0.50 {w}\n" for k, w in enumerate(words))
    kept = subprocess.run(KALDI_CTM_GREPS, shell=True, input=ctm, capture_output=True, text=True).stdout
    assert [line.split()[4] for line in kept.splitlines()] == HypothesisFilter("kaldi-swbd")(words)


def test_acronym_map(tmp_path):
    (tmp_path / "acronyms.map").write_text("UCLA\tu._c._l._a.\tu c l a\nI.B.M.\ti._b._m.\ti b m\n\n")
    acr = read_acronym_map(tmp_path / "acronyms.map")
    assert acr == {"u._c._l._a.": ("u", "c", "l", "a"), "i._b._m.": ("i", "b", "m")}
    f = HypothesisFilter("kaldi-swbd", acr)
    assert f(["the", "u._c._l._a.", "uh", "game"]) == ["the", "u", "c", "l", "a", "game"]
    assert "2 acronyms" in f.describe()
    (tmp_path / "bad.map").write_text("UCLA u._c._l._a. u c l a\n")
    with pytest.raises(FormatError, match="bad.map:1: expected '<acronym>"):
        read_acronym_map(tmp_path / "bad.map")
