"""NIST stm reference files and the Kaldi utterance ids of their segments.

An stm line is ``<file> <channel> <speaker> <begin> <end> [<labels>] transcript…`` (SCTK's
``infmts``): lines starting with ``;;`` (comments, ``;; LABEL`` definitions) or ``**`` and blank
lines are skipped, like sclite does; a sixth field starting with ``<`` is the label list.  A
transcript containing ``IGNORE_TIME_SEGMENT_IN_SCORING`` (any case; sclite checks the filtered
text, :func:`is_ignored`) marks a region sclite leaves out of scoring.

Kaldi names the segment's utterance ``<file>-<channel>_<begin*100>-<end*100>`` with the times
printed ``%06d`` after truncation (``egs/swbd/s5c/local/eval2000_data_prep.sh``, awk), e.g.
``en_4156-A_035764-035964``.  :func:`utterance_index` maps such ids to segments, also accepting
the rounded times another tool may have written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

from rescorer.errors import FormatError, PathLike
from rescorer.fileio import iter_lines
from rescorer.scoring.bytestr import split_ws

IGNORE_MARKS = ("IGNORE_TIME_SEGMENT_IN_SCORING", "IGNORETIMESEGMENTINSCORING")


@dataclass(frozen=True)
class StmSegment:
    file: str
    channel: str
    speaker: str
    begin: float
    end: float
    labels: str
    words: Tuple[str, ...]
    line: int

    def kaldi_id(self, rounding: bool = False) -> str:
        """The Kaldi utterance id of the segment (truncated times; rounded with ``rounding``)."""
        cut = (lambda t: int(round(t * 100))) if rounding else (lambda t: int(t * 100))
        return f"{self.file}-{self.channel}_{cut(self.begin):06d}-{cut(self.end):06d}"


def is_ignored(text: str) -> bool:
    """sclite's test for a segment excluded from scoring (on its filtered transcript)."""
    upper = text.upper()
    return any(mark in upper for mark in IGNORE_MARKS)


def read_stm(path: PathLike) -> List[StmSegment]:
    """The segments of an stm file (plain or gzip), in file order."""
    out: List[StmSegment] = []
    for lineno, line in iter_lines(path):
        fields = split_ws(line)  # ASCII whitespace, as sclite and csrfilt split
        if not fields or fields[0].startswith(";;") or fields[0].startswith("**"):
            continue
        if len(fields) < 5:
            raise FormatError(f"expected '<file> <channel> <speaker> <begin> <end> [<labels>] words...', got "
                              f"{len(fields)} field(s)", path, lineno)
        try:
            begin, end = float(fields[3]), float(fields[4])
        except ValueError:
            raise FormatError(f"begin and end times must be numbers, got {fields[3]!r} {fields[4]!r}", path,
                              lineno) from None
        rest = fields[5:]
        labels = ""
        if rest and rest[0].startswith("<"):
            labels, rest = rest[0], rest[1:]
        out.append(StmSegment(fields[0], fields[1], fields[2], begin, end, labels, tuple(rest), lineno))
    if not out:
        raise FormatError("no segments in stm file", path)
    return out


def utterance_index(segments: List[StmSegment], path: PathLike = "stm") -> Dict[str, StmSegment]:
    """Kaldi utterance id -> segment; ids with rounded instead of truncated times map too.

    Two segments with the same id are an error (a hypothesis could not be placed)."""
    index: Dict[str, StmSegment] = {}
    for seg in segments:
        key = seg.kaldi_id()
        if key in index:
            raise FormatError(f"segments on lines {index[key].line} and {seg.line} have the same Kaldi utterance "
                              f"id {key!r}", path, seg.line)
        index[key] = seg
    for seg in segments:
        index.setdefault(seg.kaldi_id(rounding=True), seg)
    return index
