"""csrfilt.sh's filter on references (stm text) and hypothesis words (ctm), csrfilt.sh as the oracle."""

from __future__ import annotations

import gzip
import random

import pytest

from rescorer.errors import FormatError
from rescorer.scoring.bytestr import split_ws
from rescorer.scoring.glm import REF_SIDE, parse_rules, read_glm, select_lines
from rescorer.scoring.transcript_filter import (expand_ctm_text, filter_hypothesis_word, filter_reference,
                                                optional_marks_valid)
from tests.conftest import HUB5_GLM, needs_sctk
from tests.nist_corpus import BOTH_SIDES, FRAGMENTS, HYP_ONLY, HYPHENATED, PLAIN, csrfilt

GLM = read_glm(HUB5_GLM)


def test_reference_upcase_rules_hyphens_and_optional_words():
    assert filter_reference("i'm gonna (uh) say mm-hmm to my mother-in-law".split(), GLM.ref) == \
        " I'M GOING TO (%HESITATION) SAY %BCACK TO MY MOTHER IN LAW "
    # ( a b ) -> ( a ) ( b ); fragments keep their hyphen; rules fire inside words without context
    assert split_ws(filter_reference(["(uh", "you", "know)", "hel-", "-ing", "percentage"], GLM.ref)) == \
        ["(%HESITATION)", "(YOU)", "(KNOW)", "HEL-", "-ING", "PER", "CENTAGE"]
    assert split_ws(filter_reference([], GLM.ref)) == []
    assert filter_reference(["Hello", "World"], None) == " HELLO WORLD "
    with pytest.raises(FormatError, match=r"utt1: unbalanced optional-deletion parentheses in '\(uh hello'"):
        filter_reference(["(uh", "hello"], GLM.ref, "utt1")
    assert not optional_marks_valid(" a ) b ") and optional_marks_valid(" (a b) (c) ")


def test_a_rule_eating_the_leading_space_glues_the_first_word_to_the_label():
    rules = parse_rules(list(enumerate(";;\n[ NEW ] => [X]\n".splitlines(keepends=True), 1)))
    # csrfilt's "$fields$text": "<O>" + "X ING" -> label "<O>X", the transcript starts at ING
    assert split_ws(filter_reference(["new", "-ing", "store"], rules)) == ["ING", "STORE"]


def test_hypothesis_words_contractions_compounds_and_ctm_quirks():
    assert filter_hypothesis_word("can't", GLM.hyp) == [(("CAN", "NOT"), ("CANNOT",))]
    assert filter_hypothesis_word("i'm", GLM.hyp) == ["I", "AM"]
    assert filter_hypothesis_word("Aircraft", GLM.hyp) == ["AIR", "CRAFT"]
    assert filter_hypothesis_word("uh", GLM.hyp) == ["%HESITATION"]
    assert filter_hypothesis_word("well-known", GLM.hyp) == ["WELL", "KNOWN"]
    # rfilter1 reads "[WEBSTER'S] => [{WEBSTER'S / WEBSTER IS / WEBSTER HAS}" as WEBSTER'S -> "[{WEBSTER'S / WEBSTER IS"
    assert filter_hypothesis_word("webster's", GLM.hyp) == [(("[", "WEBSTER'S"), ("WEBSTER", "IS"))]
    assert expand_ctm_text("NINETEEN 90") == ["NINETEEN"]  # a trailing number is taken for a confidence
    assert expand_ctm_text("{A / B / }") == [(("A",), ("B",), ())] and expand_ctm_text("{A / / }") == [(("A",), (), ())]
    assert expand_ctm_text("A /") == ["A"]  # perl's split drops the empty field at the end
    assert expand_ctm_text("") == [] and expand_ctm_text("ONE") == ["ONE"]


def _random_words(rng, n):
    pool = PLAIN + BOTH_SIDES + HYP_ONLY + HYPHENATED + FRAGMENTS + [
        "(uh)", "(hel-)", "1990", "3.5", "a-b-c", "x-", "-y", "{x", "y}", "a/b", "O.K.", "(you)", "@", "IBM's"]
    return [rng.choice(pool) if rng.random() < 0.9 else rng.choice(pool).upper() for _ in range(n)]


def _rendered(items):
    """Our hypothesis items as the ctm words csrfilt writes (alternations as ALT tags)."""
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        else:
            out.append("<ALT_BEGIN>")
            for k, alt in enumerate(item):
                out += (["<ALT>"] if k else []) + list(alt)
            out.append("<ALT_END>")
    return out


@needs_sctk
def test_equal_to_csrfilt_on_random_stm_and_ctm(tmp_path, sctk):
    rng = random.Random(11)
    glm = tmp_path / "en20030506.glm"
    glm.write_bytes(gzip.decompress(HUB5_GLM.read_bytes()))
    refs = []
    for _ in range(300):
        words = _random_words(rng, rng.randint(0, 10))
        if rng.random() < 0.3 and len(words) > 2:
            words[0], words[-1] = "(" + words[0], words[-1] + ")"
        if rng.random() < 0.2:
            words.insert(0, "{ " + words[0] + " / " + rng.choice(PLAIN) + " }") if words else None
        refs.append([w for w in words if optional_marks_valid(" ".join(words))] or ["x"])
    stm = "".join(f"f{k} A s {k}.00 {k}.50 <O> {' '.join(r)}\n" for k, r in enumerate(refs))
    out = csrfilt(glm, "stm", "ref", stm, tmp_path).splitlines()
    assert len(out) == len(refs)
    for line, r in zip(out, refs):
        assert split_ws(line)[6:] == split_ws(filter_reference(r, GLM.ref)), (r, line)
    hyps = [w for w in _random_words(rng, 1500) if optional_marks_valid(w)]
    ctm = "".join(f"f1 A {10.0 * k:.2f} 1.00 {w}\n" for k, w in enumerate(hyps))
    theirs = [split_ws(line)[4] for line in csrfilt(glm, "ctm", "hyp", ctm, tmp_path).splitlines()]
    ours = [w for h in hyps for w in _rendered(filter_hypothesis_word(h, GLM.hyp))]
    assert ours == theirs
    assert theirs.count("<ALT_BEGIN>") > 50


def test_reference_rules_are_the_reference_sections():
    raw = gzip.decompress(HUB5_GLM.read_bytes()).decode("latin-1")
    lines = list(enumerate(raw.splitlines(keepends=True), 1))
    ref = parse_rules(select_lines(lines, *REF_SIDE))
    assert [r.source for r in ref.rules] == [r.source for r in GLM.ref.rules]
    assert "CAN'T" not in {r.source for r in ref.rules} and "CAN'T" in {r.source for r in GLM.hyp.rules}
