"""Kaldi's Switchboard hypothesis filter (``egs/swbd/s5c/local/score_sclite.sh``, stage 1).

Before ``hubscr.pl``, Kaldi removes from the hypothesis ctm every word that (ignoring case) contains
``[noise``, ``laughter``, ``vocalized-noise]`` or ``<unk>``, is one of the hesitations ``uh um eh mm hm
ah huh ha er oof hee ach eee ew``, or ends in ``-`` (a partial word): the reference marks these
optionally deletable, so hypothesising them could only add errors.  Then
``local/map_acronyms_ctm.py -M data/local/dict_nosp/acronyms.map`` splits acronyms written as one
word back into letters (``u._c._l._a.`` -> ``u c l a``): the map's lines are tab-separated, the
second field is the word, the third its letters.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from rescorer.errors import FormatError, PathLike
from rescorer.fileio import iter_lines
from rescorer.scoring.bytestr import lower_ascii, split_ws

HYP_FILTERS = ("none", "kaldi-swbd")
HESITATIONS = frozenset("uh um eh mm hm ah huh ha er oof hee ach eee ew".split())
NOISE_MARKS = ("[noise", "laughter", "vocalized-noise]", "<unk>")


def kaldi_swbd_drops(word: str) -> bool:
    """Whether score_sclite.sh's greps remove ``word`` from the hypothesis."""
    low = lower_ascii(word)
    return any(m in low for m in NOISE_MARKS) or low in HESITATIONS or word.endswith("-")


def read_acronym_map(path: PathLike) -> Dict[str, Tuple[str, ...]]:
    """Kaldi's ``acronyms.map``: word (second tab field) -> letters (third field, split on blanks)."""
    out: Dict[str, Tuple[str, ...]] = {}
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        items = line.split("\t")
        if len(items) < 3 or not split_ws(items[2]):
            raise FormatError("expected '<acronym>\\t<word>\\t<letters>' (tab-separated, as "
                              "data/local/dict_nosp/acronyms.map)", path, lineno)
        out[items[1]] = tuple(split_ws(items[2]))
    return out


class HypothesisFilter:
    """``none``, or Kaldi's ``kaldi-swbd`` greps, then the acronym map when given."""

    def __init__(self, name: str = "none", acronyms: Optional[Dict[str, Tuple[str, ...]]] = None):
        if name not in HYP_FILTERS:
            raise ValueError(f"hypothesis filter must be one of {HYP_FILTERS}, got {name!r}")
        self.name = name
        self.acronyms = acronyms or {}

    def __call__(self, words: Sequence[str]) -> List[str]:
        kept = [w for w in words if not kaldi_swbd_drops(w)] if self.name == "kaldi-swbd" else list(words)
        if not self.acronyms:
            return kept
        out: List[str] = []
        for w in kept:
            out.extend(self.acronyms.get(w, (w,)))
        return out

    def describe(self) -> str:
        acr = f" + {len(self.acronyms)} acronyms" if self.acronyms else ""
        return f"{self.name}{acr}"
