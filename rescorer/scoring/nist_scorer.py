"""One utterance scored as ``hubscr.pl -l english -h hub5 -g GLM`` scores it: the counts sclite reports.

The reference transcript (an stm segment's text, or a Kaldi ``text`` line) goes through
``csrfilt.sh -i stm -t ref -dh GLM``; each hypothesis word through the hypothesis filter (none, or
Kaldi's ``score_sclite.sh`` greps and acronym map) and then ``csrfilt.sh -i ctm -t hyp -dh GLM``
(contractions become alternations there); sclite ``-F -D`` (fragments, optional deletion, case
folded) aligns the two word networks.  Without a GLM the same filter runs with no rules.

What is *not* reproduced: sclite cuts a conversation side's ctm into stm segments by word times
(a word belongs to the segment its midpoint falls before); here each hypothesis utterance is its
segment's (see ``docs/scoring.md``).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from rescorer.errors import AdmmqError, PathLike
from rescorer.scoring.bytestr import to_bytestr
from rescorer.scoring.glm import Glm, read_glm
from rescorer.scoring.kaldi_filter import HypothesisFilter, read_acronym_map
from rescorer.scoring.network_align import AlignCounts, align
from rescorer.scoring.stm import is_ignored
from rescorer.scoring.transcript_filter import HypItem, filter_hypothesis_word, filter_reference
from rescorer.scoring.word_network import Element, Network, build_network, hypothesis_sequence, reference_sequence


class NistScorer:
    """Counts of hypotheses against references, hubscr.pl style; words are cached after filtering."""

    def __init__(self, glm: Optional[Glm] = None, hyp_filter: Optional[HypothesisFilter] = None):
        self.glm = glm
        self.hyp_filter = hyp_filter or HypothesisFilter()
        self._items: Dict[str, List[HypItem]] = {}  # hypothesis word -> what it becomes (filters, csrfilt)
        self._elements: Dict[str, Tuple[Element, ...]] = {}  # ... as sclite's words and alternations
        self._refs: Dict[Tuple[str, ...], Optional[Network]] = {}
        self.cut: List[str] = []  # references whose unclosed '{' ended them (sclite drops the rest)

    def describe(self) -> str:
        glm = f"GLM {self.glm.path}" if self.glm is not None else "no GLM"
        return f"NIST hubscr rules: {glm}, hypothesis filter {self.hyp_filter.describe()}, sclite -F -D"

    def warnings(self) -> List[str]:
        if not self.cut:
            return []
        return [f"{len(self.cut)} reference(s) hold a '{{' that is never closed after csrfilt (first: {self.cut[0]}); "
                f"sclite ignores the rest of such a transcript and so does admmq (a GLM rule 'A => [{{B / C}}]' "
                f"without context does this)"]

    def filtered_reference(self, words: Sequence[str], where: str = "reference") -> str:
        """The reference after csrfilt (a byte string as sclite reads it)."""
        return filter_reference([to_bytestr(w) for w in words], self.glm.ref if self.glm else None, where)

    def reference(self, words: Sequence[str], where: str = "reference") -> Optional[Network]:
        """The reference network, or None when the segment is IGNORE_TIME_SEGMENT_IN_SCORING."""
        key = tuple(words)
        if key not in self._refs:
            text = self.filtered_reference(words, where)
            self._refs[key] = None if is_ignored(text) else build_network(reference_sequence(text, where, self.cut))
        return self._refs[key]

    def _word_items(self, word: str, where: str) -> List[HypItem]:
        items = self._items.get(word)
        if items is None:
            rules = self.glm.hyp if self.glm else None
            items = [i for w in self.hyp_filter([word]) for i in filter_hypothesis_word(to_bytestr(w), rules, where)]
            self._items[word] = items
        return items

    def hypothesis_items(self, words: Sequence[str], where: str = "hypothesis") -> List[HypItem]:
        """The hypothesis as the ctm words and alternation blocks sclite reads."""
        return [i for w in words for i in self._word_items(w, where)]

    def hypothesis(self, words: Sequence[str], where: str = "hypothesis") -> Network:
        out: List[Element] = []
        for w in words:
            elements = self._elements.get(w)
            if elements is None:
                elements = self._elements[w] = hypothesis_sequence(self._word_items(w, where), where)
            out.extend(elements)
        return build_network(out)

    def count(self, ref: Network, hyp_words: Sequence[str], where: str = "hypothesis") -> AlignCounts:
        """sclite's counts of ``hyp_words`` against the reference network ``ref``."""
        return align(ref, self.hypothesis(hyp_words, where))


def count_all(scorer: NistScorer, ref: Network, hyps: Sequence[Tuple[str, ...]],
              where: str = "hypothesis") -> List[AlignCounts]:
    """Counts of several hypotheses of one utterance (each distinct one aligned once)."""
    seen: Dict[Tuple[str, ...], AlignCounts] = {}
    out = []
    for h in hyps:
        c = seen.get(h)
        if c is None:
            c = seen[h] = scorer.count(ref, h, where)
        out.append(c)
    return out


def make_scorer(glm: Optional[PathLike] = None, hyp_filter: str = "none", acronym_map: Optional[PathLike] = None,
                stm: bool = False) -> Optional[NistScorer]:
    """The NIST scorer for an stm reference or a GLM (rules read now, so a bad file fails early); None
    (plain sclite counting) without either.  The hypothesis filter and acronym map belong to NIST scoring."""
    if glm is None and not stm:
        if hyp_filter != "none" or acronym_map is not None:
            raise AdmmqError("--hyp-filter and --acronym-map are part of NIST (hubscr.pl) scoring: give --glm "
                             "and/or an stm reference (--stm)")
        return None
    acronyms = read_acronym_map(acronym_map) if acronym_map is not None else None
    return NistScorer(read_glm(glm) if glm is not None else None, HypothesisFilter(hyp_filter, acronyms))
