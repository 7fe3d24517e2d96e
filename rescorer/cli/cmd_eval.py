"""``admmq eval``: perplexity of a text under an LM."""

from __future__ import annotations

import json

import click

from ..checkpoint import load_lm
from ..evaluate import evaluate_text
from ..train import pick_device
from . import cli
from .options import batch_tokens_option, device_option, json_option, quiet_option, text_format_option


@cli.command("eval")
@click.option("--lm", "lm_path", required=True, type=click.Path(exists=True),
              help="LM: a checkpoint (best.pt/last.pt), a training directory (its best.pt) or a packed file.")
@click.option("--text", "text_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Text to score (plain or gzip).")
@text_format_option
@click.option("--per-sentence", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write '<key> <cost>' per sentence, cost = -ln P(words </s>) (nats).")
@batch_tokens_option
@device_option
@json_option
@quiet_option
def eval_command(lm_path, text_path, text_format, per_sentence, batch_tokens, device, as_json, quiet):
    """Perplexity, word count and OOV rate of TEXT under an LM.

    For a quantized checkpoint this is the quantized model's perplexity.
    Tokens are the words plus one </s> per sentence; out-of-vocabulary words
    are scored as the unknown word.
    """
    lm = load_lm(lm_path, device=str(pick_device(device)))
    result = evaluate_text(lm, text_path, text_format, batch_tokens, per_sentence)
    if as_json:
        d = result.to_dict()
        d.update({"lm": lm.path, "method": lm.method, "text": text_path})
        click.echo(json.dumps(d, sort_keys=True))
    else:
        click.echo(f"{text_path}: {result.summary()}")
