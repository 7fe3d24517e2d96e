"""Options several commands share."""

from __future__ import annotations

from typing import Callable, Optional

import click

from ..corpus import kaldi_text_notice

quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress display or status lines.")
device_option = click.option("--device", default="cpu", show_default=True,
                             help="Where to run: cpu, cuda, cuda:N or auto (CUDA when available).")
batch_tokens_option = click.option("--batch-tokens", type=click.IntRange(min=16), default=8192,
                                   show_default=True,
                                   help="Scoring batches hold at most this many padded tokens (prefix-shared "
                                        "rescoring: tree nodes stepped at once, sentences per tree): the memory bound.")
text_format_option = click.option("--text-format", type=click.Choice(["plain", "kaldi"]), default=None,
                                  help="plain: one sentence a line; kaldi: 'utt-id w1 w2 ...' lines [default: "
                                       "plain, with a notice when a text file looks like Kaldi text].")


def text_format_for(path, fmt: Optional[str], known: Optional[Callable[[str], bool]] = None) -> str:
    """``fmt`` when given (--text-format); else ``plain``, with a one-line notice on stderr when ``path``
    looks like a Kaldi text file (:func:`rescorer.corpus.kaldi_text_notice`; ``known``: the LM's words)."""
    if fmt is not None:
        return fmt
    note = kaldi_text_notice(path, known)
    if note:
        click.echo(f"admmq: notice: {note}", err=True)
    return "plain"
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
