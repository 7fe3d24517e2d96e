"""How a training run is set up and kept on disk: its settings (fresh, or those of ``last.pt`` when it
resumes), data and model, the start of a fresh run or the exact state of a killed one, the checkpoints it
writes, and the way back to its best epoch (``restore_best``).  :class:`rescorer.train.loop.Trainer` runs
the epochs on top of it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Any, Dict, Optional, Sequence

import torch

from rescorer.errors import AdmmqError, MismatchError
from rescorer.fileio import read_sentences
from rescorer.lm.batch_control import pick_device
from rescorer.lm.batching import num_sentence_batches, num_stream_batches
from rescorer.lm.corpus import EncodedCorpus, encode_sentences, load_corpus
from rescorer.lm.distillation import check_teacher
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.lm.subword import units_from_state
from rescorer.pack.checkpoint import BEST, LAST, read_checkpoint, save_checkpoint
from rescorer.pack.lm_file import load_lm
from rescorer.quant import MethodConfig, build_method
from rescorer.quant.method import TrainingMethod
from rescorer.train.config import TrainConfig, TrainerState, build_units
from rescorer.train.distributed import device_for
from rescorer.train.self_norm import centre_log_z


class RunSetup:
    """The set-up and checkpoint steps of :class:`rescorer.train.loop.Trainer` (see the module docstring)."""

    # ------------------------------------------------------------- set-up
    def _read_last(self) -> Dict[str, Any]:
        last = self.out / LAST
        if not last.exists():
            raise AdmmqError(f"nothing to resume: no {LAST}", self.out)
        return read_checkpoint(last)

    def _settings(self, ckpt, cfg, model_cfg, method_cfg, epochs, device):
        """The run's configurations: the checkpoint's on resume, else the given ones; builds the method."""
        if ckpt is not None:
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
        if self.dist.active and cfg.bptt:
            raise AdmmqError("--bptt (streaming) training runs in one process only; data-parallel training "
                             "shards sentence-level batches (--bptt 0)")
        self.cfg, self.method_cfg = cfg, method_cfg
        self.device = pick_device(device_for(self.dist, cfg.device))
        self.method: TrainingMethod = build_method(method_cfg)
        if self.dist.active:
            self.method.grad_sync = self.dist.sum_gradients
        return cfg, model_cfg, method_cfg

    def _load_data(self, ckpt, init, model_cfg: ModelConfig) -> ModelConfig:
        """Vocabulary (the checkpoint's, the ``--init-from`` model's, or built), training and validation
        text; returns the model configuration with the vocabulary size (and ``init``'s shape)."""
        cfg = self.cfg
        train_sents = read_sentences(cfg.train, cfg.text_format)
        if ckpt is not None:
            self.units = units_from_state(ckpt["units"])
        elif init is not None:  # its vocabulary and model shape; Θ is loaded in _start
            self.units = units_from_state(init["units"])
            model_cfg = replace(ModelConfig.from_dict(init["model_config"]), dropout=model_cfg.dropout)
        else:
            self.units = build_units(cfg, (s.words for s in train_sents))
        if cfg.max_sentences > 0:
            train_sents = train_sents[: cfg.max_sentences]
        self.train_data: EncodedCorpus = encode_sentences(self.units, [s.words for s in train_sents])
        if self.num_batches() == 0:
            raise AdmmqError("training text is too small to form a single batch", cfg.train)
        self.valid_data: EncodedCorpus = load_corpus(self.units, cfg.valid, cfg.text_format)
        if self.valid_data.tokens == 0:
            raise AdmmqError("validation text has no words", cfg.valid)
        # data-parallel: each rank scores every world-th validation sentence, the sums are all-reduced
        dist = self.dist
        self.valid_part = self.valid_data.subset(dist.shard(len(self.valid_data))) if dist.active else self.valid_data
        return model_cfg

    def _build_model(self, ckpt, model_cfg: ModelConfig) -> None:
        """The model (and, for a quantized method, the model that evaluates its deployed form), the optimizer."""
        model_cfg = self.method.adapt_model_config(replace(model_cfg, vocab_size=len(self.units)))
        if ckpt is not None and model_cfg.vocab_size != ModelConfig.from_dict(ckpt["model_config"]).vocab_size:
            raise MismatchError("vocabulary size differs from the checkpoint's", self.out / LAST)
        self.model_cfg = model_cfg
        torch.manual_seed(self.cfg.seed)
        self.model = LSTMLM(model_cfg).to(self.device)
        self.model.log_z_penalty = self.cfg.self_norm
        self.eval_model = LSTMLM(model_cfg).to(self.device) if self.method.quantized else None
        self.optimizer = self.cfg.build_optimizer(self.model.parameters())
        self.stream_state = None
        if self.cfg.teacher and self.cfg.distill_weight > 0:
            teacher = load_lm(self.cfg.teacher, str(self.device))
            if teacher.units.to_state() != self.units.to_state():
                raise MismatchError("teacher's vocabulary differs from the model's (distillation needs the same "
                                    "vocabulary)", self.cfg.teacher)
            check_teacher(self.model, teacher.model, self.cfg.teacher)
            self.method.teacher, self.method.distill_weight = teacher.model.eval(), self.cfg.distill_weight

    def _restore(self, ckpt: Dict[str, Any]) -> None:
        """Weights, optimizer, method state, trainer state and random numbers of ``last.pt``."""
        dist = self.dist
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
            torch.manual_seed(self.cfg.seed + 7919 * dist.rank + 104729 * self.state_epoch(ckpt))
        if rng is not None:
            torch.set_rng_state(rng)
        if self.device.type == "cuda" and ckpt["trainer"].get("rng_cuda") is not None:
            torch.cuda.set_rng_state(ckpt["trainer"]["rng_cuda"], self.device)
        ss = ckpt["trainer"].get("stream_state")
        if ss is not None:
            self.stream_state = (ss[0].to(self.device), ss[1].to(self.device))
        self.log.line(f"resumed {self.out / LAST}: epoch {self.state.epoch + 1}, step {self.state.step}")

    def _start(self, init: Optional[Dict[str, Any]]) -> None:
        """A fresh run: Θ from ``--init-from`` (else the seeded initialisation), the method's state."""
        cfg, dist = self.cfg, self.dist
        if init is not None:
            self.model.load_weights(self.method.adapt_init_weights(init["model"], self.model_cfg, cfg.init_from),
                                    cfg.init_from)
            if cfg.self_norm:
                centre_log_z(self.model, self.train_data, self.units, self.log.line)
        dist.broadcast_parameters(self.model)
        self.method.setup(self.model)
        self.state = TrainerState(lr=cfg.lr)
        if dist.rank > 0:  # own dropout masks on each rank
            torch.manual_seed(cfg.seed + 7919 * dist.rank)
        self._log_settings()

    def _restore_best(self) -> None:
        """Weights, optimizer state and the method's position (not its schedule) of ``best.pt``."""
        self.dist.barrier()  # rank 0 wrote best.pt at an earlier epoch's end
        best = read_checkpoint(self.out / BEST)
        self.model.load_weights(best["model"], str(self.out / BEST))
        self.optimizer.load_state_dict(best["optimizer"])
        self.method.restore_position(best.get("method_state") or {})

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

