"""``admmq wer``: word error rate of a hypothesis text against a reference text."""

from __future__ import annotations

import json

import click

from rescorer.nbest.wer import MODES, score_files
from rescorer.cli.group import cli
from rescorer.cli.options import json_option


@cli.command("wer")
@click.argument("ref", type=click.Path(exists=True, dir_okay=False))
@click.argument("hyp", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--subset", "subsets", multiple=True, metavar="PREFIX=NAME",
              help="Subset by utterance-id prefix (repeatable). Default sw_=swbd en_=callhm when ids match.")
@click.option("--utt2subset", type=click.Path(exists=True, dir_okay=False),
              help="Subsets from a '<utt> <subset>' file instead of prefixes.")
@click.option("--swbd-norm", is_flag=True,
              help="Switchboard/Hub5'00 conventions: lower-case; drop noise tokens, hesitations, partial words.")
@click.option("--mode", type=click.Choice(MODES), default="all", show_default=True,
              help="Reference utterances without hypothesis: all = all deletions, present = skip, strict = error.")
@click.option("--table-row", metavar="NAME",
              help="Print one markdown table row '| NAME | WER per --columns |' instead of the report.")
@click.option("--columns", default="swbd,callhm,total", show_default=True,
              help="Subsets (and 'total') of --table-row, comma-separated; '-' for one without words.")
@json_option
def wer_command(ref, hyp, subsets, utt2subset, swbd_norm, mode, table_row, columns, as_json):
    """WER of HYP against REF (both Kaldi text: 'utt-id w1 w2 ...'), per subset and in total.

    Several HYP files (e.g. the text of each rescoring job) are scored as one; an
    utterance in two of them is an error.

    Alignment as NIST sclite (same counts); report line as Kaldi's compute-wer.
    """
    report = score_files(ref, list(hyp) if len(hyp) > 1 else hyp[0], subsets, utt2subset, mode, swbd_norm)
    if as_json:
        click.echo(json.dumps(report.to_dict(), sort_keys=True))
    elif table_row is not None:
        click.echo(report.table_row(table_row, [c for c in columns.split(",") if c]))
    else:
        for line in report.lines():
            click.echo(line)
