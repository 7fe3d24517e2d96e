"""sclite's word networks: a transcript with alternations and optional words as a graph of word arcs.

**Words** (sclite's ``new_WORD_parseText`` with ``-F -D``): the text up to the first unescaped ``;``
(backslashes dropped), one trailing ``*`` removed; ``(w)`` is optionally deletable (compared as
``w``); a word starting or ending with ``-`` (also ``(w-)``) is a fragment; ``@`` is the null word.
Case is folded (ASCII) before parsing, as sclite does without ``-s``.

**Transcripts** (``Network_create_from_TEXT``): whitespace-separated tokens; ``{`` opens an
alternation that runs to its matching ``}`` (spaces included), whose alternatives are separated by
``/`` at the top level and are transcripts themselves (nesting allowed; empty alternatives are
skipped, so ``{ a / }`` has one alternative).  A ``{`` never closed ends the transcript (sclite
drops the rest; a GLM rule ``A => [{B / C}]`` without context produces that, since rfilter1 reads
its ``/`` as the context marker).  A ``{`` inside a word would crash sclite: an error here.  A hypothesis (``Network_create_from_WTOKE``) is a
list of words and alternation blocks from the ctm (:mod:`transcript_filter`), an empty
alternative being ``@``.

**Graph**: words in sequence are a chain of arcs; an alternation puts its alternatives side by side
between two nodes, in order.  sclite then adds a head arc without word before everything
(:func:`build_network`).  The DP (:mod:`network_align`) visits arcs in sclite's order (a
breadth-first topological walk, out-arcs in insertion order) and breaks ties by the order of each
node's in-arcs (alternatives in order), so both orders are kept exactly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

from rescorer.errors import FormatError
from rescorer.scoring.bytestr import WHITESPACE, lower_ascii
from rescorer.scoring.transcript_filter import HypItem


@dataclass(frozen=True)
class Word:
    """One word arc's data as sclite keeps it (all byte strings, case folded)."""

    value: str  # as read: "(uh)", "hel-", "@"
    text: str  # compared text: value, or inside the parentheses of an optional word
    optional: bool
    fragment: bool

    @property
    def null(self) -> bool:
        return self.value == "@"


Element = Union[Word, "Alternation"]


@dataclass(frozen=True)
class Alternation:
    alternatives: Tuple[Tuple[Element, ...], ...]


def make_word(token: str, where: str = "transcript") -> Word:
    """A word arc from one token (sclite's word parsing and its ``-D`` / ``-F`` decoding)."""
    if token.startswith("{"):
        value = token
    else:
        k = token.find(";")
        while k > 0 and token[k - 1] == "\\":
            k = token.find(";", k + 1)
        value = (token if k < 0 else token[:k]).replace("\\", "")
    if not value:
        raise FormatError(f"word {token!r} has no text before its ';' tag (sclite cannot score it)", where)
    if len(value) > 1 and value.endswith("*"):
        value = value[:-1]
    optional = value[0] == "(" and value[-1] == ")"
    text = value[1:-1] if optional else value
    fragment = value[-1] == "-" or value[0] == "-" or (optional and len(value) > 1 and value[-2] == "-")
    return Word(value, text, optional, fragment)


def words_equal(w1: Word, w2: Word) -> bool:
    """sclite's ``equal_WORD2``: exact text, or a fragment matching the other word's start / end."""
    t1, t2 = w1.text, w2.text
    if w1.fragment or w2.fragment:
        l1, l2 = len(t1), len(t2)
        if l1 > 1 and t1[0] == "-":
            return l2 >= l1 - 1 and t2[l2 - (l1 - 1):] == t1[1:]
        if l1 > 1 and t1[-1] == "-":
            return t2.startswith(t1[:-1])
        if l2 > 1 and t2[0] == "-":
            return l1 >= l2 - 1 and t1[l1 - (l2 - 1):] == t2[1:]
        if l2 > 1 and t2[-1] == "-":
            return t1.startswith(t2[:-1])
    return t1 == t2


def _skip(text: str, i: int, chars: str) -> int:
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def parse_transcript(text: str, where: str = "transcript", cut: Optional[List[str]] = None) -> Tuple[Element, ...]:
    """A transcript (byte string, already case folded) as a sequence of words and alternations.

    An alternation whose ``{`` is never closed ends the transcript there, as in sclite (which drops
    the rest silently); ``where`` is then appended to ``cut`` when given.
    """
    out: List[Element] = []
    i = _skip(text, 0, WHITESPACE)
    while i < len(text):
        if text[i] == "{":
            depth, j = 0, i
            while j < len(text):
                depth += (text[j] == "{") - (text[j] == "}")
                j += 1
                if depth == 0:
                    break
            if depth > 0:
                if cut is not None:
                    cut.append(where)
                break
            out.append(_alternation(text[i:j], where))
        else:
            j = i
            while j < len(text) and text[j] not in WHITESPACE:
                j += 1
            if "{" in text[i:j]:
                raise FormatError(f"'{{' inside the word {text[i:j]!r} (alternations are '{{ a / b }}')", where)
            out.append(make_word(text[i:j], where))
        i = _skip(text, j, WHITESPACE)
    return tuple(out)


def _alternation(token: str, where: str) -> Alternation:
    """sclite's ``expand_alternates``: the text between the first ``{`` and the last ``}``, cut at
    top-level ``/``; empty alternatives skipped."""
    body = token[1:token.rfind("}")]
    alternatives = []
    p = 0
    while True:
        p = _skip(body, p, WHITESPACE + "/")
        if p >= len(body):
            break
        start, depth = p, 0
        while True:
            depth += (body[p] == "{") - (body[p] == "}")
            p += 1
            if p >= len(body) or (body[p] in "/}" and depth <= 0):
                break
        seq = parse_transcript(body[start:p], where)
        if seq:
            alternatives.append(seq)
    if not alternatives:
        raise FormatError(f"empty alternation {token!r}", where)
    return Alternation(tuple(alternatives))


def reference_sequence(filtered: str, where: str = "reference",
                       cut: Optional[List[str]] = None) -> Tuple[Element, ...]:
    """A filtered reference transcript, case folded and parsed as sclite reads an stm segment."""
    return parse_transcript(lower_ascii(filtered), where, cut)


def hypothesis_sequence(items: Sequence[HypItem], where: str = "hypothesis") -> Tuple[Element, ...]:
    """The ctm words and alternation blocks of one hypothesis, case folded, as sclite reads them."""
    out: List[Element] = []
    for item in items:
        if isinstance(item, str):
            out.append(make_word(lower_ascii(item), where))
        else:
            out.append(Alternation(tuple(
                tuple(make_word(lower_ascii(w), where) for w in alt) if alt else (make_word("@"),)
                for alt in item)))
    return tuple(out)


@dataclass(frozen=True)
class Network:
    """Arcs in sclite's DP order: ``words[0]`` is the head arc (None); ``preds[k]``: the arcs entering
    arc k's start node, in order; ``ends``: the arcs entering the final node, in order."""

    words: Tuple[Optional[Word], ...]
    preds: Tuple[Tuple[int, ...], ...]
    ends: Tuple[int, ...]

    @property
    def has_null(self) -> bool:
        return any(w is not None and w.null for w in self.words)

    @property
    def is_chain(self) -> bool:
        return all(len(p) <= 1 for p in self.preds) and len(self.ends) == 1


def build_network(seq: Sequence[Element]) -> Network:
    """The arc graph of a sequence, with sclite's head arc (node 0 -> node 1 -> ... -> final)."""
    if all(isinstance(el, Word) for el in seq):  # a chain: arc k follows arc k - 1
        return Network((None,) + tuple(seq), ((),) + tuple((k,) for k in range(len(seq))), (len(seq),))
    arcs: List[Tuple[int, int, Optional[Word]]] = []
    outs: List[List[int]] = [[], [], []]  # node 0: before the head arc; 1: start of the text; 2: final
    ins: List[List[int]] = [[], [], []]

    def node() -> int:
        outs.append([])
        ins.append([])
        return len(outs) - 1

    def arc(u: int, v: int, w: Optional[Word]) -> None:
        arcs.append((u, v, w))
        outs[u].append(len(arcs) - 1)
        ins[v].append(len(arcs) - 1)

    def lay(elements: Sequence[Element], u: int, v: int) -> None:
        nodes = [u] + [node() for _ in range(len(elements) - 1)] + [v]
        for k, el in enumerate(elements):
            if isinstance(el, Word):
                arc(nodes[k], nodes[k + 1], el)
            else:
                for alt in el.alternatives:
                    lay(alt, nodes[k], nodes[k + 1])

    final = 2
    if seq:
        arc(0, 1, None)
        lay(seq, 1, final)
    else:
        arc(0, final, None)
    # sclite's in-order traversal: breadth-first, a node once all its in-arcs are seen
    pending = [len(x) for x in ins]
    order: List[int] = []
    queue = deque([0])
    while queue:
        n = queue.popleft()
        for a in outs[n]:
            to = arcs[a][1]
            pending[to] -= 1
            if pending[to] == 0:
                queue.append(to)
        order.extend(outs[n])
    pos = {a: k for k, a in enumerate(order)}
    return Network(tuple(arcs[a][2] for a in order),
                   tuple(tuple(pos[p] for p in ins[arcs[a][0]]) for a in order),
                   tuple(pos[p] for p in ins[final]))
