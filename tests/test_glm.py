"""GLM files: rules read and applied as rfilter1 reads and applies them (rfilter1 is the oracle)."""

from __future__ import annotations

import gzip
import random
import re

import pytest

from rescorer.errors import FormatError
from rescorer.scoring.glm import HYP_SIDE, REF_SIDE, parse_rules, read_glm, select_lines
from tests.conftest import HUB5_GLM, needs_sctk
from tests.nist_corpus import rfilter1_apply, rfilter1_rules

HEADER = ";; test rules\n* name \"t\"\n* format = 'NIST1'\n* max_nrules = '5000'\n"


def _lines(text):
    return list(enumerate(text.splitlines(keepends=True), 1))


def _rules(text):
    return [(r.source, r.target, r.left, r.right) for r in parse_rules(_lines(text)).rules]


def test_rule_parts_contexts_and_header():
    rs = parse_rules(_lines(HEADER + "* case_sensitive = 'F'\n* copy_no_hit = \"T\"\n"
                            "HUH-UH  =>  %BCNACK    / [ ] __ [ ] ;; negative token\n"
                            "'CAUSE           => BECAUSE ;; per AHD\n"
                            "FALKNER  => FAULKNER / [WILLIAM ] __  ;; the writer\n"
                            "BINYAMIN => BENJAMIN / __ [ NETANYAHU]\n"
                            "[CANNOT ] => [CAN NOT ]\n"
                            "[HE'S] => [{HE IS / HE HAS}] / [ ] __ [ ]\n"
                            "[WEBSTER'S] => [{WEBSTER'S / WEBSTER IS / WEBSTER HAS}\n"))
    assert not rs.case_sensitive and rs.copy_no_hit and rs.name == "t"
    assert [(r.source, r.target, r.left, r.right) for r in rs.rules] == [
        ("HUH-UH", "%BCNACK", " ", " "), ("'CAUSE", "BECAUSE", "", ""), ("FALKNER", "FAULKNER", "WILLIAM ", ""),
        ("BINYAMIN", "BENJAMIN", "", " NETANYAHU"), ("CANNOT ", "CAN NOT ", "", ""),
        ("HE'S", "{HE IS / HE HAS}", " ", " "),
        # rfilter1 takes the last '/' of a rule without context for the context marker: a broken rule
        ("WEBSTER'S", "[{WEBSTER'S / WEBSTER IS", "", "")]
    assert [r.line for r in rs.rules] == list(range(7, 14))


def test_application_left_to_right_first_rule_contexts_on_the_input_case():
    rs = parse_rules(_lines(HEADER + "* case_sensitive = 'F'\nPERCENT => PER CENT\nUH => %HESITATION / [ ] __ [ ]\n"
                            "backyard => back yard / [ ] __ [ ]\n"))
    # fires inside words without context; whole words only with [ ] contexts
    assert rs.apply(" PERCENTAGE UH UHM ") == " PER CENTAGE %HESITATION UHM "
    assert rs.apply(" BACKYARD ") == " back yard "  # case-insensitive match, output as written
    # the first rule in file order wins; the left context is read in the input (the earlier A is not B)
    rs = parse_rules(_lines(HEADER + "A => B / [B] __\nAB => X\nA => Y\n"))
    assert rs.apply(" AB BA BAA ") == " X BB BBY "
    strict = parse_rules(_lines(HEADER + "* case_sensitive = 'T'\n* copy_no_hit = 'F'\nab => X\n"))
    assert strict.apply("ab AB") == "X"  # no case folding; characters no rule matches are dropped


def test_sections_for_reference_and_hypothesis():
    text = HEADER + "A => B\n;; INPUT_DEPENDENT_APPLICATION = \"ctm\"\nC => D\n" \
                    ";;  INPUT_DEPENDENT_APPLICATION = \"STM|ref\"\nE => F\n"
    assert _rules("".join(line for _, line in select_lines(_lines(text), *REF_SIDE))) == [
        ("A", "B", "", ""), ("E", "F", "", "")]
    assert _rules("".join(line for _, line in select_lines(_lines(text), *HYP_SIDE))) == [
        ("A", "B", "", ""), ("C", "D", "", "")]
    glm = read_glm(HUB5_GLM)
    assert len(glm.ref.rules) == 463 and len(glm.hyp.rules) == 1612 and not glm.hyp.case_sensitive


@pytest.mark.parametrize("text,message", [
    (HEADER + "A -> B\n", ":5: expected a rule 'A => B'"),
    (HEADER + "* max_nrules 12\n", ":5: header line ('*') without a quoted value"),
    (HEADER + "  ;; an indented comment\n", ":5: rule line holds only a comment"),
    (HEADER.replace("5000", "2") + "A => B\nC => D\nE => F\n", ":7: more rules than the file's max_nrules (2)"),
    (HEADER.replace("NIST1", "NIST2") + "A => B\n", "rule format 'NIST2'"),
    (HEADER + ";; INPUT_DEPENDENT_APPLICATION = \"(ctm\"\n", ":5: INPUT_DEPENDENT_APPLICATION regex"),
])
def test_files_rfilter1_refuses_are_errors_naming_the_line(tmp_path, text, message):
    (tmp_path / "g.glm").write_text(text)
    with pytest.raises(FormatError, match=re.escape(message)):
        read_glm(tmp_path / "g.glm")


def _random_rule_line(rng):
    word = lambda: rng.choice(["A", "AB", "B'S", "%HES", "X-Y", "CAN'T", "q", "_Z", "W_V"])  # noqa: E731
    part = lambda: rng.choice([word(), f"[{word()} ]", f"[ {word()}]", f'"{word()}"', f"{word()} {word()}",  # noqa: E731
                               f"[{{{word()} / {word()} {word()}}}]", "[ ]", "[]", f"{word()}/{word()}", ""])
    rhs = part()
    line = f"{rng.choice(['', ' ', '  '])}{part() or word()}{rng.choice([' ', '  ', ''])}=>{rng.choice([' ', '  '])}{rhs}"
    r = rng.random()
    if r < 0.5:
        line += rng.choice([" / [ ] __ [ ]", " / __ [ X]", " / [Y ] __", " /__", " / [A_B] __ [ ]", " / [ ] __"])
    if rng.random() < 0.3:
        line += " ;; comment / with [ ] and __"
    if rng.random() < 0.05:  # longer than rfilter1's line buffer: the rest arrives as another line
        line = line.ljust(131 + 2) + "Q => R"
    return line


@needs_sctk
def test_reading_equals_rfilter1_on_the_public_glm_and_random_rule_lines(tmp_path, sctk):
    raw = gzip.decompress(HUB5_GLM.read_bytes()).decode("latin-1")
    for side in (REF_SIDE, HYP_SIDE):
        selected = "".join(line for _, line in select_lines(_lines(raw), *side))
        (tmp_path / "side.glm").write_text(selected, encoding="latin-1")
        assert _rules(selected) == rfilter1_rules(tmp_path / "side.glm"), side
    rng = random.Random(3)
    text = HEADER + "".join(_random_rule_line(rng) + "\n" for _ in range(400))
    (tmp_path / "random.glm").write_text(text)
    ours = _rules(text)
    assert ours == rfilter1_rules(tmp_path / "random.glm") and len(ours) > 400


@needs_sctk
def test_application_equals_rfilter1_on_random_text(tmp_path, sctk):
    raw = gzip.decompress(HUB5_GLM.read_bytes()).decode("latin-1")
    rng = random.Random(5)
    small = HEADER + "* case_sensitive = 'T'\n* copy_no_hit = 'F'\nAB => X\nB => YY / [A] __ [C]\n[ ] => [_]\n"
    for text in (raw, "".join(line for _, line in select_lines(_lines(raw), *HYP_SIDE)), small):
        (tmp_path / "g.glm").write_text(text, encoding="latin-1")
        rules = parse_rules(_lines(text))
        pool = [r.source for r in rules.rules] + ["THE", "OK", "PERCENTAGE", "A", "B", "C", "ab", "%uh"]
        lines = []
        for _ in range(300):
            words = [rng.choice(pool) for _ in range(rng.randint(0, 8))]
            words = [w.lower() if rng.random() < 0.2 else w for w in words]
            lines.append("".join(w + rng.choice([" ", "  ", ""]) for w in words) + rng.choice(["", " "]))
        code, theirs = rfilter1_apply(tmp_path / "g.glm", lines)
        assert code == 0
        ours = [rules.apply(line) for line in lines]
        if not rules.copy_no_hit:  # rfilter1 drops the line ends too: one output line
            ours, theirs = "".join(ours), theirs[0]
        assert ours == theirs
