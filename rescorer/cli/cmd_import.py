"""``admmq import``: an LSTM LM of PyTorch's word_language_model example (or Kaldi's steps/pytorchnn) as a checkpoint."""

from __future__ import annotations

import json

import click

from rescorer.train.import_rnnmodel import import_rnnmodel
from rescorer.progress import say
from rescorer.cli.group import cli
from rescorer.cli.options import json_option, quiet_option
from rescorer.cli.renames import dropped


@cli.command("import")
@click.argument("weights", type=click.Path(exists=True, dir_okay=False))
@click.option("--vocab", "vocab_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The model's vocabulary in row order: one word a line (the example's Dictionary.idx2word) or "
                   "'word index' lines (Kaldi steps/pytorchnn).")
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False),
              help="admmq checkpoint to write (atomically).")
@click.option("--unk-symbol", default=None,
              help="The vocabulary's unknown word; a vocabulary with <UNK> but no <unk> uses <UNK> [default: <unk>].")
@click.option("--sent-boundary", default=None, metavar="SYM|START,END",
              help="The model's sentence boundary: one symbol for both ends (Kaldi steps/pytorchnn's option, "
                   "'<s>' there) or START,END [default: <s> for a 'word index' vocabulary with <s> (Kaldi's "
                   "words.txt), else <eos>, else <s>,</s>].")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None, hidden=True)
@json_option
@quiet_option
def import_command(weights, vocab_path, out, unk_symbol, sent_boundary, dropout, as_json, quiet):
    """Turn WEIGHTS, the state_dict of an LSTM RNNModel (PyTorch's word_language_model example, Kaldi's
    steps/pytorchnn), into an admmq checkpoint for eval, rescore, export and train --init-from (whose
    --dropout sets the dropout to train with).

    WEIGHTS is read with torch.load(weights_only=True) (save model.state_dict(), not the pickled model).
    The sentence boundary (--sent-boundary) is stored in the checkpoint; see docs/training.md and
    docs/kaldi.md.
    """
    dropped("import", "--dropout", dropout)
    say(f"importing {weights} with vocabulary {vocab_path}", quiet)
    result = import_rnnmodel(weights, vocab_path, out, unk_symbol, dropout or 0.0, sent_boundary)
    click.echo(json.dumps(result.to_dict(), sort_keys=True) if as_json else result.summary())
