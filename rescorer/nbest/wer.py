"""Word error rate: alignment, per-subset totals and Kaldi's ``compute-wer`` report line.

**Alignment.** NIST sclite is the reference: each hypothesis is aligned to
its reference by dynamic programming with sclite's weights (correct 0,
substitution 4, insertion 3, deletion 3) and sclite's tie-breaking
(substitution/match first, then deletion, then insertion), so the counts of
insertions, deletions and substitutions equal sclite's (``-s``,
case-sensitive) on every utterance.  Plain Levenshtein distance (Kaldi's
``compute-wer``) minimises ins+del+sub with all weights 1; on rare pairs the
two differ (ref ``a b c d e``, hyp ``d e f g h``: sclite and admmq count 3 del +
3 ins, compute-wer 5 sub).

**Report.** ``%WER 12.34 [ 123 / 1000, 10 ins, 20 del, 93 sub ]``, per subset
and in total.  Subsets come from utterance-id prefixes (``sw_`` -> swbd,
``en_`` -> callhm by default, used when some id starts with one of them) or
from a ``utt2subset``-style file (``<utt> <subset>`` per line).  Utterances in
no subset count in the total only (their number is reported).

**Missing hypotheses** (``mode``): ``all`` (Kaldi's default) scores a
reference utterance without hypothesis as all deletions and counts it;
``present`` scores only utterances with a hypothesis; ``strict`` makes it an
error.  A hypothesis without a reference is always an error.

**NIST scoring** (``scorer``, a :class:`~rescorer.scoring.nist_scorer.NistScorer`): each utterance is
counted as ``hubscr.pl -h hub5 -g GLM`` counts it (GLM on both sides, optionally deletable words,
alternations, fragments, case folded; see :mod:`rescorer.scoring`), against a Kaldi ``text`` or an
stm reference (:func:`read_references`).  Reference words are then sclite's: correct +
substitutions + deletions of the chosen path (an optional word deleted counts as correct).
Segments marked IGNORE_TIME_SEGMENT_IN_SCORING are left out, hypotheses for them too.

Besides Kaldi's ``%WER`` line, :meth:`WerReport.lines` gives sclite's sum table: sentences, words,
and Corr / Sub / Del / Ins / Err / S.Err in percent (S.Err: utterances with an error).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from rescorer.errors import AdmmqError, FormatError, MismatchError, PathLike
from rescorer.fileio import iter_lines, read_sentences
from rescorer.scoring.network_align import chain_path
from rescorer.scoring.nist_scorer import NistScorer
from rescorer.scoring.stm import read_stm, utterance_index

SUB, INS, DEL = 4, 3, 3  # sclite's default weights
DEFAULT_SUBSETS = (("sw_", "swbd"), ("en_", "callhm"))
MODES = ("all", "present", "strict")


def align_counts(ref: Sequence[str], hyp: Sequence[str]) -> Tuple[int, int, int]:
    """``(insertions, deletions, substitutions)`` of sclite's alignment of ``hyp`` to ``ref`` (``-s``)."""
    n, m = len(ref), len(hyp)
    if n == 0 or m == 0:
        return m, n, 0
    pairs = [[]] + [[0.0] + [0.0 if r == h else float(SUB) for h in hyp] for r in ref]
    steps = chain_path(n + 1, m + 1, [0.0] + [float(DEL)] * n, [0.0] + [float(INS)] * m, pairs, False)
    ops = [op if op or ref[a - 1] != hyp[b - 1] else -1 for op, a, b in steps]
    return ops.count(2), ops.count(1), ops.count(0)


@dataclass
class ErrorCounts:
    """Summed alignment counts of some utterances."""

    ins: int = 0
    dels: int = 0
    subs: int = 0
    words: int = 0  # reference words (sclite: correct + substitutions + deletions)
    utterances: int = 0
    utterance_errors: int = 0  # utterances with at least one error
    corr: int = 0

    @property
    def errors(self) -> int:
        return self.ins + self.dels + self.subs

    @property
    def wer(self) -> float:
        """Percent; 0 for no words and no errors, inf for errors against no words."""
        if self.words == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return 100.0 * self.errors / self.words

    def add(self, ins: int, dels: int, subs: int, words: int) -> None:
        self.ins += ins
        self.dels += dels
        self.subs += subs
        self.words += words
        self.corr += words - subs - dels
        self.utterances += 1
        self.utterance_errors += (ins + dels + subs) > 0

    def line(self) -> str:
        """Kaldi compute-wer's report line."""
        return (f"%WER {self.wer:.2f} [ {self.errors} / {self.words}, {self.ins} ins, {self.dels} del, "
                f"{self.subs} sub ]")

    def sum_row(self, name: str, width: int) -> str:
        """sclite's sum-table row: ``| name | #Snt #Wrd | Corr Sub Del Ins Err S.Err |`` (percent)."""
        pct = (lambda x: 100.0 * x / self.words) if self.words else (lambda x: 0.0)
        serr = 100.0 * self.utterance_errors / self.utterances if self.utterances else 0.0
        cells = "".join(f"{v:7.1f}" for v in (pct(self.corr), pct(self.subs), pct(self.dels), pct(self.ins),
                                              pct(self.errors), serr))
        return f"| {name.ljust(width)} | {self.utterances:6d} {self.words:7d} |{cells} |"

    def to_dict(self) -> dict:
        wer = self.wer
        return {"wer": round(wer, 4) if wer != float("inf") else None, "errors": self.errors,
                "words": self.words, "ins": self.ins, "del": self.dels, "sub": self.subs, "corr": self.corr,
                "utterances": self.utterances, "utterance_errors": self.utterance_errors}


@dataclass
class Subsets:
    """Which subset an utterance belongs to: prefix rules, or an explicit mapping (takes precedence)."""

    prefixes: Tuple[Tuple[str, str], ...] = ()
    mapping: Optional[Dict[str, str]] = None

    def names(self) -> List[str]:
        if self.mapping is not None:
            return list(dict.fromkeys(self.mapping.values()))
        return list(dict.fromkeys(name for _, name in self.prefixes))

    def of(self, utt: str) -> Optional[str]:
        if self.mapping is not None:
            return self.mapping.get(utt)
        for prefix, name in self.prefixes:
            if utt.startswith(prefix):
                return name
        return None

    @classmethod
    def build(cls, utts: Sequence[str], specs: Sequence[str] = (), utt2subset: Optional[PathLike] = None,
              default: bool = True) -> "Subsets":
        """From ``--subset PREFIX=NAME`` specs, a ``utt2subset`` file, or the Hub5'00 defaults when ids match."""
        if utt2subset is not None:
            if specs:
                raise AdmmqError("give either --subset rules or --utt2subset, not both")
            return cls(mapping=read_utt2subset(utt2subset))
        if specs:
            rules = []
            for s in specs:
                prefix, sep, name = s.partition("=")
                if not sep or not prefix or not name or " " in s:
                    raise AdmmqError(f"subset rule {s!r} is not PREFIX=NAME (e.g. sw_=swbd)")
                rules.append((prefix, name))
            return cls(prefixes=tuple(rules))
        if default and any(u.startswith(p) for u in utts for p, _ in DEFAULT_SUBSETS):
            return cls(prefixes=DEFAULT_SUBSETS)
        return cls()


def read_utt2subset(path: PathLike) -> Dict[str, str]:
    """``<utt> <subset>`` per line (Kaldi ``utt2spk`` layout)."""
    out: Dict[str, str] = {}
    for lineno, line in iter_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise FormatError(f"expected '<utterance-id> <subset>', got {line!r}", path, lineno)
        if fields[0] in out:
            raise FormatError(f"utterance {fields[0]!r} listed twice", path, lineno)
        out[fields[0]] = fields[1]
    if not out:
        raise FormatError("no utterances", path)
    return out


@dataclass
class WerReport:
    """Counts per subset (in subset order) and in total."""

    subsets: Dict[str, ErrorCounts]
    total: ErrorCounts
    missing: int = 0  # reference utterances without hypothesis (mode "all": scored as deletions)
    unassigned: int = 0  # utterances in no subset
    ignored: int = 0  # stm segments IGNORE_TIME_SEGMENT_IN_SCORING
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {name: c.to_dict() for name, c in self.subsets.items()}
        d["total"] = self.total.to_dict()
        return d

    def lines(self) -> List[str]:
        """Kaldi's ``%WER`` line per subset and in total, then sclite's sum table and the notes."""
        names = list(self.subsets) + ["total"]
        width = max(len(n) for n in names)
        counts = list(self.subsets.values()) + [self.total]
        rows = [f"{n.ljust(width)}  {c.line()}  {c.utterances} utts" for n, c in zip(names, counts)]
        head = f"| {'set'.ljust(width)} | {'# Snt':>6} {'# Wrd':>7} |" + "".join(
            f"{h:>7}" for h in ("Corr", "Sub", "Del", "Ins", "Err", "S.Err")) + " |"
        rows += ["sclite sum table (percent of reference words; S.Err: of utterances):", head]
        rows += [c.sum_row(n, width) for n, c in zip(names, counts)]
        return rows + self.notes

    def table_row(self, name: str, columns: Sequence[str]) -> str:
        """A markdown row ``| name | WER of each column |`` (``total`` or a subset name; ``-`` when absent)."""
        counts = dict(self.subsets, total=self.total)
        cells = [f"{counts[c].wer:.2f}" if c in counts and counts[c].words else "-" for c in columns]
        return "| " + " | ".join([name] + cells) + " |"


def score_utterances(refs: Mapping[str, Sequence[str]], hyps: Mapping[str, Sequence[str]],
                     subsets: Optional[Subsets] = None, mode: str = "all", scorer: Optional[NistScorer] = None,
                     hyp_source: str = "hypotheses", ref_source: str = "reference") -> WerReport:
    """WER of ``hyps`` against ``refs`` (utterance id -> words), per subset and in total; counted as
    sclite does (plain), or as hubscr.pl does with a NIST ``scorer``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    subsets = subsets or Subsets()
    extra = [u for u in hyps if u not in refs]
    if extra:
        raise MismatchError(f"utterance {extra[0]!r} has no reference ({len(extra)} hypothesis utterance(s) "
                            f"without one)", hyp_source)
    per = {name: ErrorCounts() for name in subsets.names()}
    total = ErrorCounts()
    unassigned = ignored = 0
    missing: List[str] = []
    for utt, ref in refs.items():
        where = f"{ref_source}: {utt}"
        net = scorer.reference(ref, where) if scorer is not None else None
        if scorer is not None and net is None:
            ignored += 1
            continue
        if utt not in hyps:
            missing.append(utt)
            if mode == "strict":
                raise MismatchError(f"no hypothesis for utterance {utt!r}", hyp_source)
            if mode == "present":
                continue
        hyp = hyps.get(utt, ())
        if net is None:
            counts = align_counts(ref, hyp) + (len(ref),)
        else:
            c = scorer.count(net, hyp, f"{hyp_source}: {utt}")
            counts = (c.ins, c.dels, c.sub, c.words)
        total.add(*counts)
        name = subsets.of(utt)
        if name is None:
            unassigned += 1
        else:
            per.setdefault(name, ErrorCounts()).add(*counts)
    report = WerReport(per, total, missing=len(missing), unassigned=unassigned if per else 0, ignored=ignored)
    if missing:
        verb = "skipped" if mode == "present" else "scored as all deletions"
        report.notes.append(f"{len(missing)} reference utterance(s) without hypothesis ({verb})")
    if ignored:
        report.notes.append(f"{ignored} segment(s) IGNORE_TIME_SEGMENT_IN_SCORING (not scored, as sclite)")
    if per and unassigned:
        report.notes.append(f"{unassigned} utterance(s) in no subset (counted in total only)")
    if scorer is not None:
        report.notes += scorer.warnings() + [scorer.describe()]
    return report


def read_text(path: PathLike) -> Dict[str, Tuple[str, ...]]:
    """A Kaldi ``text`` file as utterance id -> words (ids unique; empty lines skipped)."""
    return {s.key: s.words for s in read_sentences(path, "kaldi")}


def read_texts(paths: Sequence[PathLike]) -> Dict[str, Tuple[str, ...]]:
    """Several Kaldi ``text`` files (e.g. the jobs' best hypotheses) as one; a repeated utterance is an error."""
    merged: Dict[str, Tuple[str, ...]] = {}
    where: Dict[str, str] = {}
    for p in paths:
        for utt, words in read_text(p).items():
            if utt in merged:
                raise MismatchError(f"utterance {utt!r} is in both {where[utt]} and {p}")
            merged[utt], where[utt] = words, str(p)
    return merged


def read_stm_references(path: PathLike, utts: Iterable[str] = ()) -> Dict[str, Tuple[str, ...]]:
    """An stm file as Kaldi utterance id -> transcript words (``rescorer.scoring.stm``); a segment whose
    id appears among ``utts`` with rounded instead of truncated times is keyed that way."""
    segments = read_stm(path)
    index = utterance_index(segments, path)
    refs = {seg.kaldi_id(): seg.words for seg in segments}
    for u in utts:
        if u not in refs and u in index:
            seg = index[u]
            refs[u] = refs.pop(seg.kaldi_id(), seg.words)
    return refs


def read_references(ref: Optional[PathLike] = None, stm: Optional[PathLike] = None,
                    utts: Iterable[str] = ()) -> Dict[str, Tuple[str, ...]]:
    """References from a Kaldi ``text`` file or an stm file (exactly one of them)."""
    if (ref is None) == (stm is None):
        raise AdmmqError("give the reference as a Kaldi text file or as an stm file (--stm), one of them")
    return read_text(ref) if ref is not None else read_stm_references(stm, utts)


def score_files(ref_path: Optional[PathLike], hyp_path, subset_specs: Sequence[str] = (),
                utt2subset: Optional[PathLike] = None, mode: str = "all", scorer: Optional[NistScorer] = None,
                stm: Optional[PathLike] = None) -> WerReport:
    """WER of a Kaldi ``text`` hypothesis file (or several, e.g. one per rescoring job) against a reference
    (Kaldi ``text`` ``ref_path``, or ``stm``)."""
    several = isinstance(hyp_path, (list, tuple))
    hyps = read_texts(hyp_path) if several else read_text(hyp_path)
    refs = read_references(ref_path, stm, hyps)
    hyp_path = ", ".join(map(str, hyp_path)) if several else hyp_path
    subsets = Subsets.build(list(refs), subset_specs, utt2subset)
    return score_utterances(refs, hyps, subsets, mode, scorer, hyp_source=str(hyp_path),
                            ref_source=str(ref_path if stm is None else stm))
