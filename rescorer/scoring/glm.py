"""NIST GLM files (global mapping rules), read and applied exactly as ``csrfilt.sh`` and ``rfilter1`` do.

**Sections.**  ``csrfilt.sh -i TYPE -t PURPOSE`` first keeps the lines that apply: all of them until
a line ``;; INPUT_DEPENDENT_APPLICATION = "REGEX"``, after which a line applies when REGEX (lower-cased)
matches TYPE or PURPOSE.  ``hubscr.pl`` filters the reference with ``-i stm -t ref`` and the
hypothesis with ``-i ctm -t hyp``: :class:`Glm` holds both rule sets (``ref``, ``hyp``).

**Rule file** (SCTK's ``GLMRules`` and rfilter1's reader): the first token of the first line is the
comment flag (``;;``); lines starting with it are comments and anything after it on a line is
removed; lines starting with ``*`` set ``name``, ``desc``, ``format`` (only ``NIST1`` works),
``max_nrules`` (default 400), ``copy_no_hit`` (default T) and ``case_sensitive`` (default T) from the
first quoted value on the line.  Every other line is a rule ``A => B`` or ``A => B / C __ D``: the
context marker is the last ``/`` unless a ``]`` follows it before any ``[``; each of A, B, C, D loses
one pair of enclosing ``[ ]`` or ``" "``, so ``[ ]`` is a space.  rfilter1 reads lines into a
132-byte buffer, so a line longer than 131 bytes arrives as several lines; that is kept here.

**Application** (``apply``): a cursor walks the text; at each position the first rule in file order
whose A matches there, whose C ends just before it and whose D follows A in the *input* wins: B is
output and the cursor skips A; with no rule the character is copied (or dropped when ``copy_no_hit``
is F).  ``case_sensitive`` F compares ASCII letters without case.  The output is not rescanned.

A rule file rfilter1 refuses (no ``=>``, a line with only an indented comment, an aux line without
a quoted value, more rules than ``max_nrules``, a format other than NIST1) is a :class:`FormatError`
naming the line; rfilter1 itself would print an error and leave the text empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Tuple

from rescorer.errors import FormatError, PathLike
from rescorer.fileio import open_binary
from rescorer.scoring.bytestr import is_space, upper_ascii

LINE_LENGTH = 132  # rfilter1's fgets buffer: a line arrives in pieces of at most 131 bytes
_SECTION = re.compile(r'^;;\s+INPUT_DEPENDENT_APPLICATION\s*=\s*"([^"]*)"', re.ASCII)
REF_SIDE = ("stm", "ref")  # csrfilt.sh -i stm -t ref, as hubscr.pl filters the reference
HYP_SIDE = ("ctm", "hyp")  # csrfilt.sh -i ctm -t hyp, as hubscr.pl filters the hypothesis


@dataclass(frozen=True)
class Rule:
    """``source => target / left __ right`` (empty context: none), from line ``line`` of the file."""

    source: str
    target: str
    left: str = ""
    right: str = ""
    line: int = 0


@dataclass
class RuleSet:
    """The rules of one side, in file order, and the header settings rfilter1 uses."""

    rules: List[Rule] = field(default_factory=list)
    case_sensitive: bool = True
    copy_no_hit: bool = True
    name: str = ""
    desc: str = ""
    _index: Dict[str, List[Tuple[str, str, str, str]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        fold = (lambda s: s) if self.case_sensitive else upper_ascii
        for r in self.rules:
            if r.source:  # rfilter1 indexes rules by their first character: an empty A never fires
                self._index.setdefault(fold(r.source[0]), []).append(
                    (fold(r.source), fold(r.left), fold(r.right), r.target))

    def apply(self, text: str) -> str:
        """``text`` (a byte string) rewritten by the rules."""
        folded = text if self.case_sensitive else upper_ascii(text)
        out: List[str] = []
        i, n = 0, len(text)
        while i < n:
            for source, left, right, target in self._index.get(folded[i], ()):
                if (folded.startswith(source, i) and folded.startswith(right, i + len(source))
                        and (not left or (i >= len(left) and folded.startswith(left, i - len(left))))):
                    out.append(target)
                    i += len(source)
                    break
            else:
                if self.copy_no_hit:
                    out.append(text[i])
                i += 1
        return "".join(out)


@dataclass(frozen=True)
class Glm:
    """A GLM file's rules for the reference (stm) and the hypothesis (ctm) side."""

    path: str
    ref: RuleSet
    hyp: RuleSet


def read_glm(path: PathLike) -> Glm:
    """Read a GLM file (plain or gzip) into its reference and hypothesis rule sets."""
    with open_binary(path) as fh:
        data = fh.read().decode("latin-1")
    lines = [(k, line) for k, line in enumerate(data.splitlines(keepends=True), 1)]
    if not lines:
        raise FormatError("empty GLM file (rfilter1 needs at least the comment-flag line)", path)
    return Glm(str(path), parse_rules(select_lines(lines, *REF_SIDE, path), path),
               parse_rules(select_lines(lines, *HYP_SIDE, path), path))


def select_lines(lines: Iterable[Tuple[int, str]], input_type: str, purpose: str,
                 path: PathLike = "GLM") -> List[Tuple[int, str]]:
    """The lines csrfilt.sh passes on for ``-i input_type -t purpose`` (INPUT_DEPENDENT_APPLICATION)."""
    out, applies = [], True
    for lineno, line in lines:
        m = _SECTION.match(line)
        if m:
            try:
                exp = re.compile(m.group(1).lower())
            except re.error as exc:
                raise FormatError(f"INPUT_DEPENDENT_APPLICATION regex {m.group(1)!r} is not valid: {exc}",
                                  path, lineno) from None
            applies = bool(exp.search(input_type) or exp.search(purpose))
        if applies:
            out.append((lineno, line))
    return out


def _pieces(lines: List[Tuple[int, str]]) -> Iterator[Tuple[int, str]]:
    """The lines as rfilter1's fgets returns them: at most LINE_LENGTH - 1 bytes each."""
    step = LINE_LENGTH - 1
    for lineno, line in lines:
        for k in range(0, max(len(line), 1), step):
            yield lineno, line[k:k + step]


def parse_rules(lines: List[Tuple[int, str]], path: PathLike = "GLM") -> RuleSet:
    """rfilter1's ``get_rules2`` on the (selected) lines of a rule file."""
    pieces = list(_pieces(lines))
    if not pieces:
        return RuleSet()
    first = pieces[0][1]
    k = 0
    while k < len(first) and "!" <= first[k] <= "~":  # isgraph
        k += 1
    flag = first[:k]
    settings = {"name": "", "desc": "", "format": "NIST1", "max_nrules": 400, "copy_no_hit": True,
                "case_sensitive": True}
    rules: List[Rule] = []
    for lineno, piece in pieces[1:]:
        s = piece.rstrip("\n").rstrip(" \t\n\v\f\r")
        if not s or (flag and s.startswith(flag)):
            continue
        if s[0] == "*":
            _aux_line(s, settings, path, lineno)
            continue
        if flag and flag in s:
            cut = s.index(flag)
            s = s[:cut] + " " * (len(s) - cut)
        rule = _rule_line(s, path, lineno)
        if len(rules) >= settings["max_nrules"]:
            raise FormatError(f"more rules than the file's max_nrules ({settings['max_nrules']}); rfilter1 "
                              f"stops here", path, lineno)
        rules.append(rule)
    if settings["format"] != "NIST1":
        raise FormatError(f"rule format {settings['format']!r}: rfilter1 applies only 'NIST1'", path)
    return RuleSet(rules, settings["case_sensitive"], settings["copy_no_hit"], settings["name"],
                   settings["desc"])


def _atobool(value: str) -> bool:
    return value.upper() in ("T", "YES", "TRUE")


def _atol(value: str) -> int:
    m = re.match(r"[ \t\n\v\f\r]*([+-]?[0-9]+)", value)
    return int(m.group(1)) if m else 0


def _aux_line(s: str, settings: dict, path: PathLike, lineno: int) -> None:
    """A ``*`` line: the first quoted value goes to every keyword the line names."""
    q = [i for i, ch in enumerate(s) if ch in "\"'"]
    if not q:
        raise FormatError("header line ('*') without a quoted value", path, lineno)
    end = q[1] if len(q) > 1 else len(s)
    value, upper = s[q[0] + 1:end], upper_ascii(s)
    for key in ("NAME", "DESC", "FORMAT"):
        if key in upper:
            settings[key.lower()] = value
    if "MAX_NRULES" in upper:
        settings["max_nrules"] = _atol(value)
    if "COPY_NO_HIT" in upper:
        settings["copy_no_hit"] = _atobool(value)
    if "CASE_SENSITIVE" in upper:
        settings["case_sensitive"] = _atobool(value)


def _before(a: int, b: int) -> bool:
    """C's ``pa < pb`` for two ``strchr`` results, -1 standing for NULL (the lowest address)."""
    if a < 0:
        return b >= 0
    return b >= 0 and a < b


def _unbracket(s: str, start: int, end: int) -> str:
    """``s[start..end]`` without one pair of enclosing ``[ ]`` or ``" "``."""
    if (s[start] == "[" and s[end] == "]") or (s[start] == '"' and s[end] == '"'):
        start, end = start + 1, end - 1
    return s[start:end + 1] if end >= start else ""


def _field(s: str, start: int, end: int) -> str:
    """rfilter1's reading of one rule part: skip the marker at ``start`` (``=>``, ``/``, ``__``), then
    the blanks, up to ``end`` (the part's last character)."""
    while not is_space(s[start]) and start < end:
        start += 1
    if start >= end:
        return ""
    while is_space(s[start]):
        start += 1
    return _unbracket(s, start, end)


def _rule_line(s: str, path: PathLike, lineno: int) -> Rule:
    """rfilter1's ``r_process_data_line`` (format NIST1)."""
    first = len(s) - len(s.lstrip(" \t\n\v\f\r"))
    last = len(s.rstrip(" \t\n\v\f\r")) - 1
    if last < first:
        raise FormatError("rule line holds only a comment that does not start the line (rfilter1 calls "
                          "it a blank line and stops)", path, lineno)
    ieq = s.find("=>")
    if ieq < 0:
        raise FormatError("expected a rule 'A => B' or 'A => B / C __ D' (no '=>')", path, lineno)
    icontext, islot = s.rfind("/"), -1
    if icontext >= 0:
        if _before(s.find("]", icontext), s.find("[", icontext)):  # the '/' is inside [ ]
            icontext = -1
        else:
            islot = s.find("_", icontext)
    source = ""
    if first < ieq:
        end = ieq - 1
        while end > first and is_space(s[end]):
            end -= 1
        source = _unbracket(s, first, end)
    if icontext < 0:
        end = last
    else:
        end = icontext - 1
        while is_space(s[end]) and end > ieq:
            end -= 1
    target = _field(s, ieq, end)
    left = right = ""
    if icontext >= 0 and islot >= 0:
        end = islot - 1
        while is_space(s[end]) and end > icontext:
            end -= 1
        left = _field(s, icontext, end)
        right = _field(s, islot, last)
    return Rule(source, target, left, right, lineno)

