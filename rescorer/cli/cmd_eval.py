"""``admmq eval``: perplexity of a text under an LM, or under an interpolation of LMs."""

from __future__ import annotations

import json

import click

from rescorer.pack.lm_file import load_lm
from rescorer.errors import AdmmqError
from rescorer.report.evaluate import evaluate_scorer, evaluate_text
from rescorer.ngram.mixture import OovPolicy
from rescorer.ngram.scorers import load_tuned_scorer
from rescorer.lm.batch_control import pick_device
from rescorer.cli.group import cli
from rescorer.cli.lm_options import (carry_over_options, lms_option, lm_scoring_options, ngram_option, oov_policy,
                                     report_choice, weights_option)
from rescorer.nbest.recordings import CarryOver
from rescorer.cli.options import (batch_tokens_option, device_option, json_option, quiet_option, text_format_for,
                                  text_format_option)


@cli.command("eval")
@lms_option
@ngram_option
@weights_option
@click.option("--text", "text_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Text to score (plain or gzip).")
@click.option("--valid", "valid_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Several LMs without --weights: tune their interpolation weights by EM on this text, as "
                   "'admmq interpolate --valid' does [default: equal weights, with a warning].")
@text_format_option
@click.option("--per-sentence", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write '<key> <cost>' per sentence, cost = -ln P(words </s>) (nats).")
@lm_scoring_options
@carry_over_options
@batch_tokens_option
@device_option
@json_option
@quiet_option
def eval_command(lm_paths, ngram_paths, weights, text_path, valid_path, text_format, per_sentence, ngram_backend, ngram_case,
                 oov_mode, oov_types, oov_logprob, carry_over, segments, utt2spk, recording_pattern, batch_tokens,
                 device, as_json, quiet):
    """Perplexity, word count and OOV rate of TEXT under an LM or an interpolation of LMs.

    With one --lm alone this is that LM's perplexity (for a quantized
    checkpoint, the quantized model's).  With --ngram, several LMs or
    --weights, the text is scored by the mixture sum_k w_k P_k; without
    --weights its weights are found by EM on --valid (as 'admmq interpolate'),
    or are equal (with a warning) when --valid is not given.  Either way a
    word no LM knows costs what --oov says (default share, the same as
    interpolate and rescore) and is counted as oov; a text token <unk> gets the
    unknown word's full probability.  Tokens are the words plus one </s> per
    sentence. --carry-over starts each sentence's LSTM state where the
    sentence before it (in its recording with --segments/--utt2spk/
    --recording-pattern, or in the file with kaldi) left it.
    """
    policy = oov_policy(oov_mode, oov_types, oov_logprob)
    carry = CarryOver(carry_over, segments, utt2spk, recording_pattern)
    if len(lm_paths) == 1 and not ngram_paths and weights is None:
        lm = load_lm(lm_paths[0], device=str(pick_device(device)))
        policy = policy or OovPolicy()
        fmt = text_format_for(text_path, text_format, lambda w: not lm.units.is_oov(w))
        result = evaluate_text(lm, text_path, fmt, batch_tokens, per_sentence, policy, carry)
        extra = {"lm": lm.path, "method": lm.method, "oov_policy": policy.to_dict()}
    else:
        if not lm_paths and not ngram_paths and weights is None:
            raise AdmmqError("give --lm, --ngram or --weights")
        scorer, choice = load_tuned_scorer(lm_paths, ngram_paths, weights, policy,
                                           (valid_path, text_format) if valid_path else None,
                                           str(pick_device(device)), batch_tokens, ngram_backend, ngram_case, quiet)
        report_choice(choice)
        fmt = text_format_for(text_path, text_format, lambda w: not scorer.is_oov(w))
        result = evaluate_scorer(scorer, text_path, fmt, per_sentence, carry)
        extra = {"components": [{"kind": k, "path": n, "weight": float(w)}
                                for k, n, w in zip(scorer.kinds, scorer.names, scorer.weights)],
                 "oov_policy": scorer.oov.to_dict(), "interpolation": choice.to_dict()}
        if choice.source in ("em", "equal") and not as_json:
            click.echo(choice.describe())
        if len(scorer.names) == 1:
            extra["lm" if scorer.kinds[0] == "lstm" else "ngram"] = scorer.names[0]
    if carry.active:
        extra["carry_over"] = carry.to_dict()
    if as_json:
        d = result.to_dict()
        d.update(extra)
        d["text"] = text_path
        click.echo(json.dumps(d, sort_keys=True))
    else:
        click.echo(f"{text_path}: {result.summary()}")
