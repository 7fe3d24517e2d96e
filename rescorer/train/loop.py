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

import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from rescorer.lm.batching import epoch_order, num_sentence_batches, num_stream_batches, sentence_batches, stream_batches
from rescorer.pack.checkpoint import BEST, LAST, read_checkpoint, resolve_lm_path, save_checkpoint
from rescorer.lm.corpus import EncodedCorpus, load_corpus
from rescorer.fileio import read_sentences
from rescorer.train.distributed import SINGLE, Dist, device_for, sharded_sentence_batches
from rescorer.errors import AdmmqError, MismatchError
from rescorer.fileio import check_free_space, make_output_dir, remove_stale_temps
from rescorer.ngram.mixture import OovPolicy
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.perplexity import OVERFLOW_NATS, format_ppl, ppl_of_nll
from rescorer.progress import progress_bar
from rescorer.train.runlogs import EpochSink, RunLog
from rescorer.quant import MethodConfig, build_method
from rescorer.quant.method import TrainingMethod, deployed_state_dict
from rescorer.lm.scoring import corpus_nll
from rescorer.train.self_norm import centre_log_z
from rescorer.lm.subword import units_from_state
from rescorer.train.config import TrainConfig, TrainerState, build_units
from rescorer.lm.batch_control import pick_device


@dataclass
class TrainResult:
    out: str
    best_epoch: int
    best_valid_ppl: float
    epochs_run: int
    log: List[Dict[str, Any]]


class Trainer:
    """One training run in a directory: fresh or resumed."""

    def __init__(self, out, cfg: Optional[TrainConfig] = None, model_cfg: Optional[ModelConfig] = None,
                 method_cfg: Optional[MethodConfig] = None, resume: bool = False, quiet: bool = False,
                 epochs: Optional[int] = None, device: Optional[str] = None, sinks: Sequence[EpochSink] = (),
                 dist: Dist = SINGLE):
        self.out = Path(out)
        self.dist = dist
        self.quiet = quiet or not dist.is_main
        ckpt = None
        if resume:
            last = self.out / LAST
            if not last.exists():
                raise AdmmqError(f"nothing to resume: no {LAST}", self.out)
            ckpt = read_checkpoint(last)
            cfg = TrainConfig.from_dict(ckpt["train_config"])
            model_cfg = ModelConfig.from_dict(ckpt["model_config"])
            method_cfg = MethodConfig.from_dict(ckpt.get("method_config") or {})
        else:
            if cfg is None:
                raise ValueError("a fresh run needs a TrainConfig")
            if (self.out / LAST).exists():
                raise AdmmqError(f"already holds a training run ({LAST}); resume it with --resume or choose "
                                 f"another output directory", self.out)
            model_cfg = model_cfg or ModelConfig(vocab_size=0)
            method_cfg = method_cfg or MethodConfig()
        if epochs is not None:
            cfg = replace(cfg, epochs=epochs)
        if device is not None:
            cfg = replace(cfg, device=device)
        self.cfg = cfg
        if dist.active and cfg.bptt:
            raise AdmmqError("--bptt (streaming) training runs in one process only; data-parallel training "
                             "shards sentence-level batches (--bptt 0)")
        self.device = pick_device(device_for(dist, cfg.device))
        self.method: TrainingMethod = build_method(method_cfg)
        if dist.active:
            self.method.grad_sync = dist.sum_gradients
        self.method_cfg = method_cfg

        make_output_dir(self.out)
        self.log = RunLog(self.out, self.quiet, sinks if dist.is_main else (), enabled=dist.is_main)

        train_sents = read_sentences(cfg.train, cfg.text_format)
        if ckpt is not None:
            self.units = units_from_state(ckpt["units"])
        else:
            init = read_checkpoint(resolve_lm_path(cfg.init_from)) if cfg.init_from else None
            if init is not None:  # its vocabulary and model shape; Θ is loaded below
                self.units = units_from_state(init["units"])
                model_cfg = replace(ModelConfig.from_dict(init["model_config"]), dropout=model_cfg.dropout)
            else:
                self.units = build_units(cfg, (s.words for s in train_sents))
        if cfg.max_sentences > 0:
            train_sents = train_sents[: cfg.max_sentences]
        from rescorer.lm.corpus import encode_sentences

        self.train_data: EncodedCorpus = encode_sentences(self.units, [s.words for s in train_sents])
        self.valid_data: EncodedCorpus = load_corpus(self.units, cfg.valid, cfg.text_format)
        # data-parallel: each rank scores every world-th validation sentence, the sums are all-reduced
        self.valid_part = self.valid_data.subset(dist.shard(len(self.valid_data))) if dist.active else self.valid_data

        model_cfg = self.method.adapt_model_config(replace(model_cfg, vocab_size=len(self.units)))
        if ckpt is not None and model_cfg.vocab_size != ModelConfig.from_dict(ckpt["model_config"]).vocab_size:
            raise MismatchError("vocabulary size differs from the checkpoint's", self.out / LAST)
        self.model_cfg = model_cfg
        torch.manual_seed(cfg.seed)
        self.model = LSTMLM(model_cfg).to(self.device)
        self.model.log_z_penalty = cfg.self_norm
        self.eval_model = LSTMLM(model_cfg).to(self.device) if self.method.quantized else None
        self.optimizer = cfg.build_optimizer(self.model.parameters())
        self.stream_state = None
        if ckpt is not None:
            self.model.load_weights(ckpt["model"], str(self.out / LAST))
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.method.load_state_dict(ckpt.get("method_state") or {})
            self.state = TrainerState.from_dict(ckpt["trainer"])
            rng = ckpt["trainer"].get("rng_cpu")
            ranks = ckpt["trainer"].get("rng_cpu_ranks")
            if dist.active and ranks is not None and len(ranks) == dist.world:
                rng = ranks[dist.rank]
            elif dist.rank > 0:
                rng = None
                torch.manual_seed(cfg.seed + 7919 * dist.rank + 104729 * self.state_epoch(ckpt))
            if rng is not None:
                torch.set_rng_state(rng)
            if self.device.type == "cuda" and ckpt["trainer"].get("rng_cuda") is not None:
                torch.cuda.set_rng_state(ckpt["trainer"]["rng_cuda"], self.device)
            ss = ckpt["trainer"].get("stream_state")
            if ss is not None:
                self.stream_state = (ss[0].to(self.device), ss[1].to(self.device))
            self.log.line(f"resumed {self.out / LAST}: epoch {self.state.epoch + 1}, step {self.state.step}")
        else:
            if cfg.init_from:
                self.model.load_weights(self.method.adapt_init_weights(init["model"], model_cfg, cfg.init_from),
                                        cfg.init_from)
                if cfg.self_norm:
                    centre_log_z(self.model, self.train_data, self.units, self.log.line)
            dist.broadcast_parameters(self.model)
            self.method.setup(self.model)
            self.state = TrainerState(lr=cfg.lr)
            if dist.rank > 0:  # own dropout masks on each rank
                torch.manual_seed(cfg.seed + 7919 * dist.rank)
            self._log_settings()
        if dist.is_main:
            remove_stale_temps(self.out, (LAST, BEST))  # left by a killed run
            # best.pt + last.pt + one temporary copy, each: Θ, optimizer and method state (≤ 4 copies of Θ)
            n_params = sum(p.numel() for p in self.model.parameters())
            check_free_space(self.out, 3 * 4 * 4 * n_params + 2**20, "the checkpoints")
        dist.barrier()  # every rank has checked the directory before rank 0 writes into it
        for group in self.optimizer.param_groups:
            group["lr"] = self.state.lr

    @staticmethod
    def state_epoch(ckpt: Dict[str, Any]) -> int:
        return int(ckpt["trainer"].get("epoch", 0))

    # ------------------------------------------------------------ settings
    def _log_settings(self) -> None:
        n_params = sum(p.numel() for p in self.model.parameters())
        self.log.line("command: " + " ".join(sys.argv))
        self.log.line(f"train config: {json.dumps(self.cfg.to_dict(), sort_keys=True)}")
        self.log.line(f"model config: {json.dumps(self.model_cfg.to_dict(), sort_keys=True)}")
        self.log.line(f"method config: {json.dumps(self.method_cfg.to_dict(), sort_keys=True)}")
        if self.dist.active:
            self.log.line(f"data-parallel: {self.dist.world} processes, backend "
                          f"{torch.distributed.get_backend()}; each global batch of {self.cfg.batch_size} "
                          f"sentences sharded by sentence")
        self.log.line(f"device {self.device}; {n_params} parameters; vocabulary {len(self.units)} symbols "
                      f"({self.units.output_size} outputs); train {len(self.train_data)} sentences "
                      f"{self.train_data.tokens} tokens (oov {self.train_data.oov}); valid "
                      f"{len(self.valid_data)} sentences {self.valid_data.tokens} tokens (oov {self.valid_data.oov})")

    # --------------------------------------------------------- checkpoints
    def _payload(self, quantized, rng_ranks=None) -> Dict[str, Any]:
        trainer = self.state.to_dict()
        trainer["rng_cpu"] = torch.get_rng_state()
        if rng_ranks is not None:
            trainer["rng_cpu_ranks"] = rng_ranks
        if self.device.type == "cuda":
            trainer["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        if self.stream_state is not None:
            trainer["stream_state"] = [t.detach().cpu() for t in self.stream_state]
        return {
            "model_config": self.model_cfg.to_dict(),
            "method_config": self.method_cfg.to_dict(),
            "train_config": self.cfg.to_dict(),
            "units": self.units.to_state(),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "quantized": {k: q.to_state() for k, q in quantized.items()},
            "method_state": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "trainer": trainer,
            "log": list(self.state.log),
        }

    def save_last(self) -> None:
        self._save([LAST], self.method.quantized_matrices(self.model))

    def _save(self, names: Sequence[str], quantized) -> None:
        """Rank 0 writes the checkpoints ``names`` (atomically); every rank must call this (collective)."""
        rng_ranks = self.dist.gather_objects(torch.get_rng_state()) if self.dist.active else None
        if self.dist.is_main:
            payload = self._payload(quantized, rng_ranks)
            for name in names:
                save_checkpoint(self.out / name, payload)
        self.dist.barrier()

    # ----------------------------------------------------------- batches
    def num_batches(self) -> int:
        if self.cfg.bptt:
            return num_stream_batches(self.train_data, self.cfg.batch_size, self.cfg.bptt)
        return num_sentence_batches(len(self.train_data), self.cfg.batch_size)

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
        if n_batches == 0:
            raise AdmmqError("training text is too small to form a single batch", cfg.train)
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
        valid_fp = self.valid_ppl(self.model)
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
        elif cfg.schedule == "plateau" and improvement < cfg.min_improvement:
            st.lr *= cfg.lr_decay
        if st.lr < cfg.min_lr:
            st.done = True
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
