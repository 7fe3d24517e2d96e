"""``admmq rescore``: rescore a Kaldi n-best list with a new LM and report WER."""

from __future__ import annotations

import json
import sys

import click

from rescorer.progress import say
from rescorer.timing import Phases, seconds_since_process_start
from rescorer.errors import AdmmqError
from rescorer.nbest.rescore import HOW, RescoreConfig, check_tuning, config_dict, parse_grid
from rescorer.nbest.shards import parse_shard
from rescorer.nbest.rescore_job import run_rescore
from rescorer.ngram.scorers import load_tuned_scorer
from rescorer.lm.batch_control import device_name
from rescorer.cli.group import allow_fast_exit, cli
from rescorer.cli.lm_options import (carry_over_options, lm_scoring_options, lms_option, neural_options,
                                     neural_speed_options, ngram_option, oov_policy, report_choice, weights_option)
from rescorer.cli.options import (batch_tokens_option, device_option, json_option, quiet_option, scoring_options,
                                  text_format_option)
from rescorer.nbest.recordings import CarryOver
from rescorer.scoring.nist_scorer import make_scorer


@cli.command("rescore")
@click.argument("nbest", type=click.Path(exists=True))
@lms_option
@ngram_option
@weights_option
@lm_scoring_options
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory: text, nbest.txt, lmwt.new, summary.json[, sweep.tsv, wer.txt].")
@click.option("--ref", type=click.Path(exists=True, dir_okay=False),
              help="Reference Kaldi text: report WER (and sweep the weights on it when not given or tuned); "
                   "or give --stm.")
@click.option("--dev", type=click.Path(exists=True),
              help="Dev n-best list (directory or file) to tune the LM scale / penalty on.")
@click.option("--dev-ref", type=click.Path(exists=True, dir_okay=False),
              help="Reference Kaldi text of --dev (also tunes the interpolation weights when --valid is not given).")
@click.option("--valid", "valid_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Several LMs without --weights: tune their interpolation weights by EM on this text, as "
                   "'admmq interpolate --valid' does [default: on --dev-ref, else equal weights].")
@text_format_option
@click.option("--words-txt", type=click.Path(exists=True, dir_okay=False),
              help="Symbol table for 'words' id archives (default: words.txt in the n-best directory).")
@click.option("--acoustic-scale", type=float, default=1.0, show_default=True, help="Weight of acwt.")
@click.option("--lm-scale", type=float, default=None,
              help="Weight of the graph + LM + penalty part (Kaldi's LMWT). Default: tuned (--dev) or swept (--ref).")
@click.option("--wip", type=float, default=None,
              help="Word insertion penalty, a cost per word added to the LM part (Kaldi's --word-ins-penalty). "
                   "Default: tuned/swept, else 0.")
@click.option("--old-lm-weight", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Weight b of the first-pass LM cost (lmwt.lmonly) mixed into the new LM cost "
                   "(Kaldi's rnn-weight = 1 - b).")
@click.option("--nn-weight", type=click.FloatRange(0.0, 1.0), default=None,
              help="Kaldi's log-linear combination: LM = w*(new LM cost) + (1-w)*lmwt.lmonly, the --weight "
                   "of steps/pytorchnn/lmrescore_nbest_pytorchnn.sh (0.8 there); the same as --old-lm-weight "
                   "1-w. Not admmq's linear interpolation (--ngram; docs/kaldi.md).")
@click.option("--lm-scale-grid", default="0:20:0.1", show_default=True, help="LM scales to try: START:STOP:STEP or a,b,c.")
@click.option("--wip-grid", default="0,0.5,1", show_default=True, help="Penalties to try: START:STOP:STEP or a,b,c.")
@scoring_options
@click.option("--job", default=None, metavar="K/N",
              help="Rescore job K of N only: a contiguous, deterministic block of utterances (Kaldi's JOB=1:N). "
                   "Weights must be given or tuned on --dev; merge with 'admmq wer REF J1/text J2/text ...' or "
                   "'admmq nbest merge'.")
@carry_over_options
@batch_tokens_option
@neural_speed_options
@device_option
@json_option
@quiet_option
def rescore_command(nbest, lm_paths, ngram_paths, weights, ngram_backend, ngram_case, oov_mode, oov_types,
                    oov_logprob, out_dir, ref, dev, dev_ref, valid_path, text_format, words_txt, acoustic_scale, lm_scale,
                    wip, old_lm_weight, nn_weight, lm_scale_grid, wip_grid, subsets, utt2subset, stm, glm, hyp_filter,
                    acronym_map, job, carry_over, segments, utt2spk, recording_pattern, batch_tokens,
                    prefix_sharing, int8, precision, normalize_probs, threads, device, as_json, quiet):
    """Rescore the n-best list NBEST (a Kaldi n-best directory or a single n-best file) with a new LM.

    All scores are costs: negated natural-log probabilities (nats), as Kaldi
    writes them. Per hypothesis with n words:

      total = acoustic_scale*acwt + lm_scale*(lmwt.nolm + LM + wip*n)

    with LM = -ln P(words </s>) under the new LM (log-linearly mixed with the
    old LM by --nn-weight / --old-lm-weight, as Kaldi does); the lowest total
    wins. lmwt.nolm is 0 when absent. --carry-over starts each utterance's
    LSTM state where the previous utterance's first-pass best left it.

    The new LM is one LSTM (--lm), one n-gram (--ngram), or their
    interpolation: with --weights (a file from 'admmq interpolate', or
    numbers), else weights found by EM as 'admmq interpolate' finds them, on
    --valid or else on --dev-ref; with neither, equal weights and a warning.
    Words no LM knows cost what --oov says (see docs/ngram-lms.md).
    """
    phases = Phases(startup=seconds_since_process_start())
    if nn_weight is not None:
        if old_lm_weight:
            raise AdmmqError("give --nn-weight w (Kaldi's) or --old-lm-weight b (= 1 - w), not both")
        old_lm_weight = 1.0 - nn_weight
    cfg = RescoreConfig(acoustic_scale=acoustic_scale, lm_scale=lm_scale, wip=wip, old_lm_weight=old_lm_weight,
                        lm_scale_grid=parse_grid(lm_scale_grid), wip_grid=parse_grid(wip_grid),
                        chunk_tokens=4 * batch_tokens, subset_specs=tuple(subsets), utt2subset=utt2subset,
                        carry_over=CarryOver(carry_over, segments, utt2spk, recording_pattern))
    scorer = make_scorer(glm, hyp_filter, acronym_map, stm=stm is not None)
    oov = oov_policy(oov_mode, oov_types, oov_logprob)
    dev_name = device_name(device)  # (the CPU kernels need no PyTorch)
    neural = neural_options(prefix_sharing, int8, precision, threads, normalize_probs)
    settings = {"command": " ".join(["admmq"] + sys.argv[1:]), "lm": list(lm_paths), "ngram": list(ngram_paths),
                "weights": weights, "oov": None if oov is None else oov.__dict__, "ref": ref, "dev": dev,
                "dev_ref": dev_ref, "stm": stm, "scoring": scorer.describe() if scorer else "plain (sclite -s)",
                "valid": valid_path, "device": device, "batch_tokens": batch_tokens,
                "neural": neural.to_dict(), "threads": threads, "config": config_dict(cfg)}
    if (dev is None) != (dev_ref is None):
        raise AdmmqError("--dev and --dev-ref go together (the dev n-best list and its reference text)")
    check_tuning(cfg, ref is not None or stm is not None, dev is not None)
    if not (lm_paths or ngram_paths or weights):
        raise AdmmqError("no new LM given: --lm, --ngram or --weights FILE")
    if cfg.carry_over.active and not lm_paths and weights is None:
        raise AdmmqError(f"--carry-over {carry_over} carries an LSTM's state: give an LSTM (--lm)")
    say(f"rescore {nbest} with {' '.join(lm_paths + ngram_paths) or weights} (device {dev_name}, "
        f"batch tokens {batch_tokens})", quiet)

    tune_on = (valid_path, text_format) if valid_path else (dev_ref, "kaldi") if dev_ref else None
    choices = []

    def build_lm():
        scorer, choice = load_tuned_scorer(lm_paths, ngram_paths, weights, oov, tune_on, dev_name, batch_tokens,
                                           ngram_backend, ngram_case, quiet, neural)
        report_choice(choice)
        for c in getattr(scorer, "components", [scorer]):
            if getattr(c, "warning", None):
                click.echo(f"admmq: warning: {c.warning}", err=True)
        settings["interpolation"] = choice.to_dict()  # into summary.json
        choices.append(choice)
        return scorer

    res, paths = run_rescore(nbest, build_lm, cfg, out_dir, ref, dev, dev_ref, words_txt, quiet, settings,
                             parse_shard(job) if job else None, phases, stm=stm, scorer=scorer)
    summary = res.summary()
    summary["interpolation"] = choices[0].to_dict()
    for note in summary["notes"]:
        click.echo(f"admmq: warning: {note}", err=True)
    if as_json:
        summary["outputs"] = paths
        click.echo(json.dumps(summary, sort_keys=True))
        allow_fast_exit()
        return
    sc = summary["scoring"]
    click.echo(f"{summary['utterances']} utterances, {summary['hypotheses']} hypotheses, "
               f"{summary['oov_words']} OOV words; LM scored {sc['sentences']} sentences "
               f"({sc['distinct_sentences']} distinct, dev included) in {sc['seconds']:.1f} s "
               f"({sc['hypotheses_per_s']:.0f} hyp/s, {sc['words_per_s']:.0f} words/s)")
    for w in sc["lm_work"]:
        click.echo(f"LSTM ({w.get('how', '')}): {w['lstm_steps']} LSTM steps, {w['softmax_rows']} softmax rows "
                   f"for {w['tokens']} words+</s> of {w['sentences']} distinct sentences")
    click.echo(choices[0].describe())
    how = HOW[res.chosen_by] + (f" over {len(res.sweep.errors)} settings" if res.sweep is not None else "")
    click.echo(f"weights: acoustic scale {res.acoustic_scale:g}, LM scale {res.lm_scale:g}, wip {res.wip:g}, "
               f"old LM weight {res.old_lm_weight:g} ({how})")
    if res.carry_over.get("mode", "none") != "none":
        click.echo(f"carry-over: {res.carry_over['mode']}, {res.carry_over['history_sentences']} first-pass best "
                   f"hypotheses read ({summary['scoring']['lm_work'][0].get('history_steps', 0)} LSTM steps)")
    for name, rep in res.wer.items():
        click.echo(f"WER {name.replace('_', ' ')}:")
        for line in rep.lines():
            click.echo(f"  {line}")
    click.echo("time (s): " + ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in phases.to_dict().items()))
    click.echo(f"outputs in {out_dir}: {' '.join(sorted(k for k in paths))}")
    allow_fast_exit()
