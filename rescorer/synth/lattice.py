"""Pocketsphinx word lattices (``Lattice.write``'s native format) and per-hypothesis acoustic costs.

The native format (log base in the header, usually 1.0001)::

    # -logbase 1.000100e+00
    Frames 595
    Nodes 963 (NODEID WORD STARTFRAME FIRST-ENDFRAME LAST-ENDFRAME)
    0 </s> 572 594 594 ; 0
    ...
    Initial 962
    Final 0
    BestSegAscr 0 (NODEID ENDFRAME ASCORE)
    Edges (FROM-NODEID TO-NODEID ASCORE)
    1 0 -261120
    ...
    End

An edge ``u v a`` carries ``a``, the acoustic log-score of ``u``'s word
ending where ``v`` starts.  The acoustic cost of a hypothesis is the best
path from the initial to the final node whose word nodes spell exactly the
hypothesis (silence, fillers and sentence markers may appear anywhere),
negated and converted to natural log.  Summing the edge scores counts every
node but the final ``</s>``, whose score is the same for every path.
Pronunciation variants (``to(2)``) match their word.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from rescorer.errors import FormatError, PathLike
from rescorer.fileio import iter_lines

_VARIANT = re.compile(r"\(\d+\)$")


def base_word(word: str) -> str:
    """``to(2)`` -> ``to``: a pronunciation variant is its word."""
    return _VARIANT.sub("", word)


def is_filler(word: str) -> bool:
    """Words a hypothesis does not contain: ``<s>``, ``</s>``, ``<sil>``, ``[NOISE]``, ``++...++``."""
    return word in ("<s>", "</s>", "<sil>") or word.startswith("[") or word.startswith("++")


def clean_hypothesis(text: str) -> Tuple[str, ...]:
    """A decoder hypothesis string -> its words, fillers dropped and variant marks removed."""
    return tuple(base_word(w) for w in text.split() if not is_filler(base_word(w)))


@dataclass
class WordLattice:
    """A lattice as ``words[n]``/``start[n]`` per node and ``edges[u] = [(v, log score), ...]``."""

    words: Dict[int, str]
    start: Dict[int, int]
    edges: Dict[int, List[Tuple[int, int]]]
    initial: int
    final: int
    log_base: float = 1.0001

    def topological(self) -> List[int]:
        """Nodes in start-frame order (every edge goes to a later start frame)."""
        return sorted(self.words, key=lambda n: (self.start[n], n))

    def acoustic_costs(self, hypotheses: Sequence[Sequence[str]]) -> List[Optional[float]]:
        """Acoustic cost (natural log, >= 0 in pocketsphinx's normalisation) of each hypothesis.

        One dynamic program over (lattice node, prefix of the hypotheses), the
        prefixes held in a trie so shared prefixes are expanded once.  ``None``
        for a hypothesis no lattice path spells.
        """
        trie: List[Dict[str, int]] = [{}]
        ends = []
        for hyp in hypotheses:
            t = 0
            for w in hyp:
                nxt = trie[t].get(w)
                if nxt is None:
                    nxt = len(trie)
                    trie[t][w] = nxt
                    trie.append({})
                t = nxt
            ends.append(t)
        best: Dict[int, Dict[int, int]] = defaultdict(dict)  # node -> trie state -> best log score
        best[self.initial][0] = 0
        for u in self.topological():
            states = best.get(u)
            if not states:
                continue
            for v, score in self.edges.get(u, ()):
                word = self.words[v]
                into = best[v]
                for t, total in states.items():
                    if is_filler(word):
                        nt = t
                    else:
                        nt = trie[t].get(word)
                        if nt is None:
                            continue
                    if total + score > into.get(nt, -math.inf):
                        into[nt] = total + score
        final = best.get(self.final, {})
        scale = math.log(self.log_base)
        return [(-final[t] * scale) if t in final else None for t in ends]


def read_lattice(path: PathLike) -> WordLattice:
    """Parse a pocketsphinx native lattice file; a malformed line is an error naming it."""
    words: Dict[int, str] = {}
    start: Dict[int, int] = {}
    edges: Dict[int, List[Tuple[int, int]]] = defaultdict(list)
    initial = final = None
    log_base = 1.0001
    section = None
    for lineno, line in iter_lines(path):
        f = line.split()
        if not f:
            continue
        try:
            if f[0] == "#":
                if len(f) >= 3 and f[1] == "-logbase":
                    log_base = float(f[2])
                continue
            head = f[0]
            if head in ("Nodes", "Edges", "BestSegAscr"):
                section = head
            elif head in ("Initial", "Final"):
                section = None
                if head == "Initial":
                    initial = int(f[1])
                else:
                    final = int(f[1])
            elif head in ("Frames", "End"):
                section = None
            elif section == "Nodes":
                node = int(f[0])
                words[node] = base_word(f[1])
                start[node] = int(f[2])
            elif section == "Edges":
                edges[int(f[0])].append((int(f[1]), int(f[2])))
            elif section == "BestSegAscr":
                continue
            else:
                raise ValueError("unexpected line")
        except (ValueError, IndexError):
            raise FormatError(f"not a pocketsphinx lattice line: {line.strip()[:60]!r}", path, lineno) from None
    if initial is None or final is None or initial not in words or final not in words:
        raise FormatError("pocketsphinx lattice without valid 'Initial'/'Final' nodes", path)
    for u, out in edges.items():
        for v, _ in out:
            if u not in words or v not in words:
                raise FormatError(f"edge {u} -> {v} names an undefined node", path)
    return WordLattice(words, start, dict(edges), initial, final, log_base)
