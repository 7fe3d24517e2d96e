"""Training an LSTM LM (full precision or with a quantized training method).

The paper's recipe by default: mini-batches of 10 sentences, each sentence
from a zero state (as in rescoring); plain SGD with initial learning rate 1
on the batch's summed sentence log-likelihoods divided by its number of
sentences (``loss_norm="sentence"``; ``"token"`` divides by tokens instead,
which with lr 1 learns far slower — a per-token rate about 22 times smaller on PTB);
gradient-norm clipping; the "newbob" schedule (train at a constant rate until
the validation perplexity improves by less than ``min_improvement``
(relative), then halve the rate every epoch until it stalls again, then
stop); the best epoch kept.  ``schedule="plateau"`` halves on each stall but
never stops early (ADMM's fixed iteration count); ``"constant"`` never halves.

For quantized methods the validation perplexity that selects the best epoch
and drives the schedule is the *quantized* model's.  Validation words outside
the vocabulary cost what ``admmq eval`` charges them by default (the ``share``
OOV policy of :mod:`rescorer.ngram.mixture`), so ``admmq eval --text VALID`` repeats
the logged perplexity.

Outputs in ``out``: ``last.pt`` (after every epoch, and every ``save_every``
steps), ``best.pt`` (the best epoch), ``train_log.jsonl`` (one JSON object per
epoch; its columns are documented in :mod:`rescorer.train.runlogs`, ``TRAIN_LOG_COLUMNS``)
and ``train.log`` (human-readable: settings and progress).  Further per-epoch
sinks (``sinks``, e.g. :class:`rescorer.train.tensorboard_sink.TensorBoardSink`)
receive each epoch's row as well.
``resume=True`` continues a killed run from ``last.pt`` exactly: same batches,
same random numbers, same result as an uninterrupted run.
With ``dist`` (:mod:`rescorer.train.distributed`) the run is one rank of a
data-parallel run: sentence-sharded global batches, summed gradients, rank 0
writing logs and checkpoints.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from rescorer.errors import AdmmqError
from rescorer.fileio import check_free_space, make_output_dir, remove_stale_temps
from rescorer.lm.batching import epoch_order, sentence_batches, stream_batches
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.lm.scoring import corpus_nll
from rescorer.ngram.mixture import OovPolicy
from rescorer.pack.checkpoint import BEST, LAST, read_checkpoint, resolve_lm_path
from rescorer.perplexity import OVERFLOW_NATS, format_ppl, ppl_of_nll
from rescorer.progress import progress_bar
from rescorer.quant import MethodConfig
from rescorer.quant.method import deployed_state_dict
from rescorer.train.config import TrainConfig
from rescorer.train.distributed import SINGLE, Dist, sharded_sentence_batches
from rescorer.train.run_setup import RunSetup
from rescorer.train.runlogs import EpochSink, RunLog


@dataclass
class TrainResult:
    out: str
    best_epoch: int
    best_valid_ppl: float
    epochs_run: int
    log: List[Dict[str, Any]]


class Trainer(RunSetup):
    """One training run in a directory: fresh or resumed."""

    def __init__(self, out, cfg: Optional[TrainConfig] = None, model_cfg: Optional[ModelConfig] = None,
                 method_cfg: Optional[MethodConfig] = None, resume: bool = False, quiet: bool = False,
                 epochs: Optional[int] = None, device: Optional[str] = None, sinks: Sequence[EpochSink] = (),
                 dist: Dist = SINGLE):
        self.out = Path(out)
        self.dist = dist
        self.quiet = quiet or not dist.is_main
        ckpt = self._read_last() if resume else None
        cfg, model_cfg, method_cfg = self._settings(ckpt, cfg, model_cfg, method_cfg, epochs, device)
        init = read_checkpoint(resolve_lm_path(cfg.init_from)) if cfg.init_from and ckpt is None else None
        model_cfg = self._load_data(ckpt, init, model_cfg)  # nothing is written before the data is read
        self._build_model(ckpt, model_cfg)
        make_output_dir(self.out)
        self.log = RunLog(self.out, self.quiet, sinks if dist.is_main else (), enabled=dist.is_main)
        if ckpt is not None:
            self._restore(ckpt)
        else:
            self._start(init)
        if dist.is_main:
            remove_stale_temps(self.out, (LAST, BEST))  # left by a killed run
            # best.pt + last.pt + one temporary copy, each: Θ, optimizer and method state (≤ 4 copies of Θ)
            n_params = sum(p.numel() for p in self.model.parameters())
            check_free_space(self.out, 3 * 4 * 4 * n_params + 2**20, "the checkpoints")
        dist.barrier()  # every rank has checked the directory before rank 0 writes into it
        for group in self.optimizer.param_groups:
            group["lr"] = self.state.lr

    def batches(self, epoch: int, start: int):
        order = epoch_order(len(self.train_data), self.cfg.seed, epoch)
        bos, eos = self.units.bos_id, self.units.eos_id
        if self.cfg.bptt:
            return stream_batches(self.train_data, order, self.cfg.batch_size, self.cfg.bptt, bos, eos, start)
        if self.dist.active:
            return sharded_sentence_batches(self.train_data, self.cfg.batch_size, order, bos, eos, start,
                                            self.cfg.loss_norm, self.dist)
        return sentence_batches(self.train_data, self.cfg.batch_size, order, bos, eos, start)

    # ----------------------------------------------------------- evaluation
    def valid_ppl(self, model: LSTMLM) -> float:
        """Validation perplexity, unknown words priced as ``admmq eval`` does (the default OOV policy)."""
        nll, tokens = corpus_nll(model, self.valid_part, self.units.bos_id, self.units.eos_id,
                                 self.cfg.eval_batch_tokens, self.device)
        if self.dist.active:
            both = self.dist.sum(torch.tensor([nll, float(tokens)], dtype=torch.float64, device=self.device))
            nll, tokens = float(both[0]), int(both[1])
        nll -= self.valid_data.oov * OovPolicy().penalty  # each unknown word (whole text): its share of P(<unk>|h)
        return ppl_of_nll(nll / tokens)

    # --------------------------------------------------------------- loop
    def run(self) -> TrainResult:
        cfg, st = self.cfg, self.state
        n_batches = self.num_batches()
        try:
            while not st.done and st.epoch < cfg.epochs:
                self._train_epoch(n_batches)
                self._end_epoch()
        finally:
            self.log.close()
        best = st.best_metric
        return TrainResult(str(self.out), st.best_epoch + 1, best, len(st.log), list(st.log))

    def _train_epoch(self, n_batches: int) -> None:
        cfg, st = self.cfg, self.state
        self.model.train()
        t0 = time.time() - st.seconds
        loss_acc = torch.zeros((), dtype=torch.float64, device=self.device)
        desc = f"epoch {st.epoch + 1}/{cfg.epochs}"
        self.method.begin_epoch(st.epoch, n_batches, st.step)
        with progress_bar(desc, n_batches, self.quiet) as bar:
            bar.advance(st.step)
            for batch in self.batches(st.epoch, st.step):
                batch = batch.to(self.device)
                if not self.dist.active:  # sharded batches carry the global batch's norm
                    batch = batch.normalised(cfg.loss_norm)
                state = self.stream_state if batch.carry_state else None
                loss, new_state = self.method.train_step(self.model, self.optimizer, batch, state, cfg.clip)
                loss = self.dist.sum(loss)  # the global batch's loss, the same on every rank
                if batch.carry_state:
                    self.stream_state = (new_state[0].detach(), new_state[1].detach())
                loss_acc += loss
                st.loss_tokens += batch.ntokens
                st.step += 1
                bar.advance(1)
                if self.device.type == "cpu":  # (on an accelerator: checked at save points and the epoch's end)
                    self._check_loss(float(loss), batch.ntokens, f"at batch {st.step}")
                if st.step % 50 == 0 or st.step == n_batches:
                    lsum = st.loss_sum + float(loss_acc)
                    ppl = ppl_of_nll(lsum / max(st.loss_tokens, 1))
                    bar.update(info=f"lr {st.lr:g} train ppl {format_ppl(ppl)}")
                if cfg.save_every and st.step % cfg.save_every == 0 and st.step < n_batches:
                    self._check_loss(st.loss_sum + float(loss_acc), st.loss_tokens,
                                     f"in batches {st.step - cfg.save_every + 1}..{st.step}")
                    st.loss_sum += float(loss_acc)
                    loss_acc.zero_()
                    st.seconds = time.time() - t0
                    self.save_last()
        st.loss_sum += float(loss_acc)
        st.seconds = time.time() - t0
        self._check_loss(st.loss_sum, st.loss_tokens, "in this epoch")

    def _check_loss(self, loss: float, tokens: int, where: str) -> None:
        """Divergence: a summed loss that is not finite, or whose perplexity is beyond float range.

        The second catches a diverging run whose loss is huge but still finite (on some CPUs it stays
        finite for a while before turning into NaN); no sane model loses over 709 nats per token.
        """
        if not math.isfinite(loss):
            self._diverged(f"loss is {loss} {where}")
        if tokens and loss / tokens >= OVERFLOW_NATS:
            self._diverged(f"loss is {loss / tokens:.3g} nats per token {where} (perplexity beyond float range)")

    def _diverged(self, what: str) -> None:
        hint = "lower --lr or --clip" + (f", or --gamma (now {self.method.gamma:g})"
                                         if hasattr(self.method, "gamma") else "")
        raise AdmmqError(f"training diverged in epoch {self.state.epoch + 1}: {what}; nothing was saved "
                         f"from this epoch (last.pt holds the previous one); {hint}")

    def _end_epoch(self) -> None:
        cfg, st = self.cfg, self.state
        t_eval = time.time()
        self.dist.broadcast_parameters(self.model)  # the same Θ on every rank before the ADMM updates
        extra = self.method.end_epoch(self.model, st.epoch)
        point = self.method.training_point(self.model)  # the full-precision model the forward pass trains
        if point:
            assert self.eval_model is not None
            self.eval_model.load_state_dict({**self.model.state_dict(), **point})
        valid_fp = self.valid_ppl(self.eval_model if point else self.model)
        quantized = self.method.quantized_matrices(self.model)
        row: Dict[str, Any] = {
            "epoch": st.epoch + 1, "lr": st.lr,
            "train_loss": st.loss_sum / max(st.loss_tokens, 1),
            "train_ppl": ppl_of_nll(st.loss_sum / max(st.loss_tokens, 1)),
            "valid_ppl": valid_fp, "valid_ppl_q": None, "best": False, "seconds": st.seconds,
            "tokens_per_s": st.loss_tokens / st.seconds if st.seconds > 0 else 0.0,
        }
        metric = valid_fp
        if self.method.quantized:
            assert self.eval_model is not None
            self.eval_model.load_state_dict(deployed_state_dict(self.model, quantized))
            metric = row["valid_ppl_q"] = self.valid_ppl(self.eval_model)
        row.update(extra)
        row["eval_seconds"] = time.time() - t_eval
        if not math.isfinite(metric):
            raise AdmmqError(f"validation perplexity is {metric} after epoch {st.epoch + 1}: training diverged")
        improvement = (st.best_metric - metric) / st.best_metric if math.isfinite(st.best_metric) else 1.0
        improved = metric < st.best_metric
        st.log.append(row)
        if improved:
            st.best_metric, st.best_epoch = metric, st.epoch
            row["best"] = True
        # learning-rate schedule for the next epoch
        if cfg.schedule == "newbob":
            if st.halving and improvement < cfg.min_improvement:
                st.done = True
            elif st.halving or improvement < cfg.min_improvement:
                st.halving = True
                st.lr *= cfg.lr_decay
        elif cfg.schedule == "plateau" and improvement < cfg.min_improvement and st.epoch != st.warmup_epoch:
            if self.method.thaw():  # the codes froze: γ starts again, the rate stays, the next epoch warms up
                row["thaw"] = True
                st.warmup_epoch = st.epoch + 1
            else:
                st.lr *= cfg.lr_decay
        if st.lr < cfg.min_lr:
            st.done = True
        if cfg.restore_best and not improved and st.best_epoch >= 0 and not st.done \
                and st.epoch != st.warmup_epoch:
            self._restore_best()  # the next epoch continues from the best one (at the rate just set)
            row["restored"] = st.best_epoch + 1
            quantized = self.method.quantized_matrices(self.model)
        for group in self.optimizer.param_groups:
            group["lr"] = st.lr
        st.epoch += 1
        st.step = 0
        st.loss_sum, st.loss_tokens, st.seconds = 0.0, 0, 0.0
        if cfg.bptt:
            self.stream_state = None
        self._save([BEST, LAST] if improved else [LAST], quantized)
        self.log.epoch(st.log)


def train(out, cfg: Optional[TrainConfig] = None, model_cfg: Optional[ModelConfig] = None,
          method_cfg: Optional[MethodConfig] = None, resume: bool = False, quiet: bool = False,
          epochs: Optional[int] = None, device: Optional[str] = None, sinks: Sequence[EpochSink] = (),
          dist: Dist = SINGLE) -> TrainResult:
    """Train (or resume) a run in ``out``; see the module docstring.

    ``dist``: this process's place in a data-parallel run (:mod:`rescorer.train.distributed`).
    """
    return Trainer(out, cfg, model_cfg, method_cfg, resume, quiet, epochs, device, sinks, dist).run()
