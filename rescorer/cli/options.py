"""Options several commands share."""

from __future__ import annotations

from typing import Callable, Optional

import click

from rescorer.fileio import kaldi_text_notice
from rescorer.scoring.kaldi_filter import HYP_FILTERS

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
    looks like a Kaldi text file (:func:`rescorer.fileio.kaldi_text_notice`; ``known``: the LM's words)."""
    if fmt is not None:
        return fmt
    note = kaldi_text_notice(path, known)
    if note:
        click.echo(f"admmq: notice: {note}", err=True)
    return "plain"
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")


_SCORING = [
    click.option("--subset", "subsets", multiple=True, metavar="PREFIX=NAME",
                 help="WER subset by utterance-id prefix (repeatable). Default sw_=swbd en_=callhm when ids match."),
    click.option("--utt2subset", type=click.Path(exists=True, dir_okay=False),
                 help="WER subsets from a '<utt> <subset>' file instead of prefixes."),
    click.option("--stm", type=click.Path(exists=True, dir_okay=False),
                 help="Reference as a NIST stm file (Kaldi's data/eval2000/stm) instead of Kaldi text; utterance "
                      "ids <file>-<channel>_<begin*100>-<end*100> as Kaldi's eval2000 data prep makes them. "
                      "Counts as hubscr.pl does (see --glm)."),
    click.option("--glm", type=click.Path(exists=True, dir_okay=False),
                 help="NIST GLM (Kaldi's data/eval2000/glm): count as hubscr.pl -h hub5 does, with csrfilt.sh -dh "
                      "on both sides and sclite -F -D (optional words, alternations, fragments, no case)."),
    click.option("--hyp-filter", type=click.Choice(HYP_FILTERS), default="none", show_default=True,
                 help="With --glm/--stm: kaldi-swbd drops from the hypotheses what Kaldi's "
                      "egs/swbd/s5c/local/score_sclite.sh drops (noise, <unk>, hesitations, partial words)."),
    click.option("--acronym-map", type=click.Path(exists=True, dir_okay=False),
                 help="With --glm/--stm: split hypothesis acronyms with Kaldi's data/local/dict_nosp/acronyms.map "
                      "(as local/map_acronyms_ctm.py)."),
]


def scoring_options(f):
    """The WER scoring options of ``admmq wer`` and ``admmq rescore``: subsets, stm, GLM, hypothesis filter."""
    for opt in reversed(_SCORING):
        f = opt(f)
    return f
