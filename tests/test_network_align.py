"""sclite's network alignment: hand-counted cases, and sclite itself (trn mode, -F -D) as the oracle."""

from __future__ import annotations

import random
import re
import subprocess

import pytest

from rescorer.scoring.bytestr import lower_ascii
from rescorer.scoring.network_align import align
from rescorer.scoring.word_network import build_network, parse_transcript
from tests.conftest import SCTK_BIN, needs_sctk


def counts(ref, hyp):
    c = align(build_network(parse_transcript(lower_ascii(ref))), build_network(parse_transcript(lower_ascii(hyp))))
    return c.corr, c.sub, c.dels, c.ins


@pytest.mark.parametrize("ref,hyp,expected", [
    ("a (uh) b", "a b", (3, 0, 0, 0)),  # a deleted optional word is correct and counts as a word
    ("x (y) z", "x w z", (2, 1, 0, 0)),  # substitution (4) beats optional deletion + insertion (2 + 3)
    ("{ a / @ } b", "b", (1, 0, 0, 0)),  # the null alternative: no word, no error
    ("{ a / @ } b", "a b", (2, 0, 0, 0)),
    ("hel- there", "hello there", (2, 0, 0, 0)),  # fragments match the word they start
    ("-ing well", "going well", (2, 0, 0, 0)),
    ("a b c d e", "d e f g h", (2, 0, 3, 3)),  # sub 4, ins/del 3: 3 del + 3 ins beat 5 sub
    ("{ he is / he has }", "he's", (0, 1, 1, 0)),
    ("", "a b", (0, 0, 0, 2)),
    ("a (b)", "", (1, 0, 1, 0)),
    # single precision decides this tie between paths through '@' (double precision: 2 0 0 5)
    ("{ d / b- / b b d } @", "a (ab-) -c { x ab- -c / (b) { -c / e b (a) } e / y (ab-) } abc", (2, 1, 0, 3)),
])
def test_hand_counted(ref, hyp, expected):
    assert counts(ref, hyp) == expected


VOCAB = ["a", "b", "c", "d", "ab", "abc", "b-", "-c", "ab-", "(a)", "(b)", "(ab-)", "@", "x", "y", "A", "B-"]


def _transcript(rng, depth=0, n=None):
    out = []
    for _ in range(rng.randint(0, 6) if n is None else n):
        if rng.random() < 0.15 and depth < 2:
            alts = [_transcript(rng, depth + 1, rng.randint(1, 3)) for _ in range(rng.randint(2, 3))]
            out.append("{ " + " / ".join(alts) + " }")
        else:
            out.append(rng.choice(VOCAB))
    return " ".join(out)


@needs_sctk
def test_equal_to_sclite_on_random_networks(tmp_path, sctk):
    """sclite aligns two trn transcripts with the same network DP: alternations, optional words and
    fragments on both sides, ``@``; 3000 random pairs, counts per utterance."""
    rng = random.Random(17)
    pairs = [(_transcript(rng), _transcript(rng)) for _ in range(3000)]
    for name, side in (("ref", 0), ("hyp", 1)):
        (tmp_path / f"{name}.trn").write_text("".join(f"{p[side]} (s{k % 3}_{k:04d})\n" for k, p in enumerate(pairs)))
    out = subprocess.run([str(SCTK_BIN / "sclite"), "-r", str(tmp_path / "ref.trn"), "trn", "-h",
                          str(tmp_path / "hyp.trn"), "trn", "-i", "spu_id", "-F", "-D", "-o", "pralign", "stdout"],
                         capture_output=True, text=True, check=True).stdout
    theirs = {u: tuple(map(int, c)) for u, *c in
              re.findall(r"id: \((\S+)\)\nScores: \(#C #S #D #I\) (\d+) (\d+) (\d+) (\d+)", out)}
    assert len(theirs) == len(pairs)
    diff = [(r, h, theirs[f"s{k % 3}_{k:04d}"]) for k, (r, h) in enumerate(pairs)
            if counts(r, h) != theirs[f"s{k % 3}_{k:04d}"]]
    assert not diff, f"{len(diff)} differ, e.g. {diff[:3]}"
