"""``admmq nbest convert``: Kaldi n-best directory <-> single n-best file."""

from __future__ import annotations

from pathlib import Path

import click

from ..nbest import ARCHIVE_FORMATS, convert_nbest
from . import cli


@cli.group("nbest")
def nbest_group() -> None:
    """Kaldi n-best lists: the n-best directory and admmq's single-file form."""


@nbest_group.command("convert")
@click.argument("src", type=click.Path(exists=True))
@click.argument("dest", type=click.Path())
@click.option("--to", "to", type=click.Choice(["auto", "file", "dir"]), default="auto", show_default=True,
              help="Form of DEST; auto = the other form than SRC.")
@click.option("--archive", type=click.Choice(ARCHIVE_FORMATS), default="text", show_default=True,
              help="Archives of a DEST directory: text (ark,t), binary (ark) or scp (binary NAME.ark + NAME.scp).")
@click.option("--words-txt", type=click.Path(exists=True, dir_okay=False),
              help="Symbol table: to read 'words' id archives, and to write them into a DEST directory.")
def convert_command(src, dest, to, archive, words_txt):
    """Convert the n-best list SRC (directory or file) into DEST."""
    nb, form = convert_nbest(src, dest, to, archive, words_txt)
    click.echo(f"{Path(src)} -> {Path(dest)} ({form}): {nb.num_utterances} utterances, {len(nb)} hypotheses, "
               f"costs: {' '.join(nb.cost_names()) or 'none'}")
