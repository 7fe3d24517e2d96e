"""``admmq nbest convert|split|merge``: n-best list forms, and rescoring jobs."""

from __future__ import annotations

from pathlib import Path

import click

from ..nbest import ARCHIVE_FORMATS, convert_nbest
from ..nbest_shards import merge_nbest, split_nbest
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


@nbest_group.command("split")
@click.argument("src", type=click.Path(exists=True))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("-n", "--parts", type=click.IntRange(min=1), required=True, help="Number of jobs.")
@click.option("--to", "to", type=click.Choice(["auto", "file", "dir"]), default="auto", show_default=True,
              help="Form of each part; auto = the form of SRC.")
@click.option("--archive", type=click.Choice(ARCHIVE_FORMATS), default="text", show_default=True,
              help="Archives of directory parts.")
@click.option("--words-txt", type=click.Path(exists=True, dir_okay=False), help="Symbol table (id archives).")
def split_command(src, out_dir, parts, to, archive, words_txt):
    """Split SRC by utterance into parts OUT_DIR/1, OUT_DIR/2, ... (contiguous blocks, deterministic)."""
    paths = split_nbest(src, out_dir, parts, to, archive, words_txt)
    click.echo(f"{src} -> {len(paths)} parts in {out_dir}")


@nbest_group.command("merge")
@click.argument("dest", type=click.Path())
@click.argument("srcs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--to", "to", type=click.Choice(["auto", "file", "dir"]), default="auto", show_default=True,
              help="Form of DEST; auto = the form of the first SRC.")
@click.option("--archive", type=click.Choice(ARCHIVE_FORMATS), default="text", show_default=True,
              help="Archives of a DEST directory.")
@click.option("--words-txt", type=click.Path(exists=True, dir_okay=False), help="Symbol table (id archives).")
def merge_command(dest, srcs, to, archive, words_txt):
    """Concatenate the n-best lists SRCS (jobs in order, e.g. each job's nbest.txt) into DEST."""
    nb = merge_nbest(srcs, dest, to, archive, words_txt)
    click.echo(f"{len(srcs)} parts -> {dest}: {nb.num_utterances} utterances, {len(nb)} hypotheses")
