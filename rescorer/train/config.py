"""Training settings: :class:`TrainConfig` (what a run does, stored in its checkpoints),
:class:`TrainerState` (where a run is, for exact resumption) and the unit inventory.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Optional

import torch

from rescorer.errors import AdmmqError
from rescorer.settings import settings_from_dict
from rescorer.lm.subword import SubwordUnits
from rescorer.lm.vocab import Vocab

SCHEDULES = ("newbob", "plateau", "constant")

#: Optimizers of the full-precision step: ``sgd`` (the paper; ``momentum``, ``weight_decay``) and ``adam``
#: (per-weight step sizes; what quantizes a trained model fastest, recipes/ptb/RESULTS_admm.md §6).
OPTIMIZERS = ("sgd", "adam")
ADAM_LR = 5e-3  #: default Adam learning rate (recipes/ptb/RESULTS_admm.md §6)
DEFAULT_MIN_IMPROVEMENT = 0.003  #: relative validation gain below which an epoch is a stall


@dataclass(frozen=True)
class TrainConfig:
    """Data, vocabulary and optimisation settings of a training run."""

    train: str
    valid: str
    text_format: str = "plain"
    units: str = "word"
    vocab: Optional[str] = None
    vocab_size: int = 0
    min_count: int = 1
    unk: str = "<unk>"
    spm_model: Optional[str] = None
    spm_vocab_size: int = 2000
    epochs: int = 10
    batch_size: int = 10
    bptt: int = 0
    lr: float = 1.0
    optimizer: str = "sgd"
    momentum: float = 0.0
    weight_decay: float = 0.0
    clip: float = 5.0
    loss_norm: str = "sentence"
    schedule: str = "newbob"
    lr_decay: float = 0.5
    min_improvement: float = DEFAULT_MIN_IMPROVEMENT
    min_lr: float = 1e-5
    seed: int = 1
    max_sentences: int = 0
    save_every: int = 0
    device: str = "auto"
    eval_batch_tokens: int = 8192
    init_from: Optional[str] = None  # start Θ (and the vocabulary, model shape) from this checkpoint's weights
    self_norm: float = 0.0  # weight a of a * (log Z)^2 per token in the gradient (self-normalised model)
    restore_best: bool = False  # after an epoch worse than the best, continue from the best epoch's state
    teacher: Optional[str] = None  # distil from this LM's next-word distributions (rescorer.lm.distillation)
    distill_weight: float = 0.0  # β: the teacher's share of the objective

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise AdmmqError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.optimizer not in OPTIMIZERS:
            raise AdmmqError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.optimizer == "adam" and self.momentum > 0:
            raise AdmmqError(f"momentum {self.momentum:g} is an SGD setting; adam keeps its own moments")
        if self.loss_norm not in ("sentence", "token"):
            raise AdmmqError(f"loss_norm must be 'sentence' or 'token', got {self.loss_norm!r}")
        if self.units not in ("word", "spm"):
            raise AdmmqError(f"units must be 'word' or 'spm', got {self.units!r}")
        if not self.self_norm >= 0:
            raise AdmmqError(f"--self-norm must be >= 0, got {self.self_norm}")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise AdmmqError(f"distillation weight must be in [0, 1], got {self.distill_weight:g}")
        if self.teacher and self.bptt:
            raise AdmmqError("distillation (--teacher) runs with sentence-level training (--bptt 0) only")
        if self.batch_size < 1 or self.epochs < 0 or self.bptt < 0:
            raise AdmmqError(f"batch size, epochs and bptt must be positive (got {self.batch_size}, "
                             f"{self.epochs}, {self.bptt})")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return settings_from_dict(cls, d, "training")


    def build_optimizer(self, params) -> torch.optim.Optimizer:
        """The optimizer of ``params`` at the starting learning rate (Adam: PyTorch's default betas)."""
        params = list(params)
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)


@dataclass
class TrainerState:
    """Where a run stands; stored in every checkpoint so a run resumes exactly."""

    epoch: int = 0  # the epoch in progress (0-based)
    step: int = 0  # batches of that epoch already done
    lr: float = 1.0
    best_metric: float = math.inf
    best_epoch: int = -1
    halving: bool = False
    warmup_epoch: int = -1  # an epoch the schedule does not judge (the one after a thaw)
    done: bool = False
    loss_sum: float = 0.0  # this epoch so far (nats)
    loss_tokens: int = 0
    seconds: float = 0.0  # this epoch so far
    log: List[Dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainerState":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def build_units(cfg: TrainConfig, train_sentences):
    """The vocabulary (or subword model) of a fresh run."""
    if cfg.units == "spm":
        if cfg.spm_model:
            return SubwordUnits.from_file(cfg.spm_model)
        return SubwordUnits.train(train_sentences, cfg.spm_vocab_size)
    if cfg.vocab:
        return Vocab.from_words_txt(cfg.vocab, unk=cfg.unk)
    return Vocab.build(train_sentences, max_size=cfg.vocab_size or None, min_count=cfg.min_count, unk=cfg.unk)


#: Least dropout when a quantized method starts from a trained model (``--init-from``): the fine-tuning
#: runs on text the model has memorised (the PTB STD: training perplexity 44, validation 126), and
#: without dropout the quantized model re-fits it and generalises worse (recipes/ptb/RESULTS_admm.md §4).
QUANTIZED_INIT_DROPOUT = 0.3


def init_dropout(ckpt: Dict[str, Any], quantized: bool) -> float:
    """Default dropout of an ``--init-from`` run: the checkpoint's own, raised to
    :data:`QUANTIZED_INIT_DROPOUT` when the new run quantizes."""
    own = float((ckpt.get("model_config") or {}).get("dropout", 0.0))
    return max(own, QUANTIZED_INIT_DROPOUT) if quantized else own


def finishing_lr(ckpt: Dict[str, Any]) -> Optional[float]:
    """The learning rate a checkpoint's best epoch was trained with (from its log), or None.

    ``--init-from`` starts at this rate by default: restarting a converged model at lr 1 (the paper's
    rate from scratch) throws it out of the minimum its last, smaller rates found (measured in
    recipes/ptb/RESULTS_admm.md)."""
    trainer, log = ckpt.get("trainer") or {}, ckpt.get("log") or []
    best = trainer.get("best_epoch")
    for row in log:
        if best is not None and row.get("epoch") == int(best) + 1 and row.get("lr"):
            return float(row["lr"])
    return None

