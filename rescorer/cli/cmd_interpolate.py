"""``admmq interpolate``: interpolation weights of several LMs by EM on a validation text."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rescorer.errors import AdmmqError
from rescorer.fileio import check_writable
from rescorer.settings import parse_numbers
from rescorer.ngram.interpolate import interpolate, save_weights
from rescorer.ngram.mixture import MixtureScorer, OovPolicy
from rescorer.ngram.scorers import load_components
from rescorer.lm.batch_control import pick_device
from rescorer.cli.group import cli
from rescorer.cli.lm_options import lms_option, lm_scoring_options, ngram_option, oov_policy
from rescorer.cli.options import (batch_tokens_option, device_option, json_option, quiet_option, text_format_for,
                                  text_format_option)


@cli.command("interpolate")
@lms_option
@ngram_option
@click.option("--valid", "valid_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Validation text the weights are tuned on (plain or gzip).")
@text_format_option
@click.option("-o", "--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Write the weights file here (for 'admmq eval/rescore --weights').")
@click.option("--weights", default=None, help="EM's starting weights, comma-separated, one per LM [default: equal].")
@click.option("--tolerance", type=float, default=1e-7, show_default=True,
              help="Stop when the validation log-likelihood per token gains less than this (nats).")
@click.option("--max-iterations", type=click.IntRange(min=1), default=200, show_default=True)
@lm_scoring_options
@batch_tokens_option
@device_option
@json_option
@quiet_option
def interpolate_command(lm_paths, ngram_paths, valid_path, text_format, out_path, weights, tolerance, max_iterations,
                        ngram_backend, ngram_case, oov_mode, oov_types, oov_logprob, batch_tokens, device, as_json,
                        quiet):
    """Find interpolation weights P = sum_k w_k P_k of the LMs by EM on --valid.

    Prints each LM's validation perplexity, the weights and the mixture's
    perplexity (each EM iteration's perplexity goes to stderr); --json prints
    one object with weights, ppl (mixture), component_ppl and the iterations.
    """
    if not lm_paths and not ngram_paths:
        raise AdmmqError("give at least one --lm or --ngram")
    if out_path:
        check_writable(out_path)
    start = list(parse_numbers(weights, "--weights")) if weights is not None else None
    comps = load_components(lm_paths, ngram_paths, str(pick_device(device)), batch_tokens, ngram_backend,
                            ngram_case, quiet)
    n = len(comps)
    scorer = MixtureScorer([c.scorer for c in comps], start or [1.0] * n,
                           oov_policy(oov_mode, oov_types, oov_logprob) or OovPolicy(),
                           names=[c.path for c in comps], kinds=[c.kind for c in comps])
    fmt = text_format_for(valid_path, text_format, lambda w: not scorer.is_oov(w))
    result = interpolate(scorer, valid_path, fmt, start, tolerance, max_iterations, quiet)
    if out_path:
        save_weights(result, out_path)
    if as_json:
        d = result.to_dict()
        d["out"] = out_path
        click.echo(json.dumps(d, sort_keys=True))
        return
    width = max(len(Path(c).name) for c in result.names)
    click.echo(f"{'LM':<{width}}  kind   valid ppl    weight")
    for name, kind, ppl, w in zip(result.names, result.kinds, result.component_ppl, result.weights):
        click.echo(f"{Path(name).name:<{width}}  {kind:<5}  {ppl:9.2f}  {w:8.4f}")
    click.echo(f"{'mixture':<{width}}         {result.ppl:9.2f}")
    state = "converged" if result.converged else "stopped at --max-iterations"
    click.echo(f"EM: {len(result.steps) - 1} iterations ({state}, tolerance {tolerance:g}) on {result.em_tokens} of "
               f"{result.tokens} tokens of {valid_path}; OOV policy {result.oov['mode']}"
               + (f", {result.unseen} tokens no LM knows" if result.unseen else ""))
    if out_path:
        click.echo(f"weights written to {out_path}")
