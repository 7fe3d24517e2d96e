"""``admmq train``: train (or resume) an LSTM LM, full precision or quantized."""

from __future__ import annotations

import os

import click

from rescorer.errors import AdmmqError
from rescorer.quant import METHODS, MethodConfig
from rescorer.quant.method import ADMM_SCHEDULES, EXTRAGRADIENTS, WARM_STARTS, describe_schedule, short_number
from rescorer.quant.mixed import parse_bits_list
from rescorer.quant.mixed_plan import bits_summary, write_plan
from rescorer.train.config import ADAM_LR, OPTIMIZERS, SCHEDULES
from rescorer.train.options import TrainOptions, resolve_options
from rescorer.train.parallel import launch
from rescorer.cli.group import cli
from rescorer.cli.options import (batch_tokens_option, budget_bits_option, device_option, metric_option, nj_option,
                                  probes_option, quiet_option, sensitivity_sentences_option, text_format_for,
                                  text_format_option, widths_option)


class AdmmInterval(click.ParamType):
    """``K/epoch`` (K ADMM iterations per epoch, evenly), ``epoch`` (= ``1/epoch``, the paper) or a positive
    number N of mini-batches (the corpus-size dependent form); returns ``(per_epoch, batches)``."""

    name = "K/epoch|epoch|N"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        text = str(value).strip().lower()
        if text == "epoch":
            return (1, 0)
        per_epoch = text.endswith("/epoch")
        try:
            n = int(text[: -len("/epoch")] if per_epoch else text)
        except ValueError:
            n = -1
        if n < 1:
            self.fail(f"{value!r} is neither K/epoch, epoch nor a positive number of mini-batches", param, ctx)
        return (n, 0) if per_epoch else (0, n)


@cli.command("train")
@click.option("--train", "train_path", type=click.Path(exists=True, dir_okay=False), help="Training text.")
@click.option("--valid", "valid_path", type=click.Path(exists=True, dir_okay=False),
              help="Validation text (learning-rate schedule, best epoch).")
@click.option("-o", "--out", type=click.Path(file_okay=False), help="Run directory (best.pt, last.pt, logs).")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Continue the run in this directory from its last.pt (no other flags needed).")
@text_format_option
@click.option("--method", type=click.Choice(sorted(METHODS)), default="fp",
              help="Training method: fp (full precision), admm (the paper), bin / bin-lin (binarized LSTM LM "
                   "baselines), multibit (alternating multi-bit).")
# quantized methods
@click.option("--qset", default="pm1", show_default=True,
              help="admm quantization set: pm1 {±1}, 0pm1 {0,±1}, pm12 {±1,±2}, pm124 {±1,±2,±4}, "
                   "pow2:n {0,±1,…,±2^n}, int:b {0,±1,…,±(2^(b-1)-1)}; each scaled by α.")
@click.option("--tying", type=click.Choice(["layer", "node", "none"]), default="layer", show_default=True,
              help="admm: one α per weight matrix (layer), per output row (node), or no quantization (none).")
@click.option("--admm-schedule", "admm_schedule_name", type=click.Choice(["auto", *ADMM_SCHEDULES]), default="auto", show_default=True,
              help="admm: the settings of the seven options below, --alpha-lr, --optimizer and --lr, unless given (every count in "
                   "epochs): " + "; ".join(f"{n} = {describe_schedule(n)}" for n in ADMM_SCHEDULES)
                   + " (trained-adam is the fastest from a trained model, RESULTS_admm.md); auto = with --init-from "
                   "trained-adam; else paper.")
@click.option("--gamma", type=click.FloatRange(min=0), default=None,
              help="admm penalty γ of eq. 14 [default: the schedule's].")
@click.option("--gamma-growth", type=click.FloatRange(min=0, min_open=True), default=None,
              help="admm: γ's growth factor per epoch (per ADMM iteration with --admm-interval N mini-batches); "
                   "1 = fixed γ, as in the paper [default: the schedule's].")
@click.option("--gamma-max", type=click.FloatRange(min=0), default=None,
              help="admm: cap for γ under --gamma-growth (0 = no cap) [default: the schedule's].")
@click.option("--gamma-restart-after", type=click.FloatRange(min=0), default=None,
              help="admm: after this many epochs (ADMM iterations with --admm-interval N mini-batches) start γ "
                   "again from --gamma (once; 0 = never), growing by --gamma-restart-growth from then on "
                   "[default: the schedule's].")
@click.option("--gamma-restart-growth", type=click.FloatRange(min=0), default=None,
              help="admm: γ's growth factor after the restart (0 = --gamma-growth) [default: the schedule's].")
@click.option("--thaw/--no-thaw", default=None,
              help="admm: when an epoch gains under --min-improvement with the codes frozen (its last ADMM "
                   "iteration changed none), start γ again from --gamma (growing by --gamma-restart-growth) "
                   "instead of halving the rate; the next epoch is not judged (epoch-unit schedules) [default: off].")
@click.option("--admm-interval", type=AdmmInterval(), default=None,
              help="admm: run the quantization and multiplier updates (eqs. 18-21) K times per epoch (K/epoch), "
                   "once per epoch (epoch, the paper) or every N mini-batches [default: the schedule's].")
@click.option("--warm-start", type=click.Choice(WARM_STARTS), default=None,
              help="admm: after each ADMM iteration set Θ to Q, λ keeping Θ + λ (quantized), move Θ with the "
                   "penalty's centre Q − λ (centre: drifts, for the study), or leave it (none) "
                   "[default: the schedule's].")
@click.option("--extragradient", type=click.Choice(EXTRAGRADIENTS), default=MethodConfig.extragradient,
              show_default=True,
              help="admm extra-gradient step (eq. 17): past = one pass per batch, look-ahead with the previous "
                   "gradient; full = two passes (standard form); penalty = look-ahead on the penalty only; none.")
@click.option("--eta1", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="admm extra-gradient look-ahead step η₁ as a multiple of the learning rate (η₂).")
@click.option("--alpha-init", type=click.Choice(["one", "mean"]), default="one", show_default=True,
              help="admm: first α of each table, 1 (the paper) or mean|Θ| (used with --projection-start given).")
@click.option("--alpha-lr", type=click.FloatRange(min=0), default=None,
              help="admm: Adam's rate for a factor per matrix on α trained on the loss; the deployed α is eq. "
                   "20's times it (0 = eq. 20's alone) [default: the schedule's].")
@click.option("--linear-layers/--no-linear-layers", default=None,
              help="admm: add Bin+Lin's two partially quantized linear layers (after the embedding and before "
                   "the output layer: a quantized matrix, full-precision per-output scales and biases; layer "
                   "{±1} 1×200 on PTB: 31.3× smaller than the fp32 STD instead of 32.1×) [default: on for "
                   "--tying layer --qset pm1 or 0pm1 with --init-from, else off].")
@click.option("--projection-start", type=click.Choice(["exact", "given"]), default="exact", show_default=True,
              help="admm projection: start the α/code alternation at the exact optimum over α, or at the "
                   "previous α (plain alternation; may stall in a local optimum).")
@click.option("--keep-fp", multiple=True, metavar="NAME",
              help="Leave this weight matrix in full precision (repeatable), e.g. embedding.weight.")
@click.option("--init-from", type=click.Path(exists=True), default=None,
              help="Start from this checkpoint's full-precision weights Θ (and its vocabulary and model shape), "
                   "e.g. quantize a trained fp LM with admm.")
@click.option("--teacher", type=click.Path(exists=True), default=None,
              help="Knowledge distillation: mix this trained LM's next-word distributions into the objective "
                   "(same vocabulary) [default: the --init-from model when a quantized method starts from it].")
@click.option("--distill-weight", type=click.FloatRange(0, 1), default=None,
              help="The teacher's share β of the objective, (1 − β)·CE(data) + β·CE(teacher); 0 = no "
                   "distillation [default: 0.5 with a teacher].")
@click.option("--allocation", default=None, metavar="auto|FILE",
              help="admm mixed precision: one table per matrix, from an allocation file ('MATRIX BITS' lines) or "
                   "chosen by sensitivity (--metric on --valid with the --init-from LM) under --budget-bits or "
                   "--budget-mb (auto; needs --init-from or a --metric table file). Tables: 1 pm1, 2 pm12, "
                   "3 pm124, 4 int:4, 8 int:8.")
@metric_option(file_ok=True)
@budget_bits_option
@click.option("--budget-mb", type=click.FloatRange(min=0, min_open=True), default=None,
              help="--allocation auto: MiB (2^20 bytes) of quantized weight codes, paper-style.")
@widths_option
@sensitivity_sentences_option
@probes_option
@click.option("--multibit-bits", type=click.IntRange(1, 8), default=2, show_default=True,
              help="multibit: bits per weight.")
@click.option("--act-bits", type=click.IntRange(0, 8), default=0, show_default=True,
              help="multibit: also quantize the LSTM inputs x_t and h_{t-1} to this many bits (0 = off).")
@click.option("--cycles", type=click.IntRange(min=0), default=2, show_default=True,
              help="multibit: alternating cycles after the greedy start.")
# vocabulary / units
@click.option("--units", type=click.Choice(["word", "spm"]), default="word",
              help="Model units: words, or SentencePiece subwords (scores stay per word sequence).")
@click.option("--words-txt", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Kaldi words.txt to use as the vocabulary [default: build it from the training text].")
@click.option("--vocab-size", type=click.IntRange(min=0), default=0,
              help="Keep the most frequent words only (softmax outputs incl. </s> and <unk>; 0 = all).")
@click.option("--min-count", type=click.IntRange(min=1), default=1, help="Drop words seen fewer times.")
@click.option("--unk-symbol", default="<unk>", help="Symbol for out-of-vocabulary words.")
@click.option("--spm-model", type=click.Path(exists=True, dir_okay=False), default=None,
              help="SentencePiece model for --units spm (default: train one on the training text).")
@click.option("--spm-vocab-size", type=click.IntRange(min=16), default=2000,
              help="Pieces of the SentencePiece model trained when --spm-model is not given.")
# model
@click.option("--embed-dim", type=click.IntRange(min=1), default=200, help="Embedding size.")
@click.option("--hidden-dim", type=click.IntRange(min=1), default=200, help="LSTM units per layer.")
@click.option("--layers", type=click.IntRange(min=1), default=1, help="LSTM layers.")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Dropout rate [default: 0; with --init-from, the checkpoint's, at least 0.3 when quantizing "
                   "(RESULTS_admm.md)].")
@click.option("--tie-embeddings", is_flag=True, help="Share the embedding and output matrices.")
# optimisation
@click.option("--epochs", type=click.IntRange(min=0), default=None,
              help="Maximum epochs [default: fp 10, admm/bin/bin-lin 50, multibit 20; with --resume: the run's "
                   "own].")
@click.option("--batch-size", type=click.IntRange(min=1), default=10, help="Sentences (or streams) per batch.")
@click.option("--bptt", type=click.IntRange(min=0), default=0,
              help="0: sentence-level training (each sentence from a zero state, as rescoring scores it); "
                   "N>0: streaming mode, continuous text in chunks of N steps with the state carried.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None,
              help="Full-precision step: sgd (the paper) or adam [default: the admm schedule's (adam under "
                   "trained-adam), else sgd].")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help=f"Initial learning rate [default: the admm schedule's (trained-adam: "
                   f"{short_number(ADMM_SCHEDULES['trained-adam']['lr'])}); else adam "
                   f"{ADAM_LR:g}; sgd 1, with --init-from the rate the checkpoint's best epoch was trained with "
                   f"(1 if its log does not say)].")
@click.option("--momentum", type=click.FloatRange(min=0), default=0.0, help="SGD momentum.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=0.0, help="L2 weight decay.")
@click.option("--clip", type=click.FloatRange(min=0), default=5.0, help="Gradient-norm clipping (0 = off).")
@click.option("--loss-norm", type=click.Choice(["sentence", "token"]), default="sentence",
              help="Divide the batch's summed loss by its sentences (the paper's setting for lr 1) or tokens.")
@click.option("--self-norm", type=click.FloatRange(min=0), default=0.0,
              help="Self-normalisation: add this weight times (log Z)^2 per token to the training objective, so "
                   "that the softmax normaliser stays near 1 and 'admmq rescore --no-normalize-probs' may skip it "
                   "(0.1 is Devlin et al.'s value; see docs/rescoring.md).")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=None,
              help="newbob: halve the lr once validation stalls, then every epoch, stop at the next stall; "
                   "plateau: halve at each stall, never stop early; constant: never halve "
                   "[default: newbob for fp, plateau for the quantized methods].")
@click.option("--lr-decay", type=click.FloatRange(0, 1, min_open=True), default=0.5, help="LR factor at a stall.")
@click.option("--min-improvement", type=click.FloatRange(min=0), default=None,
              help="Relative validation-perplexity improvement below which the epoch counts as a stall "
                   "[default: 0.003; the admm schedule's (0.01 under trained-adam)].")
@click.option("--restore-best/--no-restore-best", default=None,
              help="After an epoch whose validation perplexity is worse than the best so far, go on from the "
                   "best epoch's weights, optimizer and method state (at the rate the schedule sets) "
                   "[default: on for the quantized methods, off for fp].")
@click.option("--seed", type=int, default=1, help="Random seed (initialisation, sentence order, dropout).")
@click.option("--max-sentences", type=click.IntRange(min=0), default=0,
              help="Train on the first N sentences only (0 = all).")
@click.option("--save-every", type=click.IntRange(min=0), default=0,
              help="Also checkpoint last.pt every N batches within an epoch (0 = at epoch ends only).")
@device_option
@click.option("--tensorboard", "tensorboard_dir", type=click.Path(file_okay=False), default=None,
              help="Also write each epoch's figures as TensorBoard scalars into this directory "
                   "(needs admmq[tensorboard]).")
@batch_tokens_option
@nj_option("Data-parallel processes on this machine (gloo on CPU, nccl on GPUs, one GPU each); each global batch "
           "of --batch-size sentences is split between them. Under torchrun leave it at 1.", default=1,
           show_default=True)
@quiet_option
def train_command(train_path, valid_path, out, resume_dir, text_format, method, qset, tying, admm_schedule_name,
                  gamma, gamma_growth, gamma_max, gamma_restart_after, gamma_restart_growth, thaw, admm_interval,
                  warm_start, extragradient, eta1, alpha_init, alpha_lr, linear_layers, projection_start, keep_fp,
                  init_from, teacher, distill_weight, allocation, metric, budget_bits, budget_mb, widths,
                  sensitivity_sentences, probes, multibit_bits, act_bits, cycles, units, words_txt, vocab_size,
                  min_count, unk_symbol, spm_model, spm_vocab_size, embed_dim, hidden_dim, layers, dropout,
                  tie_embeddings, epochs, batch_size, bptt, optimizer, lr, momentum, weight_decay, clip, loss_norm,
                  self_norm, schedule, lr_decay, min_improvement, restore_best, seed, max_sentences, save_every,
                  device, batch_tokens, nj, quiet, tensorboard_dir):
    """Train an LSTM LM on TRAIN, selecting the best epoch on VALID.

    \b
    admmq train --train ptb.train.txt --valid ptb.valid.txt -o exp/std
    admmq train --resume exp/std          # continue a killed run exactly
    admmq train ... --nj 4                # data-parallel, 4 local processes
    torchrun --nproc-per-node 4 -m rescorer.cli train ...   # the same under torchrun
    admmq train ... --method admm --qset pm124 --tying node -o exp/admm

    Writes OUT/best.pt (best epoch), OUT/last.pt (latest state, resumable),
    OUT/train_log.jsonl (one JSON object per epoch; columns in README) and OUT/train.log.
    """
    if resume_dir:
        result = launch(nj, tensorboard_dir, out=resume_dir, resume=True, epochs=epochs, device=device,
                        quiet=quiet)
    else:
        missing = [name for name, v in (("--train", train_path), ("--valid", valid_path), ("-o/--out", out))
                   if not v]
        if missing:
            raise AdmmqError(f"missing {', '.join(missing)} (or give --resume DIR)")
        if text_format is None:  # plain, with a notice for a text that looks like Kaldi text
            text_format = [text_format_for(p, None) for p in (train_path, valid_path)][0]
        options = TrainOptions(
            train=train_path, valid=valid_path, text_format=text_format, method=method, qset=qset, tying=tying,
            admm_schedule=admm_schedule_name, gamma=gamma, gamma_growth=gamma_growth, gamma_max=gamma_max,
            gamma_restart_after=gamma_restart_after, gamma_restart_growth=gamma_restart_growth, thaw=thaw,
            admm_interval=admm_interval, warm_start=warm_start, extragradient=extragradient, eta1=eta1,
            alpha_init=alpha_init, alpha_lr=alpha_lr, linear_layers=linear_layers,
            projection_start=projection_start, keep_fp=tuple(keep_fp),
            init_from=init_from, teacher=teacher, distill_weight=distill_weight,
            precision=allocation, sensitivity=metric, budget_bits=budget_bits, budget_mb=budget_mb,
            precision_bits=tuple(parse_bits_list(widths)), sensitivity_sentences=sensitivity_sentences,
            probes=probes, bits=multibit_bits, act_bits=act_bits, cycles=cycles, units=units, vocab=words_txt,
            vocab_size=vocab_size, min_count=min_count, unk=unk_symbol, spm_model=spm_model,
            spm_vocab_size=spm_vocab_size, embed_dim=embed_dim, hidden_dim=hidden_dim, layers=layers,
            dropout=dropout, tie_embeddings=tie_embeddings, epochs=epochs, batch_size=batch_size, bptt=bptt,
            optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay, clip=clip,
            loss_norm=loss_norm, self_norm=self_norm, schedule=schedule, lr_decay=lr_decay, min_improvement=min_improvement,
            restore_best=restore_best,
            seed=seed, max_sentences=max_sentences, save_every=save_every, device=device,
            eval_batch_tokens=batch_tokens)
        settings = resolve_options(options, quiet)
        if settings.plan is not None:
            for line in bits_summary(settings.plan.pairs):
                click.echo(f"precision {line}")
            click.echo(settings.plan.note)
            os.makedirs(out, exist_ok=True)
            write_plan(os.path.join(out, "precision.txt"), settings.plan)
        result = launch(nj, tensorboard_dir, out=out, cfg=settings.cfg, model_cfg=settings.model_cfg,
                        method_cfg=settings.method_cfg, quiet=quiet)
    if result is None:  # torchrun: rank 0 reports
        return
    click.echo(f"best epoch {result.best_epoch}: valid ppl {result.best_valid_ppl:.2f} "
               f"({result.epochs_run} epochs) -> {result.out}/best.pt")
