import json
import random
import re
import subprocess

import pytest
from click.testing import CliRunner

from rescorer.cli.group import cli
from rescorer.errors import AdmmqError, MismatchError
from rescorer.nbest.kaldi_dir import read_nbest
from rescorer.nbest.wer import ErrorCounts, Subsets, align_counts, read_text, score_files, score_utterances
from tests.conftest import NBEST_DIR, SCTK_BIN, needs_sctk

SCLITE = str(SCTK_BIN / "sclite")


def s(text):
    return text.split()


@pytest.mark.parametrize("ref,hyp,counts", [
    ("a b c", "a b c", (0, 0, 0)),
    ("a b c", "a x c", (0, 0, 1)),
    ("a b c", "a c", (0, 1, 0)),
    ("a b c", "a b b c", (1, 0, 0)),
    ("the cat sat", "the the cat sat on", (2, 0, 0)),
    ("a b c", "", (0, 3, 0)),
    ("", "a b", (2, 0, 0)),
    ("", "", (0, 0, 0)),
    ("a b c d", "x y", (0, 2, 2)),
    # sclite's weights (sub 4, ins/del 3): 3 del + 3 ins (cost 18) beat 5 sub (cost 20); Levenshtein says 5 sub
    ("a b c d e", "d e f g h", (3, 3, 0)),
])
def test_hand_counted_alignments(ref, hyp, counts):
    assert align_counts(s(ref), s(hyp)) == counts


def test_report_line_and_json_fields():
    c = ErrorCounts()
    c.add(10, 20, 93, 600)
    c.add(0, 0, 0, 400)
    assert c.line() == "%WER 12.30 [ 123 / 1000, 10 ins, 20 del, 93 sub ]"
    assert c.to_dict() == {"wer": 12.3, "errors": 123, "words": 1000, "ins": 10, "del": 20, "sub": 93,
                           "corr": 887, "utterances": 2, "utterance_errors": 1}
    # sclite's sum-table row: percent of words (S.Err of utterances), 1 decimal
    assert c.sum_row("all", 5) == "| all   |      2    1000 |   88.7    9.3    2.0    1.0   12.3   50.0 |"


def test_subsets_by_default_prefixes_rules_and_utt2subset(tmp_path):
    refs = {"sw_1": s("a b c d"), "sw_2": s("e f"), "en_1": s("a b"), "xx_1": s("z")}
    hyps = {"sw_1": s("a b c"), "sw_2": s("e f"), "en_1": s("a c c"), "xx_1": s("z")}
    rep = score_utterances(refs, hyps, Subsets.build(list(refs)))
    d = rep.to_dict()
    assert list(d) == ["swbd", "callhm", "total"]
    assert (d["swbd"]["errors"], d["swbd"]["words"], d["swbd"]["del"]) == (1, 6, 1)
    assert (d["callhm"]["errors"], d["callhm"]["words"], d["callhm"]["ins"], d["callhm"]["sub"]) == (2, 2, 1, 1)
    assert (d["total"]["errors"], d["total"]["words"]) == (3, 9)
    assert rep.unassigned == 1 and "1 utterance(s) in no subset" in rep.lines()[-1]
    assert rep.lines()[0] == "swbd    %WER 16.67 [ 1 / 6, 0 ins, 1 del, 0 sub ]  2 utts"
    # ids that match no default prefix: only the total
    assert list(score_utterances({"a_1": s("x")}, {"a_1": s("x")}, Subsets.build(["a_1"])).to_dict()) == ["total"]
    # explicit rules and a utt2subset file
    rep = score_utterances(refs, hyps, Subsets.build(list(refs), ["xx_=other", "sw_=S"]))
    assert list(rep.to_dict()) == ["other", "S", "total"]
    (tmp_path / "u2s").write_text("sw_1 A\nsw_2 A\nen_1 B\nxx_1 B\n")
    rep = score_utterances(refs, hyps, Subsets.build(list(refs), utt2subset=tmp_path / "u2s"))
    assert rep.to_dict()["A"]["words"] == 6 and rep.to_dict()["B"]["words"] == 3 and rep.unassigned == 0
    with pytest.raises(AdmmqError, match="is not PREFIX=NAME"):
        Subsets.build(list(refs), ["sw_"])


def test_missing_hypotheses_modes_and_extra_hypothesis():
    refs = {"u1": s("a b"), "u2": s("c d e")}
    hyps = {"u1": s("a b")}
    rep = score_utterances(refs, hyps, mode="all")
    assert (rep.total.errors, rep.total.dels, rep.total.words, rep.missing) == (3, 3, 5, 1)
    assert "1 reference utterance(s) without hypothesis (scored as all deletions)" in rep.lines()
    rep = score_utterances(refs, hyps, mode="present")
    assert (rep.total.errors, rep.total.words) == (0, 2)
    with pytest.raises(MismatchError, match="no hypothesis for utterance 'u2'"):
        score_utterances(refs, hyps, mode="strict")
    with pytest.raises(MismatchError, match="'u3' has no reference"):
        score_utterances(refs, {"u3": s("x")})


def first_pass(split="test"):
    nb = read_nbest(NBEST_DIR / split)
    return {u: nb.words[nb.offsets[k]] for k, u in enumerate(nb.utts)}


def test_real_ptb_tts_first_pass_matches_the_sets_sclite_figures():
    """data/ptb-tts/test/README.md: first pass 34.5 (slt) 21.3 (rms) 27.9 (total), scored with sclite."""
    refs = read_text(NBEST_DIR / "test" / "text.gz")
    rep = score_utterances(refs, first_pass(), Subsets.build(list(refs), utt2subset=NBEST_DIR / "test" / "utt2subset.gz"))
    assert round(rep.subsets["slt"].wer, 1) == 34.5 and round(rep.subsets["rms"].wer, 1) == 21.3
    assert round(rep.total.wer, 1) == 27.9 and rep.total.words == 2772


def trn(path, items):
    with open(path, "w") as fh:
        for utt, words in items:
            fh.write(" ".join(words) + f" ({utt})\n")


def sclite_per_utterance(tmp_path, refs, hyps, case_sensitive=True):
    """(ins, del, sub) per utterance id from sclite's pralign report."""
    trn(tmp_path / "ref.trn", refs.items())
    trn(tmp_path / "hyp.trn", [(u, hyps.get(u, ())) for u in refs])
    cmd = [SCLITE, "-r", str(tmp_path / "ref.trn"), "trn", "-h", str(tmp_path / "hyp.trn"), "trn", "-i", "spu_id",
           "-o", "pralign", "stdout"] + (["-s"] if case_sensitive else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    found = re.findall(r"id: \((\S+)\)\nScores: \(#C #S #D #I\) (\d+) (\d+) (\d+) (\d+)", out)
    return {utt: (int(i), int(d), int(sb)) for utt, c, sb, d, i in found}


@needs_sctk
def test_counts_equal_sclite_on_random_pairs(tmp_path, sctk):
    rng = random.Random(7)
    vocab = ["a", "b", "c", "d", "A", "the", "x"]
    refs, hyps = {}, {}
    for k in range(300):
        utt = f"spk{k % 3}_u{k:03d}"
        ref = [rng.choice(vocab) for _ in range(rng.randint(0, 12))]
        hyp = [w if rng.random() < 0.6 else rng.choice(vocab) for w in ref]
        for _ in range(rng.randint(0, 4)):
            pos = rng.randint(0, len(hyp))
            if rng.random() < 0.5 and hyp:
                del hyp[min(pos, len(hyp) - 1)]
            else:
                hyp.insert(pos, rng.choice(vocab))
        refs[utt], hyps[utt] = ref, hyp
    theirs = sclite_per_utterance(tmp_path, refs, hyps)
    assert len(theirs) == 300
    for utt in refs:
        assert align_counts(refs[utt], hyps[utt]) == theirs[utt], (utt, refs[utt], hyps[utt])


@needs_sctk
def test_counts_equal_sclite_on_real_ptb_tts_first_pass(tmp_path, sctk):
    refs = read_text(NBEST_DIR / "test" / "text.gz")
    hyps = first_pass()
    theirs = sclite_per_utterance(tmp_path, refs, hyps, case_sensitive=False)  # the README's own invocation
    assert {u: align_counts(refs[u], hyps[u]) for u in refs} == theirs


def test_cli_wer_text_and_json(tmp_path):
    (tmp_path / "ref").write_text("sw_1 a b c d\nen_1 a b\n")
    (tmp_path / "hyp").write_text("sw_1 a x c d e\nen_1 a b\n")
    r = CliRunner().invoke(cli, ["wer", str(tmp_path / "ref"), str(tmp_path / "hyp")])
    assert r.exit_code == 0, r.output
    assert "total   %WER 33.33 [ 2 / 6, 1 ins, 0 del, 1 sub ]  2 utts" in r.output
    r = CliRunner().invoke(cli, ["wer", str(tmp_path / "ref"), str(tmp_path / "hyp"), "--json"])
    d = json.loads(r.output)
    assert d["swbd"] == {"wer": 50.0, "errors": 2, "words": 4, "ins": 1, "del": 0, "sub": 1, "corr": 3,
                         "utterances": 1, "utterance_errors": 1}
    assert d["callhm"]["errors"] == 0 and d["total"]["words"] == 6
    rep = score_files(tmp_path / "ref", tmp_path / "hyp", ["en_=C"])
    assert list(rep.to_dict()) == ["C", "total"]
    r = CliRunner().invoke(cli, ["wer", str(tmp_path / "ref"), str(tmp_path / "hyp"), "--table-row", "my lm"])
    assert r.exit_code == 0 and r.output == "| my lm | 50.00 | 0.00 | 33.33 |\n", r.output
    r = CliRunner().invoke(cli, ["wer", str(tmp_path / "ref"), str(tmp_path / "hyp"), "--table-row", "x",
                                 "--columns", "total,nosuch,swbd"])
    assert r.output == "| x | 33.33 | - | 50.00 |\n", r.output
    (tmp_path / "bad").write_text("sw_1 a\nsw_1 b\n")
    r = CliRunner().invoke(cli, ["wer", str(tmp_path / "ref"), str(tmp_path / "bad")])
    assert r.exit_code == 1 and "bad:2: utterance id 'sw_1' already used on line 1" in r.output


def test_cli_wer_nist_scoring_report_and_errors(tmp_path):
    (tmp_path / "ref.stm").write_text("sw_1 A sw_1_A 0.00 2.00 <O> (uh) hello there\n"
                                      "en_2 B en_2_B 1.00 2.50 <O> you're right\n")
    (tmp_path / "hyp").write_text("sw_1-A_000000-000200 um hello [noise] there\nen_2-B_000100-000250 you are write\n")
    (tmp_path / "g.glm").write_text(";;\n* format = 'NIST1'\nUM => %HESITATION / [ ] __ [ ]\n"
                                    "UH => %HESITATION / [ ] __ [ ]\n")
    args = ["wer", "--stm", str(tmp_path / "ref.stm"), "--glm", str(tmp_path / "g.glm"), str(tmp_path / "hyp")]
    r = CliRunner().invoke(cli, args + ["--hyp-filter", "kaldi-swbd"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    # sw_1: (uh) deleted = correct; um and [noise] dropped by Kaldi's filter. en_2: you're vs you are, right vs write
    assert lines[0] == "swbd    %WER 0.00 [ 0 / 3, 0 ins, 0 del, 0 sub ]  1 utts"
    assert lines[1] == "callhm  %WER 150.00 [ 3 / 2, 1 ins, 0 del, 2 sub ]  1 utts"
    assert lines[4] == "| set    |  # Snt   # Wrd |   Corr    Sub    Del    Ins    Err  S.Err |"
    assert lines[7] == "| total  |      2       5 |   60.0   40.0    0.0   20.0   60.0   50.0 |"
    assert any("hypothesis filter kaldi-swbd" in ln for ln in lines)
    r = CliRunner().invoke(cli, args)  # without the filter, um -> %HESITATION matches (uh); [noise] is inserted
    assert r.output.splitlines()[0] == "swbd    %WER 33.33 [ 1 / 3, 1 ins, 0 del, 0 sub ]  1 utts"
    r = CliRunner().invoke(cli, ["wer", str(tmp_path / "hyp")])
    assert r.exit_code == 1 and "give REF and at least one HYP file" in r.output
    r = CliRunner().invoke(cli, ["wer", str(tmp_path / "hyp"), str(tmp_path / "hyp"), "--hyp-filter", "kaldi-swbd"])
    assert r.exit_code == 1 and "part of NIST (hubscr.pl) scoring" in r.output
    (tmp_path / "bad.glm").write_text(";;\nUH -> %HESITATION\n")
    r = CliRunner().invoke(cli, args[:3] + ["--glm", str(tmp_path / "bad.glm"), str(tmp_path / "hyp")])
    assert r.exit_code == 1 and r.output.strip().endswith("bad.glm:2: expected a rule 'A => B' or 'A => B / C __ D' "
                                                          "(no '=>')")
