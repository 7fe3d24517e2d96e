"""Chains of utterances for --carry-over (rescorer.nbest.recordings), and carry-over through admmq rescore
and admmq eval: jobs, dev lists and bad input."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rescorer.cli.group import cli
from rescorer.errors import AdmmqError
from rescorer.nbest.recordings import CarryOver, carry_context, nbest_history, previous_utterances
from rescorer.nbest.kaldi_dir import read_nbest
from rescorer.pack.lm_file import load_lm
from rescorer.nbest.lists import write_nbest_file
from rescorer.nbest.shards import select_utterances, shard_nbest

from tests.conftest import NBEST_DIR
from tests.ngram_fixtures import TINY_ARPA

UTTS = ["b_2", "a_1", "b_1", "a_3", "a_2"]


def test_segments_chain_by_recording_in_start_time_order(tmp_path):
    seg = tmp_path / "segments"
    seg.write_text("a_1 recA 0.5 1.0\na_2 recA 1.2 2.0\na_3 recA 2.5 3.0\nb_1 recB 0.0 1.0\nb_2 recB 1.5 2.5\n")
    prev = previous_utterances(UTTS, CarryOver("recording", segments=str(seg)))
    assert list(prev) == [2, -1, -1, 4, 1]  # b_2 after b_1; a_3 after a_2 after a_1


def test_utt2spk_and_pattern_chain_in_list_order(tmp_path):
    u2s = tmp_path / "utt2spk"
    u2s.write_text("".join(f"{u} spk{u[0]}\n" for u in UTTS))
    by_spk = previous_utterances(UTTS, CarryOver("recording", utt2spk=str(u2s)))
    by_pattern = previous_utterances(UTTS, CarryOver("recording", pattern=r"([ab])_"))
    assert list(by_spk) == list(by_pattern) == [-1, -1, 0, 1, 3]
    assert list(previous_utterances(UTTS, CarryOver("kaldi"))) == [-1, 0, 1, 2, 3]
    assert list(previous_utterances(UTTS, CarryOver())) == [-1] * 5


def test_bad_carry_over_input_is_one_clear_error(tmp_path):
    seg = tmp_path / "segments"
    seg.write_text("a_1 recA 0.5 1.0\nb_1 recB zero 1.0\n")
    with pytest.raises(AdmmqError, match=r"segments: utterance 'b_2' of the list is not listed \(3 missing\)"):
        previous_utterances(UTTS, CarryOver("recording", segments=str(seg)), "the list")
    with pytest.raises(AdmmqError, match=r"segments:2: start/end times 'zero' '1.0' are not numbers"):
        previous_utterances(["a_1", "b_1"], CarryOver("recording", segments=str(seg)))
    with pytest.raises(AdmmqError, match="needs one of --segments"):
        CarryOver("recording")
    with pytest.raises(AdmmqError, match="--utt2spk is for --carry-over recording"):
        CarryOver("kaldi", utt2spk=str(seg))
    with pytest.raises(AdmmqError, match="not a regular expression"):
        CarryOver("recording", pattern="(")
    with pytest.raises(AdmmqError, match="does not match --recording-pattern"):
        previous_utterances(UTTS, CarryOver("recording", pattern="c_"))


def test_history_of_an_nbest_list_and_of_a_job():
    nb = read_nbest(NBEST_DIR / "test")
    spec = CarryOver("recording", pattern="([^_]*)_")
    hist, start = nbest_history(nb, spec)
    u = nb.utts.index("rms_t0003")
    prev_best = nb.words[nb.offsets[u - 1]]  # rms_t0002's first-pass best, the history of every rms_t0003 hyp
    assert {hist.words[k] for k in start[nb.offsets[u]:nb.offsets[u + 1]]} == {prev_best}
    assert (start[: nb.offsets[1]] == -1).all()  # the first utterance of each voice starts from zeros
    slt0 = nb.utts.index(next(x for x in nb.utts if x.startswith("slt")))
    assert (start[nb.offsets[slt0]: nb.offsets[slt0 + 1]] == -1).all()
    # a job's context: its chains run through the whole list (same words read as in the unsplit run)
    job = shard_nbest(nb, 2, 3)
    ctx = carry_context([job], spec, full=nb)
    lo = nb.offsets[nb.utts.index(job.utts[0])]
    for i in (0, len(job) // 2, len(job) - 1):
        chain_job, chain_full = [], []
        for h, k, out in ((ctx.history, ctx.start[i], chain_job), (hist, start[lo + i], chain_full)):
            while k >= 0:
                out.append(h.words[k])
                k = h.after[k]
        assert chain_job == chain_full and len(chain_job) > 0


def test_rescore_jobs_with_carry_over_merge_to_the_unsplit_run(tiny_lm, tmp_path):
    nb = read_nbest(NBEST_DIR / "test")
    part = tmp_path / "nb.txt"
    write_nbest_file(select_utterances(nb, 95, 105), part)  # rms_t0096 .. slt_t0005
    common = ["--lm", str(tiny_lm), "--lm-scale", "10", "--wip", "0.5", "--carry-over", "recording",
              "--recording-pattern", "([^_]*)_", "--quiet", "--threads", "1"]
    r = CliRunner().invoke(cli, ["rescore", str(part), "-o", str(tmp_path / "all"), "--json"] + common)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["carry_over"] == {"mode": "recording", "pattern": "([^_]*)_", "history_sentences": 8}
    for k in (1, 2, 3):
        r = CliRunner().invoke(cli, ["rescore", str(part), "-o", str(tmp_path / f"j{k}"), "--job", f"{k}/3"]
                               + common)
        assert r.exit_code == 0, r.output
    # the jobs' scores are the unsplit run's (float rounding of other batch shapes aside), same choices
    merged = [ln.split() for k in (1, 2, 3) for ln in (tmp_path / f"j{k}" / "lmwt.new").read_text().splitlines()]
    whole = [ln.split() for ln in (tmp_path / "all" / "lmwt.new").read_text().splitlines()]
    assert [k for k, _ in merged] == [k for k, _ in whole]
    assert max(abs(float(a[1]) - float(b[1])) for a, b in zip(merged, whole)) < 1e-4
    assert "".join((tmp_path / f"j{k}" / "text").read_text() for k in (1, 2, 3)) == (tmp_path / "all" / "text").read_text()
    none = tmp_path / "none"
    r = CliRunner().invoke(cli, ["rescore", str(part), "-o", str(none)] + common[:6] + ["--quiet"])
    assert r.exit_code == 0, r.output
    new_with = np.array([float(x.split()[1]) for x in (tmp_path / "all" / "lmwt.new").read_text().splitlines()])
    new_without = np.array([float(x.split()[1]) for x in (none / "lmwt.new").read_text().splitlines()])
    first_of_voice = np.zeros(len(new_with), dtype=bool)
    first_of_voice[:100] = True  # rms_t0096's hypotheses: no history; slt_t0001's too (offset 500..599)
    first_of_voice[500:600] = True
    assert np.abs(new_with - new_without)[first_of_voice].max() < 1e-4
    assert np.abs(new_with - new_without)[~first_of_voice].min() > 0


def test_carry_over_needs_an_lstm_and_fails_before_scoring(tmp_path, tiny_lm):
    seg = tmp_path / "segments"
    seg.write_text("other 1 0 1\n")
    r = CliRunner().invoke(cli, ["rescore", str(NBEST_DIR / "test"), "--lm", str(tiny_lm), "-o",
                                 str(tmp_path / "o"), "--carry-over", "recording", "--segments", str(seg),
                                 "--lm-scale", "1", "--quiet"])
    assert r.exit_code == 1 and "is not listed (200 missing)" in r.output and len(r.output.splitlines()) == 1
    arpa = tmp_path / "g.arpa"
    arpa.write_text(TINY_ARPA)
    r = CliRunner().invoke(cli, ["rescore", str(NBEST_DIR / "test"), "--ngram", str(arpa), "-o",
                                 str(tmp_path / "o"), "--carry-over", "kaldi", "--lm-scale", "1", "--quiet"])
    assert r.exit_code == 1 and "give an LSTM" in r.output


def test_eval_with_carry_over_reads_the_previous_sentence(tiny_lm, ptb_slice, tmp_path):
    text = tmp_path / "t.txt"
    lines = (ptb_slice / "test.txt").read_text().splitlines()[:6]
    text.write_text("\n".join(lines) + "\n")
    out = {}
    for mode in ("none", "kaldi"):
        r = CliRunner().invoke(cli, ["eval", "--lm", str(tiny_lm), "--text", str(text), "--carry-over", mode,
                                     "--per-sentence", str(tmp_path / mode), "--oov", "unk", "--json", "--quiet"])
        assert r.exit_code == 0, r.output
        out[mode] = np.array([float(x.split()[1]) for x in (tmp_path / mode).read_text().splitlines()])
    assert json.loads(r.output)["carry_over"] == {"mode": "kaldi"}
    assert out["kaldi"][0] == pytest.approx(out["none"][0], abs=1e-4)
    assert np.abs(out["kaldi"][1:] - out["none"][1:]).min() > 1e-4
    # the second sentence's cost: the model run over '<s> line1' then '<s> line2' (Kaldi's rule: no </s>)
    lm = load_lm(tiny_lm)
    v = lm.units
    ids = [v.bos_id] + [v.index(w) for w in lines[0].split()] + [v.bos_id] + [v.index(w) for w in lines[1].split()]
    tg = [v.index(w) for w in lines[1].split()] + [v.eos_id]
    with torch.no_grad():
        h, _ = lm.model(torch.tensor([ids]))
        lp = torch.log_softmax(lm.model.logits(h[0, -len(tg):]).double(), -1)
    assert out["kaldi"][1] == pytest.approx(-float(lp[torch.arange(len(tg)), torch.tensor(tg)].sum()), abs=1e-4)
