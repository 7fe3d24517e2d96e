"""Options several commands share."""

from __future__ import annotations

import click

quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress display or status lines.")
device_option = click.option("--device", default="cpu", show_default=True,
                             help="Where to run: cpu, cuda, cuda:N or auto (CUDA when available).")
batch_tokens_option = click.option("--batch-tokens", type=click.IntRange(min=16), default=8192,
                                   show_default=True,
                                   help="Scoring batches hold at most this many padded tokens (prefix-shared "
                                        "rescoring: tree nodes stepped at once, sentences per tree): the memory bound.")
text_format_option = click.option("--text-format", type=click.Choice(["plain", "kaldi"]), default="plain",
                                  show_default=True,
                                  help="plain: one sentence a line; kaldi: 'utt-id w1 w2 ...' lines.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
