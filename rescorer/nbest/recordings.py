"""Which utterance follows which: the chains of cross-utterance LSTM state (``--carry-over``).

``admmq rescore --carry-over MODE`` starts each utterance's LSTM state from the
state at the end of the *first-pass best* hypothesis (lowest rank) of the
utterance before it (:mod:`rescorer.lm.carry_over`), as Kaldi's
``steps/pytorchnn`` does.  What "before" means:

* ``none`` — no carry-over: every hypothesis from the zero state (the default);
* ``recording`` — within a recording or speaker, from
  ``--segments FILE`` (Kaldi's ``utt recording start end``: grouped by
  recording, in start-time order — what Kaldi's swbd recipe gets by sorting with
  ``sort_by_start_time.py``), ``--utt2spk FILE`` (grouped by speaker), or
  ``--recording-pattern REGEX`` (grouped by the first group of the pattern
  matched at the start of the utterance id, or the whole match); with
  ``--utt2spk`` and a pattern the list's own utterance order is the time order
  (Kaldi's sorted data directories: utterance ids hold the start time);
* ``kaldi`` — Kaldi's own rule, for parity with ``compute_sentence_scores.py``:
  one chain through the list in its order, the carried state also having read
  the zero padding up to the utterance's longest hypothesis.

The first-pass best hypotheses are known before rescoring, so every carried
state is computed in one batched pass before the hypotheses are scored
(:func:`rescorer.lm.carry_over.history_states`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from rescorer.errors import AdmmqError, FormatError, MismatchError, PathLike
from rescorer.fileio import iter_lines
from rescorer.lm.carry_over import History, SentenceContext
from rescorer.nbest.lists import NBestList

CARRY_OVER_MODES = ("none", "recording", "kaldi")


@dataclass(frozen=True)
class CarryOver:
    """How utterances chain (module docstring): ``mode`` and, for ``recording``, one of the three sources."""

    mode: str = "none"
    segments: Optional[str] = None
    utt2spk: Optional[str] = None
    pattern: Optional[str] = None

    def __post_init__(self) -> None:
        if self.mode not in CARRY_OVER_MODES:
            raise AdmmqError(f"--carry-over must be one of {', '.join(CARRY_OVER_MODES)}, got {self.mode!r}")
        given = [name for name, v in (("--segments", self.segments), ("--utt2spk", self.utt2spk),
                                      ("--recording-pattern", self.pattern)) if v is not None]
        if self.mode == "recording" and len(given) != 1:
            raise AdmmqError("--carry-over recording needs one of --segments FILE, --utt2spk FILE or "
                             f"--recording-pattern REGEX{' (got ' + ' and '.join(given) + ')' if given else ''}")
        if self.mode != "recording" and given:
            raise AdmmqError(f"{given[0]} is for --carry-over recording (got --carry-over {self.mode})")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise AdmmqError(f"--recording-pattern {self.pattern!r} is not a regular expression ({exc})") \
                    from None

    @property
    def active(self) -> bool:
        return self.mode != "none"

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _read_table(path: PathLike, fields: int, what: str) -> Dict[str, Tuple[List[str], int]]:
    """``utt value...`` lines -> utt -> (values, line number)."""
    out: Dict[str, Tuple[List[str], int]] = {}
    for lineno, line in iter_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != fields:
            raise FormatError(f"expected {what}, got {line!r}", path, lineno)
        if parts[0] in out:
            raise FormatError(f"utterance {parts[0]!r} already on line {out[parts[0]][1]}", path, lineno)
        out[parts[0]] = (parts[1:], lineno)
    return out


def _missing(utts: Sequence[str], table: dict, path: PathLike, source: str) -> None:
    absent = [u for u in utts if u not in table]
    if absent:
        raise MismatchError(f"utterance {absent[0]!r} of {source} is not listed ({len(absent)} missing)", path)


def _groups(utts: Sequence[str], spec: CarryOver, source: str) -> Tuple[List[str], List[Tuple]]:
    """Each utterance's group and its sort key inside the group."""
    pos = list(range(len(utts)))
    if spec.segments is not None:
        table = _read_table(spec.segments, 4, "'utterance recording start end'")
        _missing(utts, table, spec.segments, source)
        keys = []
        for u in utts:
            (rec, start, end), lineno = table[u]
            try:
                keys.append((float(start), float(end)))
            except ValueError:
                raise FormatError(f"start/end times {start!r} {end!r} are not numbers", spec.segments,
                                  lineno) from None
        return [table[u][0][0] for u in utts], [k + (i,) for k, i in zip(keys, pos)]
    if spec.utt2spk is not None:
        table = _read_table(spec.utt2spk, 2, "'utterance speaker'")
        _missing(utts, table, spec.utt2spk, source)
        return [table[u][0][0] for u in utts], [(i,) for i in pos]
    rx = re.compile(spec.pattern or "")
    groups = []
    for u in utts:
        m = rx.match(u)
        if m is None:
            raise MismatchError(f"utterance {u!r} does not match --recording-pattern {spec.pattern!r}", source)
        groups.append(m.group(1) if rx.groups else m.group(0))
    return groups, [(i,) for i in pos]


def previous_utterances(utts: Sequence[str], spec: CarryOver, source: str = "the n-best list") -> np.ndarray:
    """For each utterance, the one before it in its chain (-1: first of its chain): (U,) int64."""
    prev = np.full(len(utts), -1, dtype=np.int64)
    if spec.mode == "kaldi":
        prev[1:] = np.arange(len(utts) - 1)
    elif spec.mode == "recording":
        groups, keys = _groups(utts, spec, source)
        members: Dict[str, List[int]] = {}
        for u, g in enumerate(groups):
            members.setdefault(g, []).append(u)
        for chain in members.values():
            chain.sort(key=keys.__getitem__)
            prev[chain[1:]] = chain[:-1]
    return prev


def chain_history(prev: np.ndarray, words: Sequence[Tuple[str, ...]], pad_to: np.ndarray,
                  kaldi: bool) -> Tuple[History, np.ndarray]:
    """The history of chained utterances: entry per utterance (``words``: its first-pass best), and
    each utterance's start entry (the entry of the utterance before it): ``(History, (U,) int64)``."""
    U = len(prev)
    nxt = np.full(U, -1, dtype=np.int64)
    nxt[prev[prev >= 0]] = np.flatnonzero(prev >= 0)
    depth = np.zeros(U, dtype=np.int64)
    for head in np.flatnonzero(prev < 0).tolist():  # walk each chain from its head: U steps in all
        u, d = nxt[head], 1
        while u >= 0:
            depth[u] = d
            u, d = nxt[u], d + 1
    order = np.lexsort((np.arange(U), depth))  # entries in chain-depth order: every entry after its parent
    entry = np.empty(U, dtype=np.int64)
    entry[order] = np.arange(U)
    start = np.where(prev >= 0, entry[np.maximum(prev, 0)], -1)
    hist = History(tuple(words[u] for u in order), start[order], np.asarray(pad_to, dtype=np.int64)[order], kaldi)
    return hist, start


def nbest_history(nb: NBestList, spec: CarryOver) -> Tuple[History, np.ndarray]:
    """``nb``'s history (first-pass best hypotheses in chains) and each *hypothesis'* start entry (N,)."""
    prev = previous_utterances(nb.utts, spec, nb.source)
    best = [nb.words[i] for i in nb.offsets[:-1]]  # the lowest rank of each utterance
    pad_to = np.maximum.reduceat(nb.lengths() + 1, nb.offsets[:-1]) if len(nb) else np.zeros(0, dtype=np.int64)
    hist, start_utt = chain_history(prev, best, pad_to, spec.mode == "kaldi")
    return hist, start_utt[nb.utt_index()]


def carry_context(lists: Sequence[NBestList], spec: CarryOver,
                  full: Optional[NBestList] = None) -> Optional[SentenceContext]:
    """The carry-over context of the hypotheses of ``lists`` one after another (rescoring scores the test
    list and the dev list together); ``None`` without carry-over.

    ``full``: the whole list ``lists[0]`` was cut from (a ``--job K/N`` job): its chains run through the
    whole list, so a job's first utterances start from the state the unsplit run gives them.
    """
    if not spec.active:
        return None
    parts, starts = [], []
    for k, nb in enumerate(lists):
        whole = full if (k == 0 and full is not None) else nb
        hist, start = nbest_history(whole, spec)
        if whole is not nb:  # this job's hypotheses: their place in the whole list
            first = whole.utts.index(nb.utts[0])
            lo = int(whole.offsets[first])
            start = start[lo: lo + len(nb)]
        hist, start = hist.restrict(start)
        parts.append(hist)
        starts.append(start)
    hist, offsets = History.concat(parts)
    start = np.concatenate([np.where(s >= 0, s + o, -1) for s, o in zip(starts, offsets)])
    return SentenceContext(hist, start.astype(np.int64))


def text_context(keys: Sequence[str], sentences: Sequence[Tuple[str, ...]],
                 spec: CarryOver, source: str) -> Optional[SentenceContext]:
    """Carry-over across the sentences of a text (``admmq eval``): each from the end of the sentence
    before it in its chain (the text's own words: an oracle history for rescoring)."""
    if not spec.active:
        return None
    prev = previous_utterances(keys, spec, source)
    pad_to = np.array([len(s) + 1 for s in sentences], dtype=np.int64)
    hist, start = chain_history(prev, sentences, pad_to, spec.mode == "kaldi")
    return SentenceContext(hist, start)
