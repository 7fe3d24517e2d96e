"""admmq nbest synth: PTB <-> spoken words, noise at a fixed SNR, pocketsphinx lattices, and the
whole path (flite + pocketsphinx) reproducing the shipped data/ptb-tts lists exactly.

The tool-dependent tests skip when flite or pocketsphinx is absent (bin/setup-env installs both).
"""

from __future__ import annotations

import gzip
import math
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from rescorer.cli.group import cli
from rescorer.errors import AdmmqError, FormatError
from rescorer.nbest.kaldi_dir import read_nbest_dir
from rescorer.synth.audio import add_noise, noise_seed, pink_noise, speech_power
from rescorer.synth.lattice import clean_hypothesis, read_lattice
from rescorer.synth.spoken import (eligible_sentences, is_eligible, select_sentences, to_ptb, to_spoken,
                                   utterance_id)

from conftest import NBEST_DIR, PTB_DIR, ptb_lines

try:
    import pocketsphinx  # noqa: F401
    HAVE_PS = True
except ImportError:
    HAVE_PS = False
needs_ps = pytest.mark.skipif(not HAVE_PS, reason="pocketsphinx not installed (pip install pocketsphinx)")
needs_tools = pytest.mark.skipif(not HAVE_PS or shutil.which("flite") is None,
                                 reason="needs flite (apt-get install flite) and pocketsphinx")


# --------------------------------------------------------------------------- spoken words
def test_clitics_join_for_speech_and_split_back():
    ptb = "they do n't think it 's over and we ca n't say marshall 's plan wo n't work".split()
    spoken = to_spoken(ptb)
    assert spoken == "they don't think it's over and we can't say marshall's plan won't work".split()
    assert to_ptb(spoken) == ptb
    assert to_ptb(["Ain't", "I'M", "'s"]) == ["ai", "n't", "i", "'m", "'s"]


def test_sentence_initial_clitic_stays_a_word():
    assert to_spoken(["'s", "fine"]) == ["'s", "fine"]
    assert to_spoken(["n't", "ok"]) == ["n't", "ok"]


CLITIC_TOKENS = ("n't", "'s", "'re", "'ve", "'d", "'ll", "'m")


def test_round_trip_on_real_ptb_lines():
    checked = 0
    for line in ptb_lines("valid", 400):
        tokens = line.split()
        if tokens and "N" not in tokens and tokens[0] not in CLITIC_TOKENS:
            assert to_ptb(to_spoken(tokens)) == tokens, line
            checked += 1
    assert checked > 250, checked


def test_eligibility_and_selection():
    vocab = {"the", "cat", "sat", "on", "mat", "today", "don't", "we"}
    assert is_eligible("the cat sat on the mat".split(), vocab)
    assert not is_eligible("the cat sat on mat".split(), vocab)  # 5 tokens
    assert not is_eligible("the cat sat on the <unk>".split(), vocab)
    assert not is_eligible("the cat sat on N mat".split(), vocab)
    assert is_eligible("we do n't sat the mat".split(), vocab)  # "don't" is in the dictionary
    assert not is_eligible("we do n't sat the dog".split(), vocab)
    lines = ["the cat sat on the mat", "x", "the cat sat on the mat", "we do n't sat the mat today",
             "the mat sat on the cat", "on the mat the cat sat"]
    el = eligible_sentences(lines, vocab)
    assert [s.line for s in el] == [1, 4, 5, 6]  # duplicate line 3 dropped
    pick = select_sentences(el, 2, seed=7)
    assert pick == select_sentences(el, 2, seed=7)
    assert len(pick) == 2 and pick[0].line < pick[1].line and set(pick) <= set(el)
    assert select_sentences(el, 10, seed=7) == el
    assert utterance_id("rms", "d", 7) == "rms_d0007"


# --------------------------------------------------------------------------- noise
def test_pink_noise_has_a_one_over_f_spectrum():
    x = pink_noise(2 ** 16, 16000, seed=3)
    assert abs(x.mean()) < 1e-9 * np.abs(x).max() + 1e-12  # no DC
    power = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    bands = [(100, 200), (1000, 2000), (4000, 8000)]
    density = [power[(f >= a) & (f < b)].mean() for a, b in bands]
    slope = np.polyfit(np.log([150, 1500, 6000]), np.log(density), 1)[0]
    assert -1.2 < slope < -0.8, slope


@pytest.mark.parametrize("snr", [24.0, 5.0])
def test_noise_is_mixed_at_the_requested_snr(snr):
    rate = 16000
    t = np.arange(3 * rate) / rate
    speech = (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    speech[: rate // 2] = 0  # leading silence does not count as speech
    y = add_noise(speech, rate, snr, seed=11)
    noise = y.astype(np.float64) - speech
    measured = 10 * np.log10(speech_power(speech.astype(np.float64), rate) / (noise ** 2).mean())
    assert abs(measured - snr) < 0.05, measured
    assert np.array_equal(y, add_noise(speech, rate, snr, seed=11))


def test_loud_mix_is_rescaled_not_clipped():
    rate = 16000
    speech = (31000 * np.sign(np.sin(2 * np.pi * 100 * np.arange(rate) / rate))).astype(np.int16)
    y = add_noise(speech, rate, 3.0, seed=1)
    assert np.abs(y.astype(np.int64)).max() <= 32000


def test_noise_seed_is_per_utterance_and_stable():
    assert noise_seed(20251123, "rms_d0001") == noise_seed(20251123, "rms_d0001")
    assert noise_seed(20251123, "rms_d0001") != noise_seed(20251123, "slt_d0001")
    assert 0 <= noise_seed(1, "x") < 2 ** 64


# --------------------------------------------------------------------------- lattices
LATTICE = """# getcwd: /somewhere
# -logbase 1.000100e+00
#
Frames 30
#
Nodes 7 (NODEID WORD STARTFRAME FIRST-ENDFRAME LAST-ENDFRAME)
0 </s> 25 29 29 ; 0
1 b 10 19 19 ; 0
2 b(2) 10 19 19 ; 0
3 [NOISE] 20 24 24 ; 0
4 a 2 9 9 ; 0
5 c 10 24 24 ; 0
6 <s> 0 1 1 ; 0
#
Initial 6
Final 0
#
BestSegAscr 0 (NODEID ENDFRAME ASCORE)
#
Edges (FROM-NODEID TO-NODEID ASCORE)
6 4 -100
4 1 -5000
4 2 -4000
4 5 -9000
1 3 -300
2 3 -700
3 0 -50
5 0 -200
End
"""


def test_lattice_best_path_per_hypothesis(tmp_path):
    path = tmp_path / "utt.lat"
    path.write_text(LATTICE)
    lat = read_lattice(path)
    costs = lat.acoustic_costs([("a", "b"), ("a", "c"), ("a",), ("b",), ("a", "b", "c")])
    ln = math.log(1.0001)
    # a b: via b (5000+300) or b(2) (4000+700): the better is 4700, plus <s> 100, [NOISE] 50
    assert costs[0] == pytest.approx((100 + 4000 + 700 + 50) * ln)
    assert costs[1] == pytest.approx((100 + 9000 + 200) * ln)
    assert costs[2:] == [None, None, None]  # no path spells them


def test_clean_hypothesis_drops_fillers_and_variants():
    assert clean_hypothesis("<s> the(2) [NOISE] cat <sil> ++UM++ sat </s>") == ("the", "cat", "sat")
    assert clean_hypothesis("") == ()


def test_malformed_lattice_names_the_line(tmp_path):
    path = tmp_path / "bad.lat"
    path.write_text(LATTICE.replace("4 1 -5000", "4 one -5000"))
    with pytest.raises(FormatError, match=r"bad\.lat:2\d: not a pocketsphinx lattice line"):
        read_lattice(path)
    path.write_text(LATTICE.replace("Final 0", "Final 99"))
    with pytest.raises(FormatError, match="Initial'/'Final"):
        read_lattice(path)


# --------------------------------------------------------------------------- real tools
def _shipped(name: str, prefix: str):
    with gzip.open(NBEST_DIR / "dev" / f"{name}.gz", "rt") as fh:
        return {ln.split(None, 1)[0]: ln.split()[1:] for ln in fh if ln.startswith(prefix)}


@needs_ps
def test_selection_reproduces_the_shipped_dev_sentences():
    from rescorer.synth.make import SynthConfig, read_sentences
    chosen = read_sentences(PTB_DIR / "ptb.valid.txt.gz", SynthConfig())
    assert len(chosen) == 60
    # line numbers listed in data/ptb-tts/dev/README.md
    assert [s.line for s in chosen[:6]] == [212, 398, 400, 414, 428, 445]
    assert [s.line for s in chosen[-3:]] == [3247, 3259, 3363]
    text = _shipped("text", "rms_d0002")
    assert list(chosen[1].tokens) == text["rms_d0002"]


@needs_ps
def test_trigram_cost_matches_the_shipped_list():
    from rescorer.synth.decode import decoder, lm_cost
    lm = decoder(16000).get_lm()
    words = "the point is that an atheist can be used as background music for virtually anything".split()
    assert lm_cost(lm, words, lm.size()) == pytest.approx(75.0283, abs=1e-4)  # rms_d0001-1 lmwt.lmonly


@needs_tools
def test_synth_regenerates_a_shipped_utterance_exactly_and_resumes(tmp_path):
    out = tmp_path / "nb"
    args = ["nbest", "synth", "--text", str(PTB_DIR / "ptb.valid.txt.gz"), "-o", str(out), "--voices", "rms",
            "--limit", "1", "--nbest", "20", "--quiet"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "1 utterances" in res.output and "decoded 1 now" in res.output
    nb = read_nbest_dir(out)
    assert nb.utts == ["rms_d0001"] and len(nb) == 20
    acwt, lm, words = _shipped("acwt", "rms_d0001-"), _shipped("lmwt.lmonly", "rms_d0001-"), \
        _shipped("words_text", "rms_d0001-")
    for key, ws, a, l in zip(nb.keys, nb.words, nb.costs["acwt"], nb.costs["lmwt.lmonly"]):
        assert list(ws) == words[key], key
        assert a == pytest.approx(float(acwt[key][0]), abs=1e-4), key
        assert l == pytest.approx(float(lm[key][0]), abs=1e-4), key
    assert (out / "text").read_text().split()[1:] == _shipped("text", "rms_d0001")["rms_d0001"]
    assert (out / "utt2subset").read_text() == "rms_d0001 rms\n"
    before = (out / "acwt").read_bytes()
    res = CliRunner().invoke(cli, args)  # a rerun takes the stored utterance
    assert res.exit_code == 0 and "decoded 0 now" in res.output, res.output
    assert (out / "acwt").read_bytes() == before


def test_missing_flite_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat\n")
    res = CliRunner().invoke(cli, ["nbest", "synth", "--text", str(text), "-o", str(tmp_path / "o")])
    assert res.exit_code != 0
    assert "flite is not installed" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def test_synth_helpers_raise_admmq_errors(tmp_path, monkeypatch):
    from rescorer.synth import audio
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AdmmqError, match="apt-get install flite"):
        audio.synthesize("hello", "rms")


@needs_tools
def test_unknown_voice_is_refused_before_any_work(tmp_path):
    res = CliRunner().invoke(cli, ["nbest", "synth", "--text", str(PTB_DIR / "ptb.valid.txt.gz"),
                                   "-o", str(tmp_path / "o"), "--voices", "rms,nosuchvoice", "--quiet"])
    assert res.exit_code != 0 and "flite has no voice 'nosuchvoice'" in res.output, res.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.work").exists()


@needs_tools
def test_a_voice_at_another_sample_rate_is_a_one_line_error(tmp_path):
    import subprocess
    if "kal" not in subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout.split():
        pytest.skip("this flite has no 8 kHz 'kal' voice")
    res = CliRunner().invoke(cli, ["nbest", "synth", "--text", str(PTB_DIR / "ptb.valid.txt.gz"),
                                   "-o", str(tmp_path / "o"), "--voices", "kal", "--limit", "1", "--quiet"])
    assert res.exit_code != 0, res.output
    assert "flite voice 'kal' speaks at 8000 Hz" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()
