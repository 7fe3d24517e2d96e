"""``csrfilt.sh -dh`` on reference texts and hypothesis words, as ``hubscr.pl -l english`` runs it.

csrfilt separates the transcript from the rest of each line (the stm's text after the five fields
and the optional ``<label>``; the ctm's word: one word at a time), checks the optionally deletable
marks, then runs, per transcript: upper-case ASCII; a space after every ``(`` and before every
``)``, one more at both ends; the GLM rules (:meth:`RuleSet.apply`); ``-dh``: a hyphen between two
characters that are not a space or parenthesis becomes a space (``well-known`` -> ``well known``;
``hel-`` and ``-ing`` stay); ``( a b )`` -> ``( a ) ( b )``; the outer spaces and the spaces inside
the parentheses removed again.

A filtered ctm word that became several words is split into ctm lines; alternatives ``{ a b / c }``
become an ``<ALT_BEGIN> … <ALT> … <ALT_END>`` block, one alternative per ``/`` (braces removed, no
nesting; an empty alternative is sclite's null word ``@``).  Two of csrfilt's quirks are kept: when
the split text's last word looks like a number (``^[0-9.-]*$``) it is taken for a confidence score
and dropped, and a perl ``split`` drops empty alternatives at the end.

Text is a byte string (:mod:`rescorer.scoring.bytestr`).  Unbalanced parentheses are an error, as
in csrfilt ("illegally formatted optional deletion tags").
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple, Union

from rescorer.errors import FormatError
from rescorer.scoring.bytestr import WHITESPACE, split_ws, upper_ascii
from rescorer.scoring.glm import RuleSet

# a hypothesis item: a word, or alternatives (each a tuple of words; () is the null word)
HypItem = Union[str, Tuple[Tuple[str, ...], ...]]

_DELETE_HYPHEN = re.compile(r"([^( ])-(?=[^) ])")
_PROPAGATE = re.compile(r"(\(\s+[^()\s]+\s+)([^()\s]+)", re.ASCII)
_OPEN_SPACES = re.compile(r"\(\s+", re.ASCII)
_SPACES_CLOSE = re.compile(r"\s+\)", re.ASCII)
_OPTIONAL_WORD = re.compile(r"\s\([^()]+\)", re.ASCII)
_BRACES = re.compile(r"([{}])")
_NUMBERLIKE = re.compile(r"[0-9.\-]*")
_WS_SPLIT = re.compile(r"[ \t\n\v\f\r]+")


def _space_parens(text: str) -> str:
    return " " + text.replace("(", "( ").replace(")", " )") + " "


def optional_marks_valid(text: str) -> bool:
    """csrfilt's check of the ``( … )`` marks of one transcript."""
    t = _space_parens(text).replace("(", "   (").replace(")", ")  ", 1)
    return not re.search(r"[()]", _OPTIONAL_WORD.sub("", t))


def filter_transcript(text: str, rules: Optional[RuleSet]) -> str:
    """csrfilt's filter on one transcript as csrfilt cut it out of its line (a byte string)."""
    t = _space_parens(upper_ascii(text))
    if rules is not None:
        t = rules.apply(t)
    t = _DELETE_HYPHEN.sub(r"\1 ", t)
    while True:
        t, n = _PROPAGATE.subn(r"\1) ( \2", t, count=1)
        if not n:
            break
    if t.startswith(" "):
        t = t[1:]
    if t.endswith(" "):
        t = t[:-1]
    return _SPACES_CLOSE.sub(")", _OPEN_SPACES.sub("(", t))


def filter_reference(words: List[str], rules: Optional[RuleSet], where: str = "reference") -> str:
    """A reference transcript (the words of an stm segment or Kaldi ``text`` line) through csrfilt
    ``-i stm -t ref``: the filtered text as sclite reads it, still to be parsed (:mod:`word_network`).

    csrfilt glues the filtered text to the line's last field (end time or label); when a rule ate the
    text's leading space, its first token becomes part of that field and is lost to the transcript.
    """
    text = " " + " ".join(words) + " " if words else " "  # csrfilt's view of the stm's text field
    if not optional_marks_valid(text):
        raise FormatError(f"unbalanced optional-deletion parentheses in {' '.join(words)!r} (csrfilt.sh "
                          f"refuses them)", where)
    out = filter_transcript(text, rules)
    if out and out[0] not in WHITESPACE:
        fields = _WS_SPLIT.split(out, 1)
        out = " " + fields[1] if len(fields) > 1 else ""
    return out


def filter_hypothesis_word(word: str, rules: Optional[RuleSet], where: str = "hypothesis") -> List[HypItem]:
    """One hypothesis word through csrfilt ``-i ctm -t hyp``: the ctm words (and alternation blocks)
    it becomes."""
    if not optional_marks_valid(word):
        raise FormatError(f"unbalanced optional-deletion parentheses in hypothesis word {word!r} (csrfilt.sh "
                          f"refuses them)", where)
    return expand_ctm_text(filter_transcript(word, rules))


def expand_ctm_text(text: str) -> List[HypItem]:
    """csrfilt's rewriting of one filtered ctm word field into ctm lines."""
    fields = split_ws(_BRACES.sub(r" \1 ", text))
    if len(fields) <= 1:
        return list(fields)
    if _NUMBERLIKE.fullmatch(fields[-1]):  # csrfilt takes it for the confidence column
        fields = fields[:-1]
    sets = " ".join(fields).split("/")
    while sets and sets[-1] == "":
        sets.pop()
    alternatives = [tuple(split_ws(s.replace("{", "").replace("}", ""))) for s in sets]
    if len(alternatives) > 1:
        return [tuple(alternatives)]
    return list(alternatives[0]) if alternatives else []
