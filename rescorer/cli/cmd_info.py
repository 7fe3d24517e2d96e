"""``admmq info``: what an LM file is and how big it is."""

from __future__ import annotations

import json

import click

from rescorer.pack.bitpack import BITS_CHOICES, parse_bits
from rescorer.report.model_size import describe_lm_file
from rescorer.cli.group import cli
from rescorer.cli.options import json_option, lm_option
from rescorer.cli.renames import OldPositional, new_or_old_form


@cli.command("info")
@lm_option("LM to describe: a packed file, a training checkpoint or a run directory.", required=False)
@click.argument("lm_file", cls=OldPositional, type=click.Path(exists=True))
@click.option("--bits", default="auto", show_default=True, metavar="|".join(BITS_CHOICES),
              help="For a training checkpoint: the export width to size it at.")
@json_option
def info_command(lm_path, lm_file, bits, as_json):
    """Method, quantization set, tying, bits per matrix, parameters and sizes of the LM.

    Sizes: the whole packed file (for a checkpoint: what `admmq export --bits
    BITS` would write), the fp32 model (all parameters at 32 bits) and the
    paper's count (weight matrices only), each with its compression ratio.
    """
    lm_file = new_or_old_form("info", lm_path, lm_file, "--lm")
    report = describe_lm_file(lm_file, parse_bits(bits))
    if as_json:
        click.echo(json.dumps(report.to_dict(), sort_keys=True))
    else:
        click.echo(report.text())
