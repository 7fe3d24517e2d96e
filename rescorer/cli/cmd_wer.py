"""``admmq wer``: word error rate of a hypothesis text against a reference text or stm."""

from __future__ import annotations

import json

import click

from rescorer.errors import AdmmqError
from rescorer.nbest.wer import MODES, score_files
from rescorer.scoring.nist_scorer import make_scorer
from rescorer.cli.group import cli
from rescorer.cli.options import json_option, scoring_options


@cli.command("wer")
@click.argument("files", nargs=-1, required=True, metavar="[REF] HYP...",
                type=click.Path(exists=True, dir_okay=False))
@scoring_options
@click.option("--mode", type=click.Choice(MODES), default="all", show_default=True,
              help="Reference utterances without hypothesis: all = all deletions, present = skip, strict = error.")
@click.option("--table-row", metavar="NAME",
              help="Print one markdown table row '| NAME | WER per --columns |' instead of the report.")
@click.option("--columns", default="swbd,callhm,total", show_default=True,
              help="Subsets (and 'total') of --table-row, comma-separated; '-' for one without words.")
@json_option
def wer_command(files, subsets, utt2subset, stm, glm, hyp_filter, acronym_map, mode, table_row, columns, as_json):
    """WER of HYP against REF (both Kaldi text: 'utt-id w1 w2 ...'), per subset and in total.

    With --stm the reference is the stm file and every FILE is a hypothesis.
    Several HYP files (e.g. the text of each rescoring job) are scored as one; an
    utterance in two of them is an error.

    Without --stm/--glm: alignment as NIST sclite -s (same counts). With them: counted
    as hubscr.pl (Kaldi's local/score_sclite.sh) counts. Report lines as Kaldi's
    compute-wer, then sclite's sum table.
    """
    if stm is None and len(files) < 2:
        raise AdmmqError("give REF and at least one HYP file (or --stm STM and HYP files)")
    ref, hyps = (None, list(files)) if stm is not None else (files[0], list(files[1:]))
    scorer = make_scorer(glm, hyp_filter, acronym_map, stm=stm is not None)
    report = score_files(ref, hyps if len(hyps) > 1 else hyps[0], subsets, utt2subset, mode, scorer, stm)
    if as_json:
        click.echo(json.dumps(report.to_dict(), sort_keys=True))
    elif table_row is not None:
        click.echo(report.table_row(table_row, [c for c in columns.split(",") if c]))
    else:
        for line in report.lines():
            click.echo(line)
