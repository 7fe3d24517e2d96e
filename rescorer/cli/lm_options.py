"""Options for commands that score with LMs: n-grams, weights, backend, OOV policy, LSTM speed, carry-over."""

from __future__ import annotations

import math
from typing import Optional

import click

from rescorer.ngram.mixture import OOV_MODES, OovPolicy
from rescorer.lm.batch_control import PRECISIONS
from rescorer.ngram.ngram_lm import BACKENDS, CASES
from rescorer.lm.word_scores import NeuralOptions
from rescorer.nbest.recordings import CARRY_OVER_MODES, CarryOver

lms_option = click.option(
    "--lm", "lm_paths", multiple=True, type=click.Path(exists=True),
    help="LSTM LM (checkpoint, training directory or packed file); repeat for several.")
ngram_option = click.option(
    "--ngram", "ngram_paths", multiple=True, type=click.Path(exists=True, dir_okay=False),
    help="N-gram LM: ARPA (plain or .gz), or a kenlm binary with the kenlm backend; repeat for several.")
weights_option = click.option(
    "--weights", default=None,
    help="Interpolation weights: a file from 'admmq interpolate' (components LSTMs first, then n-grams; "
         "without --lm/--ngram its own paths are loaded) or comma-separated numbers, one per LM.")


def ngram_backend_options(f):
    f = click.option("--ngram-case", type=click.Choice(CASES), default="keep", show_default=True,
                     help="Map text words to this case before n-gram lookup (for an upper-case ARPA).")(f)
    f = click.option("--ngram-backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
                     help="kenlm (its Python module), builtin (numpy ARPA reader), auto: kenlm when installed.")(f)
    return f


def oov_options(f):
    f = click.option("--oov-logprob", type=float, default=None,
                     help=f"--oov fixed: natural-log probability of such a word [default: ln 1e-7 = "
                          f"{math.log(1e-7):.3f}].")(f)
    f = click.option("--oov-types", type=click.IntRange(min=1), default=None,
                     help="--oov share: number of unseen word types the unknown word's probability is shared "
                          "among [default: 10000].")(f)
    f = click.option("--oov", "oov_mode", type=click.Choice(OOV_MODES), default=None,
                     help="Cost of a word no LM knows: share = P(<unk>|h)/types, fixed = --oov-logprob, "
                          "unk = P(<unk>|h) [default: the weights file's, else share].")(f)
    return f


def lm_scoring_options(f):
    """--ngram-backend, --ngram-case and the --oov options."""
    return ngram_backend_options(oov_options(f))


def oov_policy(oov_mode: Optional[str], oov_types: Optional[int], oov_logprob: Optional[float]) -> Optional[OovPolicy]:
    """The policy the options ask for; None when none was given (the weights file's or the default applies)."""
    if oov_mode is None and oov_types is None and oov_logprob is None:
        return None
    d = OovPolicy()
    return OovPolicy(mode=oov_mode or d.mode, types=oov_types if oov_types is not None else d.types,
                     logprob=oov_logprob if oov_logprob is not None else d.logprob)


def neural_speed_options(f):
    """--prefix-sharing/--no-prefix-sharing, --int8, --precision, --normalize-probs, --threads (how the LSTM
    computes)."""
    f = click.option("--normalize-probs/--no-normalize-probs", default=True, show_default=True,
                     help="Divide by the softmax normaliser (exact). --no-normalize-probs takes a word's logit as "
                          "its log-probability: for self-normalised models ('admmq train --self-norm'), much "
                          "faster, scores change (docs/rescoring.md; Kaldi's rnnlm option of that name).")(f)
    f = click.option("--threads", type=click.IntRange(min=0), default=1, show_default=True,
                     help="CPU threads for the LSTM. 1 runs the compiled CPU kernels (the fastest path; run "
                          "parallel jobs with --job for more cores); 0: PyTorch's default (docs/rescoring.md).")(f)
    f = click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
                     help="LSTM arithmetic: fp32 (exact), tf32 (CUDA TF32 matmuls) or bf16 (autocast); the last "
                          "two change scores slightly (docs/rescoring.md).")(f)
    f = click.option("--int8", is_flag=True,
                     help="CPU: int8 output layer (a quantized model's weights exactly, 8-bit activations); "
                          "on PyTorch, slower than the default compiled kernels; scores change slightly "
                          "(docs/rescoring.md).")(f)
    f = click.option("--prefix-sharing/--no-prefix-sharing", default=True, show_default=True,
                     help="Score each distinct hypothesis prefix once (a prefix tree); same scores, fewer steps.")(f)
    return f


def neural_options(prefix_sharing: bool, int8: bool, precision: str, threads: int = 1,
                   normalize_probs: bool = True) -> NeuralOptions:
    """The options as :class:`NeuralOptions` (PyTorch's threads are set where PyTorch scores:
    :func:`rescorer.ngram.scorers.load_components`)."""
    return NeuralOptions(prefix_sharing=prefix_sharing, int8=int8, precision=precision, normalize=normalize_probs,
                         threads=threads)


def report_choice(choice) -> None:
    """The notice and warning of a :class:`rescorer.ngram.scorers.WeightChoice`, one line each on stderr."""
    if choice.notice:
        click.echo(f"admmq: notice: {choice.notice}", err=True)
    if choice.warning:
        click.echo(f"admmq: warning: {choice.warning}", err=True)


def carry_over_options(f):
    """--carry-over, --segments, --utt2spk, --recording-pattern (cross-utterance LSTM state)."""
    f = click.option("--recording-pattern", default=None, metavar="REGEX",
                     help="--carry-over recording: the recording (or speaker) of an utterance id is the first "
                          "group of REGEX matched at its start (the whole match without a group), e.g. "
                          "'^(.*)_[^_]*$'; utterances in the list's order.")(f)
    f = click.option("--utt2spk", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="--carry-over recording: chains per speaker of Kaldi's utt2spk, in the list's order.")(f)
    f = click.option("--segments", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="--carry-over recording: chains per recording of Kaldi's segments file, in start-time "
                          "order.")(f)
    f = click.option("--carry-over", type=click.Choice(CARRY_OVER_MODES), default="none", show_default=True,
                     help="Start each utterance's LSTM state from the end of the previous utterance's first-pass "
                          "best hypothesis: within a recording/speaker (recording), or in one chain through the "
                          "list with Kaldi's padding (kaldi, as steps/pytorchnn); none: from zeros (docs/kaldi.md).")(f)
    return f

