"""NIST (hubscr.pl) scoring against NIST's own tools: the same counts per utterance, per subset, in total.

The material (tests/nist_corpus.py) is drawn at random, seeded, to hit every rule kind: GLM mappings
with and without contexts (incl. the hypothesis-only contractions that become alternations, and
compounds), backchannels and hesitations, optionally deletable words, alternations with ``@``,
fragments, hyphenated words, noise tokens and ``<unk>`` (dropped by Kaldi's filter), mixed case,
empty hypotheses and references, IGNORE_TIME_SEGMENT_IN_SCORING segments, two subsets.  The oracle
is Debian's sctk run the way Kaldi's ``local/score_sclite.sh`` runs it: its ctm greps, then
``csrfilt.sh -dh`` + ``sclite -F -D`` (per utterance), and ``hubscr.pl`` itself per subset (``grep
-v '^en_'`` / ``'^sw_'``) and in total, on a ctm whose invented word times put every hypothesis
word inside its segment.
"""

from __future__ import annotations

import gzip
import json
import re

import pytest
from click.testing import CliRunner

from rescorer.cli.group import cli
from rescorer.nbest.wer import read_stm_references, read_text
from rescorer.scoring.nist_scorer import make_scorer
from tests.conftest import HUB5_GLM, needs_sctk
from tests.nist_corpus import HYP_ONLY, NOISE, hubscr_counts, make_corpus, sclite_counts, write_inputs

N_SEGMENTS = 1200


def _key(seg):
    return seg.file.lower(), seg.channel.lower(), f"{seg.begin:.2f}"


def our_counts(corpus, paths, glm):
    """Per segment key -> (C, S, D, I) through admmq's readers (stm, Kaldi text) and NIST scorer."""
    hyps = read_text(paths["hyp.text"])
    refs = read_stm_references(paths["ref.stm"], hyps)
    scorer = make_scorer(glm, "kaldi-swbd", stm=True)
    out, ignored = {}, 0
    for seg in corpus.segments:
        net = scorer.reference(refs[seg.utt], seg.utt)
        if net is None:
            ignored += 1
            continue
        c = scorer.count(net, hyps.get(seg.utt, ()), seg.utt)
        out[_key(seg)] = (c.corr, c.sub, c.dels, c.ins)
    return out, ignored, scorer


@pytest.fixture(scope="module")
def hub5(tmp_path_factory):
    work = tmp_path_factory.mktemp("hub5")
    glm = work / "en20030506.glm"
    glm.write_bytes(gzip.decompress(HUB5_GLM.read_bytes()))  # csrfilt.sh reads it unpacked
    corpus = make_corpus(20251206, N_SEGMENTS)
    return work, glm, corpus, write_inputs(corpus, work)


def test_corpus_hits_every_rule_kind(hub5):
    _, glm, corpus, paths = hub5
    refs = [" ".join(s.ref) for s in corpus.segments]
    hyps = [w for s in corpus.segments for w in s.hyp]
    assert sum("(" in r for r in refs) > 100 and sum("{" in r for r in refs) > 100
    assert sum("@" in r for r in refs) > 20 and sum(r.count("{") > 1 for r in refs) > 20
    assert sum(r == "IGNORE_TIME_SEGMENT_IN_SCORING" for r in refs) > 10 and sum(not r for r in refs) > 5
    assert sum(not s.hyp for s in corpus.segments) > 20 and len(corpus.missing) > 10
    assert {s.file[:3] for s in corpus.segments} == {"sw_", "en_"}
    for kind in (NOISE, HYP_ONLY, ["uh", "um", "hm", "mm-hmm", "gonna", "percentage", "well-known", "hel-",
                                   "aircraft", "backyard", "webster's"]):
        assert sum(w.lower() in kind for w in hyps) > 10, kind
    assert sum(w != w.lower() for w in hyps) > 300
    _, _, scorer = our_counts(corpus, paths, glm)
    alternations = sum(not isinstance(i, str) for s in corpus.segments for i in scorer.hypothesis_items(s.hyp))
    rewritten = sum(scorer.filtered_reference(s.ref) != " ".join(s.ref).upper() for s in corpus.segments)
    assert alternations > 100 and rewritten > 500


@needs_sctk
def test_every_utterance_counts_as_csrfilt_and_sclite(hub5, sctk):
    work, glm, corpus, paths = hub5
    theirs = sclite_counts(work, paths["ref.stm"], paths["hyp.ctm"], glm)
    ours, ignored, _ = our_counts(corpus, paths, glm)
    assert len(ours) >= 1000 and ignored > 10
    diff = [(k, ours[k], theirs.get(k)) for k in ours if ours[k] != theirs.get(k)]
    assert not diff, f"{len(diff)} of {len(ours)} segments differ from sclite, e.g. {diff[:3]}"
    assert set(theirs) == set(ours)  # no segment scored on one side only (IGNORE segments on neither)


@needs_sctk
def test_subsets_and_total_equal_hubscr(hub5, sctk):
    """``admmq wer --stm --glm --hyp-filter kaldi-swbd`` = hubscr.pl's sum table, per subset and in total."""
    work, glm, corpus, paths = hub5
    args = ["wer", "--stm", str(paths["ref.stm"]), "--glm", str(glm), "--hyp-filter", "kaldi-swbd",
            str(paths["hyp.text"])]
    r = CliRunner().invoke(cli, args + ["--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    ours, _, _ = our_counts(corpus, paths, glm)
    for name in ("swbd", "callhm", "total"):
        (c, s, dl, i), snt, serr, per_utt = hubscr_counts(work, paths["ref.stm"], paths["hyp.ctm"], glm, name)
        got = d[name]
        assert (got["corr"], got["sub"], got["del"], got["ins"]) == (c, s, dl, i), name
        assert (got["utterances"], got["utterance_errors"], got["words"]) == (snt, serr, c + s + dl), name
        assert all(ours[k] == v for k, v in per_utt.items()) and len(per_utt) == snt, name
    assert d["swbd"]["utterances"] + d["callhm"]["utterances"] == d["total"]["utterances"] >= 1000
    text = CliRunner().invoke(cli, args).output
    t = d["total"]
    assert (f"total   %WER {t['wer']:.2f} [ {t['errors']} / {t['words']}, {t['ins']} ins, {t['del']} del, "
            f"{t['sub']} sub ]") in text
    row = next(ln for ln in text.splitlines() if ln.startswith("| total "))
    assert row.split("|")[2].split() == [str(t["utterances"]), str(t["words"])]
    assert re.search(r"\d+ segment\(s\) IGNORE_TIME_SEGMENT_IN_SCORING", text)


CUSTOM_GLM = """;; admmq's test rules: kinds the public GLM lacks
* name "admmq test rules"
* format = 'NIST1'
* max_nrules = '40'
* case_sensitive = 'T'
YEAH => YES / [ ] __ [ ]
[ YOU KNOW ] => [ ]  ;; deletes a phrase (references: the hypothesis is filtered word by word)
KIDS => CHILDREN / __ [ ]
SCHOOL => SKOOL / [ ] __
ONE => 1 ;; no context: fires inside words too
yeah => nope ;; never fires: case-sensitive and the text is upper-cased
;; INPUT_DEPENDENT_APPLICATION = "ctm"
[ UM ] => [ ]
TWO => {TWO / TOO / @} / [ ] __ [ ]
[ THREE ] => [ 3 4 ]  ;; csrfilt takes the trailing number for a confidence
OKAY => [{OKAY / O. K.}] / [ ] __ [ ]
;; INPUT_DEPENDENT_APPLICATION = "stm|ref"
GOOD => {GOOD / FINE} / [ ] __ [ ]
[ NEW ] => [ {NEW / KNEW} ]  ;; no context: rfilter1 takes the last '/' for it, the '{' is never closed
"""


@needs_sctk
def test_custom_rule_kinds_count_as_csrfilt_and_sclite(tmp_path, sctk):
    """Case-sensitive rules, deletions, rules producing alternations with @ (both sides), numbers."""
    glm = tmp_path / "custom.glm"
    glm.write_text(CUSTOM_GLM)
    corpus = make_corpus(7, 400)
    paths = write_inputs(corpus, tmp_path)
    theirs = sclite_counts(tmp_path, paths["ref.stm"], paths["hyp.ctm"], glm)
    ours, _, scorer = our_counts(corpus, paths, glm)
    diff = [(k, ours[k], theirs.get(k)) for k in ours if ours[k] != theirs.get(k)]
    assert not diff, f"{len(diff)} of {len(ours)} segments differ from sclite, e.g. {diff[:3]}"
    assert set(theirs) == set(ours) and len(ours) > 350
    items = [i for s in corpus.segments for i in scorer.hypothesis_items(s.hyp)]
    assert (("TWO",), ("TOO",), ("@",)) in items and "3" in items and "4" not in items and "SOME1" in items
    assert len(scorer.cut) > 5  # references cut at the broken rule's '{', as sclite cuts them
