"""One ``admmq rescore`` job: read the n-best list(s) and references, rescore, write the outputs.

Outputs in the output directory (each written atomically):

``text``          best hypothesis per utterance (Kaldi text)
``nbest.txt``     the n-best list in the single-file form with the input costs plus ``lm.new``
                  (-ln P_LM), ``lmwt.new`` and ``total`` (see :mod:`rescorer.nbest.rescore`)
``lmwt.new``      ``ark,t`` keyed like the input: lmwt.nolm + LM cost, the new graph/LM cost for
                  ``linear-to-nbest ark:ali ark:words ark:lmwt.new ark:acwt | nbest-to-lattice``
``summary.json``  command and settings, how the weights were chosen (and, under ``interpolation``, the
                  LMs' interpolation weights and their source), counts, speed, WER
``sweep.tsv``     errors of every grid point (when tuned or swept) on the set the weights were chosen on
                  (the dev list with ``--dev``, else the test references): columns ``lm_scale wip errors
                  wer``, then ``errors:NAME wer:NAME`` for each WER subset with reference words in that set
``sweep.test.tsv`` tuned on dev with ``--ref``: the same grid on the rescored (test) list, same columns
``wer.txt``       the WER reports (with references)

``summary.json`` is written last: a job whose ``summary.json`` exists finished.
With ``shard=(k, n)`` the job rescores utterances of job ``k`` of ``n`` only
(:mod:`rescorer.nbest.shards`) and scores WER against their references only; the
weights must then be the same in every job: given, or tuned on a whole dev set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Tuple

from rescorer.errors import AdmmqError, PathLike
from rescorer.fileio import atomic_open, check_free_space, check_writable, existing_ancestor, remove_stale_temps
from rescorer.nbest.kaldi_archive import SCALAR, write_archive
from rescorer.nbest.kaldi_dir import read_nbest
from rescorer.nbest.lists import write_nbest_file
from rescorer.nbest.recordings import carry_context
from rescorer.nbest.shards import shard_nbest
from rescorer.nbest.rescore import RescoreConfig, RescoreResult, Sweep, check_tuning, rescore
from rescorer.nbest.wer import read_references, read_text
from rescorer.scoring.nist_scorer import NistScorer
from rescorer.timing import Phases


SUMMARY = "summary.json"
SWEEP = "sweep.tsv"  # on the set the weights were chosen on (summary.json chosen_by)
SWEEP_TEST = "sweep.test.tsv"  # tuned on dev: the same grid on the test list
OUTPUTS = ("text", "nbest.txt", "lmwt.new", SUMMARY, SWEEP, SWEEP_TEST, "wer.txt")


def _input_bytes(path: PathLike) -> int:
    p = Path(path)
    files = [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p]
    return sum(f.stat().st_size for f in files)


def write_outputs(res: RescoreResult, out_dir, settings: Optional[dict] = None,
                  phases: Optional[Phases] = None) -> Dict[str, str]:
    """Write the results into ``out_dir`` (module docstring); return name -> path."""
    phases = phases or Phases()
    with phases.phase("write"):
        paths = _write_files(res, out_dir)
    summary = res.summary()
    summary["settings"] = dict(settings or {})
    if "interpolation" in summary["settings"]:  # how the new LM's interpolation weights were set
        summary["interpolation"] = summary["settings"].pop("interpolation")
    summary["outputs"] = paths
    summary["timing"] = phases.to_dict()
    with atomic_open(paths["summary.json"]) as fh:
        json.dump(summary, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return paths


def _write_files(res: RescoreResult, out_dir) -> Dict[str, str]:
    """Every output but summary.json; name -> path (summary.json's path included)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise AdmmqError("exists and is not a directory", out)
    out.mkdir(parents=True, exist_ok=True)
    nb, comp = res.nbest, res.comp
    paths = {name: str(out / name) for name in ("text", "nbest.txt", "lmwt.new", "summary.json")}
    with atomic_open(paths["text"]) as fh:
        for utt, words in res.best_text().items():
            fh.write(" ".join((utt,) + words) + "\n")
    new_graph = comp.graph + comp.lm
    write_nbest_file(nb.with_costs({"lm.new": comp.lm_new, "lmwt.new": new_graph, "total": res.total}),
                     paths["nbest.txt"])
    write_archive(paths["lmwt.new"], list(zip(nb.keys, new_graph.tolist())), SCALAR)
    for name, sw in ((SWEEP, res.sweep), (SWEEP_TEST, res.test_sweep)):
        if sw is not None:
            paths[name] = str(out / name)
            write_sweep(sw, paths[name])
    if res.wer:
        paths["wer.txt"] = str(out / "wer.txt")
        with atomic_open(paths["wer.txt"]) as fh:
            for name, rep in res.wer.items():
                fh.write(f"# {name}\n" + "\n".join(rep.lines()) + "\n")
    return paths


def write_sweep(sw: Sweep, path: PathLike) -> None:
    """One line per grid point: ``lm_scale wip errors wer`` and ``errors:NAME wer:NAME`` per subset (TSV)."""
    names = sw.subsets.names if sw.subsets is not None else ()
    with atomic_open(path) as fh:
        fh.write("\t".join(["lm_scale", "wip", "errors", "wer"] + [f"{k}:{n}" for n in names
                                                                    for k in ("errors", "wer")]) + "\n")
        for (a, b, e, w), per in zip(sw.rows(), sw.subset_rows()):
            fh.write("\t".join([f"{a:g}", f"{b:g}", str(e), f"{w:.2f}"] + [x for se, sw_ in per
                                                                          for x in (str(se), f"{sw_:.2f}")]) + "\n")


def _read_inputs(nbest: PathLike, ref, stm, dev, dev_ref, words_txt, shard):
    """The n-best list (this job's share), the whole list, its references and the dev pair (list, references)
    or None."""
    nb = full = read_nbest(nbest, words_txt)
    if shard is not None:
        nb = shard_nbest(nb, *shard)
        if nb.num_utterances == 0:
            raise AdmmqError(f"job {shard[0]} of {shard[1]} holds no utterance ({nbest} has fewer utterances "
                             f"than jobs)")
    refs = read_references(ref, stm, nb.utts) if ref is not None or stm is not None else None
    if refs is not None and shard is not None:  # this job's utterances only
        mine = set(nb.utts)
        refs = {u: w for u, w in refs.items() if u in mine}
    dev_pair = (read_nbest(dev, words_txt), read_text(dev_ref)) if dev is not None else None
    return nb, full, refs, dev_pair


def run_rescore(nbest: PathLike, lm, cfg: RescoreConfig, out_dir: PathLike, ref: Optional[PathLike] = None,
                dev: Optional[PathLike] = None, dev_ref: Optional[PathLike] = None,
                words_txt: Optional[PathLike] = None, quiet: bool = False,
                settings: Optional[dict] = None, shard: Optional[Tuple[int, int]] = None,
                phases: Optional[Phases] = None, stm: Optional[PathLike] = None,
                scorer: Optional[NistScorer] = None) -> Tuple[RescoreResult, Dict[str, str]]:
    """Read the n-best list (and dev set, references), rescore with ``lm``, write the outputs.

    The test references are a Kaldi ``text`` (``ref``) or an stm file (``stm``); ``scorer`` counts WER
    as hubscr.pl does (:func:`rescorer.scoring.nist_scorer.make_scorer`), else as plain sclite.

    ``lm`` is the LM or a function without arguments returning it, called once
    the inputs have been read (bad input then fails before a slow LM load).
    ``phases`` collects the seconds of each part (``summary.json``'s ``timing``).
    """
    phases = phases or Phases()
    if (dev is None) != (dev_ref is None):
        raise AdmmqError("--dev and --dev-ref go together (the dev n-best list and its reference text)")
    if ref is not None and stm is not None:
        raise AdmmqError("give the test reference as --ref TEXT or --stm STM, not both")
    check_tuning(cfg, ref is not None or stm is not None, dev is not None)
    if shard is not None and dev is None and (cfg.lm_scale is None or cfg.wip is None):
        raise AdmmqError("a rescoring job (--job) must use the same weights as the other jobs: give --lm-scale "
                         "and --wip, or tune them on the whole dev set with --dev/--dev-ref (not on this job's "
                         "references)")
    out = Path(out_dir)
    if out.is_dir():
        check_writable(out / "summary.json")
    else:
        check_writable(out)
    if out.is_dir():
        remove_stale_temps(out, OUTPUTS)  # left by a killed job
    # text, nbest.txt and lmwt.new together take about twice the input list: checked before the LM runs
    check_free_space(existing_ancestor(out), 2 * _input_bytes(nbest) + 2**20, "the rescoring outputs")
    with phases.phase("read"):
        nb, full, refs, dev_pair = _read_inputs(nbest, ref, stm, dev, dev_ref, words_txt, shard)
        # carry-over chains before the LM loads (a bad segments file fails fast); a job's chains run through
        # the whole list
        context = carry_context([nb] + ([dev_pair[0]] if dev_pair else []), cfg.carry_over,
                                full if shard is not None else None)
    if not hasattr(lm, "score"):
        with phases.phase("load_lm"):
            lm = lm()
    res = rescore(nb, lm, cfg, refs, dev_pair, quiet, ref_source=str(ref if stm is None else stm),
                  dev_source=str(dev_ref), phases=phases, scorer=scorer, context=context)
    return res, write_outputs(res, out, settings, phases)
