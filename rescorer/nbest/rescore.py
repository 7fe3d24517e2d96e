"""N-best rescoring with a new LM: combined costs, LM scale / insertion penalty, outputs.

Everything is a **cost** (negated natural-log score, lower is better), like
Kaldi's archives.  For hypothesis ``h`` with ``n`` words::

    lm(h)    = (1 - b) * (-ln P_LM(w_1 .. w_n </s>)) + b * lmwt.lmonly(h)
    total(h) = acoustic_scale * acwt(h) + lm_scale * (lmwt.nolm(h) + lm(h) + wip * n)

``P_LM`` is the new LM (any object with ``.score(sentences) -> WordScores``),
``b`` the ``old_lm_weight`` given to the first-pass LM (Kaldi's
``lmrescore_nbest.sh`` with rnn-weight ``1 - b``; default 0 = replace it).  The
graph cost without the old LM (``lmwt.nolm``, 0 when absent) and the word
insertion penalty are scaled with the LM, exactly as Kaldi's ``score.sh``
scores a lattice at LMWT = ``lm_scale`` with ``lattice-add-penalty
--word-ins-penalty=wip`` (acoustic scale 1/LMWT; the same ranking), so Kaldi's
(LMWT, wip) grids carry over.  The best hypothesis of an utterance minimises
``total``; ties go to the lower rank.

LM scale and penalty are given, tuned on a dev n-best set with references
(grid search minimising the dev WER), or swept on the test references like
Kaldi's ``score.sh`` (optimistic; the summary says which).  Among settings with
the same error count the first in grid order wins (LM scale ascending, then
penalty in the order given).

The LM's costs of the hypotheses and the cost parts of the formula above are
:mod:`rescorer.nbest.lm_costs`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from rescorer.errors import AdmmqError, MismatchError
from rescorer.lm.carry_over import SentenceContext
from rescorer.nbest.lists import NBestList
from rescorer.nbest.lm_costs import Components, LMScores, components, score_sentences, segment_argmin
from rescorer.nbest.recordings import CarryOver, carry_context
from rescorer.nbest.wer import Subsets, WerReport, align_counts, score_utterances
from rescorer.scoring.nist_scorer import NistScorer, count_all
from rescorer.settings import parse_numbers
from rescorer.timing import Phases

HOW = {"given": "given", "dev": "tuned on the dev set", "test": "swept on the test references (optimistic)",
       "default": "default (LM scale 10, Kaldi's usual LMWT; nothing to tune on)"}
DEFAULT_LM_SCALE = 10.0  # Kaldi's usual LMWT (acoustic scale 0.1), used when nothing is given to tune on


def parse_grid(spec: str) -> Tuple[float, ...]:
    """``START:STOP:STEP`` (inclusive) or a comma list ``a,b,c`` -> sorted-as-given floats."""
    expected = "START:STOP:STEP (STEP > 0) or a comma list of numbers"
    if ":" not in spec:
        return parse_numbers(spec, "grid", expected)
    try:
        start, stop, step = (float(x) for x in spec.split(":"))
        if step <= 0 or stop < start:
            raise ValueError
    except ValueError:
        raise AdmmqError(f"grid: expected {expected}, got {spec!r}") from None
    n = int(np.floor((stop - start) / step + 1e-9)) + 1
    return tuple(float(round(start + k * step, 10)) for k in range(n))


@dataclass(frozen=True)
class RescoreConfig:
    """How to combine the costs; ``None`` scale/penalty means: tune it (dev) or sweep it (test refs)."""

    acoustic_scale: float = 1.0
    lm_scale: Optional[float] = None
    wip: Optional[float] = None
    old_lm_weight: float = 0.0
    lm_scale_grid: Tuple[float, ...] = parse_grid("0:20:0.1")
    wip_grid: Tuple[float, ...] = (0.0, 0.5, 1.0)
    chunk_tokens: int = 32768
    subset_specs: Tuple[str, ...] = ()
    utt2subset: Optional[str] = None
    carry_over: CarryOver = CarryOver()


@dataclass
class HypothesisErrors:
    """Errors and reference words (sclite's count: it depends on the alignment with NIST scoring) of
    every hypothesis, (N,) int64 each, and of the reference utterances that have no n-best (their
    empty hypothesis: a constant of every setting; IGNORE_TIME_SEGMENT_IN_SCORING segments left out)."""

    errors: np.ndarray
    words: np.ndarray
    absent: Dict[str, Tuple[int, int]]

    @property
    def absent_errors(self) -> int:
        return sum(e for e, _ in self.absent.values())

    @property
    def absent_words(self) -> int:
        return sum(w for _, w in self.absent.values())


def _utterance_errors(ref: Tuple[str, ...], hyps: Sequence[Tuple[str, ...]], scorer: Optional[NistScorer],
                      where: str) -> Optional[List[Tuple[int, int]]]:
    """(errors, reference words) of each hypothesis of one utterance; None for an ignored stm segment."""
    if scorer is None:
        cache: Dict[Tuple[str, ...], int] = {}
        for h in hyps:
            if h not in cache:
                cache[h] = sum(align_counts(ref, h))
        return [(cache[h], len(ref)) for h in hyps]
    net = scorer.reference(ref, where)
    if net is None:
        return None
    return [(c.errors, c.words) for c in count_all(scorer, net, hyps, where)]


def hypothesis_errors(nb: NBestList, refs: Dict[str, Tuple[str, ...]], scorer: Optional[NistScorer] = None,
                      source: str = "references") -> HypothesisErrors:
    """Errors of every hypothesis against its reference, counted plain or with a NIST ``scorer``."""
    missing = [u for u in nb.utts if u not in refs]
    if missing:
        raise MismatchError(f"n-best utterance {missing[0]!r} has no reference ({len(missing)} without one)", source)
    errors = np.zeros(len(nb), dtype=np.int64)
    words = np.zeros(len(nb), dtype=np.int64)
    for u, utt in enumerate(nb.utts):
        lo, hi = nb.offsets[u], nb.offsets[u + 1]
        counts = _utterance_errors(refs[utt], nb.words[lo:hi], scorer, f"{source}: {utt}")
        if counts is not None:
            errors[lo:hi] = [e for e, _ in counts]
            words[lo:hi] = [w for _, w in counts]
    listed = set(nb.utts)
    absent = {}
    for utt, r in refs.items():
        if utt not in listed:
            counts = _utterance_errors(r, [()], scorer, f"{source}: {utt}")
            if counts is not None:
                absent[utt] = counts[0]
    return HypothesisErrors(errors, words, absent)


@dataclass
class SubsetGroups:
    """The utterances of an n-best list by WER subset (subsets with no reference words left out).

    ``index``: (U,) int64 subset of each utterance (-1: in none); ``absent_errors``, ``absent_words``: (S,)
    counts of the subset's references that have no n-best (the same at every setting).
    """

    names: Tuple[str, ...]
    index: np.ndarray
    absent_errors: np.ndarray
    absent_words: np.ndarray


def subset_groups(nb: NBestList, refs: Dict[str, Tuple[str, ...]], subsets: Subsets,
                  errors: HypothesisErrors) -> SubsetGroups:
    """Group ``nb``'s utterances (and the references without n-best) by ``subsets``."""
    names = subsets.names()  # every name subsets.of() can return
    where = {name: i for i, name in enumerate(names)}
    words = np.zeros(len(names), dtype=np.int64)
    absent = np.zeros((2, len(names)), dtype=np.int64)
    for utt, ref in refs.items():
        s = where.get(subsets.of(utt), -1)
        if s >= 0:
            words[s] += len(ref)
            absent[:, s] += errors.absent.get(utt, (0, 0))
    keep = np.flatnonzero(words > 0)
    remap = np.full(len(names) + 1, -1, dtype=np.int64)  # remap[-1] (no subset) stays -1
    remap[keep] = np.arange(len(keep))
    index = np.array([where.get(subsets.of(u), -1) for u in nb.utts], dtype=np.int64)
    return SubsetGroups(tuple(names[i] for i in keep), remap[index], absent[0, keep], absent[1, keep])


@dataclass
class Sweep:
    """Errors of every (lm_scale, wip) setting, in grid order, and the chosen one.

    ``errors``, ``words``: (P,) int64 errors and reference words at each of the P settings;
    ``subset_errors``, ``subset_words``: (S, P) the same per subset of ``subsets``.
    """

    lm_scales: np.ndarray
    wips: np.ndarray
    errors: np.ndarray
    words: np.ndarray
    best: int
    subsets: Optional[SubsetGroups] = None
    subset_errors: Optional[np.ndarray] = None
    subset_words: Optional[np.ndarray] = None

    def rows(self) -> List[Tuple[float, float, int, float]]:
        return [(float(a), float(b), int(e), 100.0 * e / max(int(w), 1))
                for a, b, e, w in zip(self.lm_scales, self.wips, self.errors, self.words)]

    def subset_rows(self) -> List[List[Tuple[int, float]]]:
        """Per setting: (errors, WER %) of each subset, in ``subsets.names`` order."""
        if self.subsets is None or self.subset_errors is None or self.subset_words is None:
            return [[] for _ in self.errors]
        return [[(int(e), 100.0 * e / max(int(w), 1)) for e, w in zip(ecol, wcol)]
                for ecol, wcol in zip(self.subset_errors.T, self.subset_words.T)]

    def subset_words_at_best(self) -> Dict[str, int]:
        if self.subsets is None or self.subset_words is None:
            return {}
        return {n: int(w) for n, w in zip(self.subsets.names, self.subset_words[:, self.best])}


def sweep(comp: Components, errors: HypothesisErrors, acoustic_scale: float, lm_grid: Sequence[float],
          wip_grid: Sequence[float], groups: Optional[SubsetGroups] = None) -> Sweep:
    """Total errors and words (and per subset of ``groups``) at every grid point (the first minimum is chosen)."""
    settings = [(a, b) for a in lm_grid for b in wip_grid]
    errs = np.empty(len(settings), dtype=np.int64)
    words = np.empty(len(settings), dtype=np.int64)
    n_sub = len(groups.names) if groups is not None else 0
    sub = np.empty((2, n_sub, len(settings)), dtype=np.int64)
    inside = groups.index >= 0 if groups is not None else None
    absent = (errors.absent_errors, errors.absent_words)
    for k, (a, b) in enumerate(settings):
        best = segment_argmin(comp.total(acoustic_scale, a, b), comp.offsets)
        for j, (per_utt, const) in enumerate(((errors.errors[best], absent[0]), (errors.words[best], absent[1]))):
            (errs, words)[j][k] = per_utt.sum() + const
            if groups is not None:
                counts = np.bincount(groups.index[inside], weights=per_utt[inside], minlength=n_sub)[:n_sub]
                sub[j, :, k] = counts.round().astype(np.int64) + (groups.absent_errors, groups.absent_words)[j]
    return Sweep(np.array([a for a, _ in settings]), np.array([b for _, b in settings]), errs, words,
                 int(np.argmin(errs)), groups if n_sub else None, sub[0] if n_sub else None,
                 sub[1] if n_sub else None)


@dataclass
class RescoreResult:
    nbest: NBestList
    comp: Components
    total: np.ndarray  # (N,) combined cost
    best: np.ndarray  # (U,) index of each utterance's best hypothesis
    acoustic_scale: float
    lm_scale: float
    wip: float
    old_lm_weight: float
    chosen_by: str  # "given", "dev" or "test"
    lm_scores: LMScores
    sweep: Optional[Sweep] = None
    wer: Dict[str, WerReport] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    test_sweep: Optional[Sweep] = None  # tuned on dev with test references: the same grid on the test list
    carry_over: dict = field(default_factory=dict)  # mode, source and history size of the carry-over

    def best_text(self) -> Dict[str, Tuple[str, ...]]:
        return {u: self.nbest.words[i] for u, i in zip(self.nbest.utts, self.best)}

    def summary(self) -> dict:
        nb, s = self.nbest, self.lm_scores
        n_words = int(self.comp.words.sum())
        d = {"nbest": nb.source, "utterances": nb.num_utterances, "hypotheses": len(nb),
             "words": n_words, "oov_words": int(s.oov[:len(nb)].sum()),
             "weights": {"acoustic_scale": self.acoustic_scale, "lm_scale": self.lm_scale, "wip": self.wip,
                         "old_lm_weight": self.old_lm_weight},
             "chosen_by": self.chosen_by, "how": HOW[self.chosen_by], "carry_over": self.carry_over,
             "formula": "total = acoustic_scale*acwt + lm_scale*(lmwt.nolm + lm + wip*words), "
                        "lm = (1-old_lm_weight)*(-ln P_LM) + old_lm_weight*lmwt.lmonly (costs, nats)",
             "scoring": s.rates(),
             "all_empty_utterances": nb.all_empty, "notes": list(nb.warnings) + self.notes}
        if self.sweep is not None:
            sw = self.sweep
            d["sweep"] = {"settings": len(sw.errors), "best_errors": int(sw.errors[sw.best]),
                          "words": int(sw.words[sw.best]),
                          "lm_scale_range": [float(sw.lm_scales.min()), float(sw.lm_scales.max())],
                          "wips": sorted(set(float(x) for x in sw.wips)),
                          "set": "dev" if self.chosen_by == "dev" else "test",
                          "subset_words": sw.subset_words_at_best()}
        if self.test_sweep is not None:
            ts = self.test_sweep
            d["test_sweep"] = {"settings": len(ts.errors), "best_errors": int(ts.errors[ts.best]),
                               "words": int(ts.words[ts.best]), "subset_words": ts.subset_words_at_best()}
        if self.wer:
            d["wer"] = {name: rep.to_dict() for name, rep in self.wer.items()}
        return d


def _tuning_target(comp: Components, nb: NBestList, refs, errors: HypothesisErrors, cfg: RescoreConfig) -> Sweep:
    lm_grid = (cfg.lm_scale,) if cfg.lm_scale is not None else cfg.lm_scale_grid
    wip_grid = (cfg.wip,) if cfg.wip is not None else cfg.wip_grid
    groups = subset_groups(nb, refs, Subsets.build(list(refs), cfg.subset_specs, cfg.utt2subset), errors)
    return sweep(comp, errors, cfg.acoustic_scale, lm_grid, wip_grid, groups)


def check_tuning(cfg: RescoreConfig, has_ref: bool, has_dev: bool) -> None:
    """Fail early when the weights can be neither taken, tuned nor swept."""
    if not 0.0 <= cfg.old_lm_weight <= 1.0:
        raise AdmmqError(f"old LM weight must be in [0, 1], got {cfg.old_lm_weight}")


def rescore(nb: NBestList, lm, cfg: RescoreConfig, refs: Optional[Dict[str, Tuple[str, ...]]] = None,
            dev: Optional[Tuple[NBestList, Dict[str, Tuple[str, ...]]]] = None, quiet: bool = False,
            ref_source: str = "references", dev_source: str = "dev references",
            phases: Optional[Phases] = None, scorer: Optional[NistScorer] = None,
            context: Optional[SentenceContext] = None) -> RescoreResult:
    """Rescore ``nb`` with ``lm``; tune on ``dev`` (n-best, references) or sweep on ``refs`` when not given.
    WER is counted plain (sclite -s) or, with ``scorer``, as hubscr.pl counts it (dev and test alike).

    ``phases`` (optional) receives the seconds of ``references`` (errors of every hypothesis),
    ``lm_scoring`` and ``choose`` (weights, WER).  ``context``: the carry-over start states of ``nb``'s
    and ``dev``'s hypotheses (made from ``cfg.carry_over`` when not given;
    :func:`rescorer.nbest.recordings.carry_context`)."""
    phases = phases or Phases()
    check_tuning(cfg, refs is not None, dev is not None)
    tuned = cfg.lm_scale is None or cfg.wip is None
    # errors of every hypothesis first: a missing reference fails before the LM runs
    with phases.phase("references"):
        test_errors = hypothesis_errors(nb, refs, scorer, ref_source) if refs is not None else None
        subsets = Subsets.build(list(refs), cfg.subset_specs, cfg.utt2subset) if refs is not None else None
        if dev is not None:  # bad subset rules fail before the LM runs
            Subsets.build(list(dev[1]), cfg.subset_specs, cfg.utt2subset)
        dev_errors = hypothesis_errors(dev[0], dev[1], scorer, dev_source) if dev is not None and tuned else None
    sentences = list(nb.words) + (list(dev[0].words) if dev is not None else [])
    if context is None:
        context = carry_context([nb] + ([dev[0]] if dev is not None else []), cfg.carry_over)
    if context is not None and not getattr(lm, "uses_context", False):
        raise AdmmqError(f"--carry-over {cfg.carry_over.mode} carries an LSTM's state: give an LSTM (--lm)")
    with phases.phase("lm_scoring"):
        scores = score_sentences(lm, sentences, cfg.chunk_tokens, quiet, context)
    with phases.phase("choose"):
        return _choose(nb, cfg, refs, dev, scores, tuned, test_errors, dev_errors, subsets, ref_source, scorer,
                       context)


def _choose(nb: NBestList, cfg: RescoreConfig, refs, dev, scores: LMScores, tuned: bool, test_errors, dev_errors,
            subsets, ref_source: str, scorer: Optional[NistScorer],
            context: Optional[SentenceContext] = None) -> RescoreResult:
    """The LM scale and penalty (given, tuned on dev or swept on refs), the best hypotheses and the WER."""
    comp, notes = components(nb, scores.logprob[:len(nb)], cfg.old_lm_weight)
    lm_scale = cfg.lm_scale
    wip = cfg.wip if cfg.wip is not None else 0.0
    chosen, result_sweep, test_sweep = "given", None, None
    if lm_scale is None and dev is None and refs is None:  # nothing to tune on
        lm_scale, chosen = DEFAULT_LM_SCALE, "default"
        notes.append(f"LM scale {DEFAULT_LM_SCALE:g} (Kaldi's usual LMWT) and insertion penalty {wip:g}: nothing "
                     f"to tune them on; give --lm-scale/--wip, or --dev DIR --dev-ref TEXT")
    if tuned and dev is not None:
        dev_comp, dev_notes = components(dev[0], scores.logprob[len(nb):], cfg.old_lm_weight)
        notes += dev_notes + dev[0].warnings
        result_sweep = _tuning_target(dev_comp, dev[0], dev[1], dev_errors, cfg)
        chosen = "dev"
        if refs is not None:  # the same grid on the test list: how the dev choice fares there
            test_sweep = _tuning_target(comp, nb, refs, test_errors, cfg)
    elif tuned and refs is not None:
        result_sweep = _tuning_target(comp, nb, refs, test_errors, cfg)
        chosen = "test"
    if result_sweep is not None:
        lm_scale = float(result_sweep.lm_scales[result_sweep.best])
        wip = float(result_sweep.wips[result_sweep.best])
    assert lm_scale is not None
    total = comp.total(cfg.acoustic_scale, lm_scale, wip)
    best = segment_argmin(total, nb.offsets)
    carried = dict(cfg.carry_over.to_dict(), **({"history_sentences": len(context.history)} if context else {}))
    res = RescoreResult(nb, comp, total, best, cfg.acoustic_scale, lm_scale, wip, cfg.old_lm_weight, chosen,
                        scores, result_sweep, notes=notes, test_sweep=test_sweep, carry_over=carried)
    if refs is not None:
        res.wer = evaluate_choices(nb, res.best, refs, test_errors.errors, subsets, scorer, ref_source)
    return res


def evaluate_choices(nb: NBestList, best: np.ndarray, refs, errors: np.ndarray, subsets: Subsets,
                     scorer: Optional[NistScorer], source: str) -> Dict[str, WerReport]:
    """WER of the rescored choice ``best`` (U,), of the first pass (rank 1) and of the oracle (fewest
    ``errors`` (N,))."""
    picks = {"rescored": best, "first_pass": nb.offsets[:-1], "oracle": segment_argmin(errors, nb.offsets)}
    return {name: score_utterances(refs, {u: nb.words[i] for u, i in zip(nb.utts, idx)}, subsets, "all",
                                   scorer, ref_source=source)
            for name, idx in picks.items()}


def config_dict(cfg: RescoreConfig) -> dict:
    d = asdict(cfg)
    d["lm_scale_grid"] = [cfg.lm_scale_grid[0], cfg.lm_scale_grid[-1], len(cfg.lm_scale_grid)]
    return d
