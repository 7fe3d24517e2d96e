"""``admmq report``: the results table of a recipe's experiment directory."""

from __future__ import annotations

import click

from rescorer.report.results import render_results, write_results
from rescorer.cli.group import cli
from rescorer.cli.options import quiet_option


@cli.command("report")
@click.argument("exp_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None,
              help="Write the Markdown report here (atomically) [default: print only].")
@click.option("--title", default="Results", help="Heading of the report.")
@click.option("--note", default="", help="A paragraph under the heading (what was run, on what data).")
@quiet_option
def report_command(exp_dir, out, title, note, quiet):
    """Markdown results of a recipe's EXP_DIR: size, compression, PPL, PPL with the 4-gram and WER
    per subset of every trained row, beside the paper's Table 1.

    Reads only what the stages wrote (layout in rescorer/report/results.py); missing
    parts are shown as '–'. Prints the report unless --quiet.
    """
    text = write_results(exp_dir, out, title, note) if out else render_results(exp_dir, title, note)
    if not quiet:
        click.echo(text)
