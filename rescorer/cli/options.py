"""Options several commands share."""

from __future__ import annotations

from typing import Callable, Optional

import click

from rescorer.fileio import kaldi_text_notice
from rescorer.scoring.kaldi_filter import HYP_FILTERS

quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress display or status lines.")
device_option = click.option("--device", default=None, show_default="auto",
                             help="Where to run: cpu, cuda, cuda:N or auto (CUDA when available, else the CPU; "
                                  "train --resume: the run's own).")
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


def lm_option(help: str, required: bool = True):
    """``--lm``: the one LSTM LM a command reads (eval, interpolate and rescore take several: lm_options).
    ``required=False``: the command also takes the LM in its old positional form and checks it itself."""
    return click.option("--lm", "lm_path", required=required, type=click.Path(exists=True),
                        help=help + ("" if required else " (required)"))



def nj_option(help: str, **kwargs):
    """``--nj``: how many jobs (processes or parts) at once, as Kaldi's scripts say it."""
    return click.option("--nj", type=click.IntRange(min=1), help=help, **kwargs)


# ---- mixed precision: `admmq sensitivity` and `admmq train --allocation auto` share these
WIDTHS = "1,2,3,4,8"


def metric_option(file_ok: bool = False):
    """``--metric``: how a matrix's sensitivity is measured (``file_ok``: or a table measured before)."""
    from rescorer.quant.sensitivity import METRICS  # here: the scoring commands import no quantization code

    return click.option(
        "--metric", default="kl", show_default=True,
        type=click.STRING if file_ok else click.Choice(METRICS), metavar="kl|hessian|nas|FILE" if file_ok else None,
        help="Sensitivity metric. kl: mean KL(p_fp || p_q) per token with one matrix quantized; hessian: "
             "Tr(C)/n * ||Q_b(W) - W||^2, C the curvature of --trace; nas: -ln pi of a differentiable search "
             "over the tables under a size penalty (lower = preferred)"
             + ("; FILE: the JSON table of 'admmq sensitivity -o'." if file_ok else "."))


widths_option = click.option(
    "--widths", default=WIDTHS, show_default=True,
    help="Candidate widths (tables: 1 pm1, 2 pm12, 3 pm124, 4 int:4, 8 int:8) and/or tables by name "
         "(0pm1, pow2:1, int:3, ...).")
probes_option = click.option(
    "--probes", type=click.IntRange(min=2), default=32, show_default=True,
    help="hessian: least trace samples; more are drawn (up to 256; sensitivity: --max-probes) until every "
         "standard error is at most 10% of its trace.")
budget_bits_option = click.option(
    "--budget-bits", type=click.FloatRange(min=0, min_open=True), default=None,
    help="Stored bits per quantized weight (codes only) the allocation aims at [default: 2.0, unless "
         "--budget-mb is given].")
sensitivity_sentences_option = click.option(
    "--sensitivity-sentences", type=click.IntRange(min=0), default=0, show_default=True,
    help="Measure the sensitivity on the first N validation sentences only (0 = all).")


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
