"""What a user asks of ``admmq train`` and the settings a run gets from it.

:class:`TrainOptions` holds the options as given (``None``: "the default for this method and this
``--init-from``"); :func:`resolve_options` turns them into the three frozen configurations a run stores
(:class:`TrainConfig`, :class:`ModelConfig`, :class:`MethodConfig`).  Every default that depends on other
options is decided here, once, for ``admmq train`` and its data-parallel launcher alike:

* the ADMM schedule (``--admm-schedule``, :func:`rescorer.quant.method.admm_schedule`): ``auto`` picks the
  schedule for a trained model (``--init-from``) or from scratch; its optimizer, learning rate and
  ``min_improvement`` are training settings and apply to ``admm`` only;
* the learning rate: the ADMM schedule's own (``trained-adam`` sets Adam's); else Adam's :data:`ADAM_LR`;
  SGD's 1, or with ``--init-from`` the rate the checkpoint's best epoch was trained with;
* dropout: 0, or with ``--init-from`` the checkpoint's, at least 0.3 when the run quantizes;
* ADMM's linear layers (``--linear-layers``): on for layer-tied {±1} and {0,±1} from a trained model whose
  sizes allow them (:func:`rescorer.quant.method.auto_linear_layers`);
* distillation: a quantized method started from a trained model (``--init-from``) learns from that model's
  next-word distributions too (``--teacher``, β = :data:`DISTILL_WEIGHT`);
* epochs and the learning-rate schedule: the method's own (``fp`` 10 epochs and newbob; the quantized
  methods 50 and plateau, continuing from the best epoch after a worse one, ``restore_best``);
* mixed precision (``--allocation``): the per-matrix tables, planned before any training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

from rescorer.errors import AdmmqError
from rescorer.lm.model import ModelConfig
from rescorer.pack.checkpoint import read_checkpoint, resolve_lm_path
from rescorer.quant import METHODS, MethodConfig
from rescorer.quant.linear_layers import can_insert
from rescorer.quant.method import TRAINING_KEYS, admm_schedule, auto_linear_layers
from rescorer.quant.mixed import DEFAULT_BUDGET_BITS
from rescorer.quant.mixed_plan import PrecisionPlan, plan_precision
from rescorer.quant.qsets import parse_qset
from rescorer.train.config import ADAM_LR, DEFAULT_MIN_IMPROVEMENT, TrainConfig, finishing_lr, init_dropout


@dataclass(frozen=True)
class TrainOptions:
    """The options of ``admmq train`` as given; ``None`` = the default that :func:`resolve_options` picks.

    ``admm_interval``: ``(per_epoch, batches)``: K ADMM iterations per epoch, or one every N mini-batches
    (the other 0).  ``precision_bits``: the widths / table names ``--allocation auto`` chooses from.
    """

    train: str
    valid: str
    text_format: str = "plain"
    method: str = "fp"
    qset: str = "pm1"
    tying: str = "layer"
    admm_schedule: str = "auto"
    gamma: Optional[float] = None
    gamma_growth: Optional[float] = None
    gamma_max: Optional[float] = None
    gamma_restart_after: Optional[float] = None
    gamma_restart_growth: Optional[float] = None
    thaw: Optional[bool] = None
    admm_interval: Optional[Tuple[int, int]] = None
    warm_start: Optional[str] = None
    extragradient: str = MethodConfig.extragradient
    eta1: float = MethodConfig.eta1
    alpha_init: str = MethodConfig.alpha_init
    alpha_lr: Optional[float] = None
    linear_layers: Optional[bool] = None
    projection_start: str = MethodConfig.projection_start
    keep_fp: Tuple[str, ...] = ()
    init_from: Optional[str] = None
    teacher: Optional[str] = None
    distill_weight: Optional[float] = None
    precision: Optional[str] = None
    sensitivity: str = "kl"
    budget_bits: Optional[float] = None
    budget_mb: Optional[float] = None
    precision_bits: Sequence = (1, 2, 3, 4, 8)
    sensitivity_sentences: int = 0
    probes: int = 32
    bits: int = MethodConfig.bits
    act_bits: int = MethodConfig.act_bits
    cycles: int = MethodConfig.cycles
    units: str = TrainConfig.units
    vocab: Optional[str] = None
    vocab_size: int = TrainConfig.vocab_size
    min_count: int = TrainConfig.min_count
    unk: str = TrainConfig.unk
    spm_model: Optional[str] = TrainConfig.spm_model
    spm_vocab_size: int = TrainConfig.spm_vocab_size
    embed_dim: int = 200
    hidden_dim: int = 200
    layers: int = 1
    dropout: Optional[float] = None
    tie_embeddings: bool = False
    epochs: Optional[int] = None
    batch_size: int = TrainConfig.batch_size
    bptt: int = TrainConfig.bptt
    optimizer: Optional[str] = None
    lr: Optional[float] = None
    momentum: float = TrainConfig.momentum
    weight_decay: float = TrainConfig.weight_decay
    clip: float = TrainConfig.clip
    loss_norm: str = TrainConfig.loss_norm
    self_norm: float = 0.0
    schedule: Optional[str] = None
    lr_decay: float = TrainConfig.lr_decay
    min_improvement: Optional[float] = None
    restore_best: Optional[bool] = None
    seed: int = TrainConfig.seed
    max_sentences: int = TrainConfig.max_sentences
    save_every: int = TrainConfig.save_every
    device: Optional[str] = None
    eval_batch_tokens: int = 8192


@dataclass(frozen=True)
class RunSettings:
    """The configurations of a fresh run, and the mixed-precision plan when there is one."""

    cfg: TrainConfig
    model_cfg: ModelConfig
    method_cfg: MethodConfig
    plan: Optional[PrecisionPlan] = field(default=None, compare=False)


def _precision_plan(o: TrainOptions, quiet: bool) -> Optional[PrecisionPlan]:
    if o.precision is None:
        if o.budget_bits is not None or o.budget_mb is not None:
            raise AdmmqError("--budget-bits/--budget-mb need --allocation auto")
        return None
    if o.method != "admm":
        raise AdmmqError("--allocation applies to --method admm only")
    shape = ModelConfig(vocab_size=0, embed_dim=o.embed_dim, hidden_dim=o.hidden_dim, layers=o.layers,
                        tie_embeddings=o.tie_embeddings)
    budget_bits = DEFAULT_BUDGET_BITS if o.budget_bits is None and o.budget_mb is None else o.budget_bits
    return plan_precision(o.precision, o.init_from, o.valid, o.text_format, o.sensitivity, budget_bits,
                          o.budget_mb, tuple(o.precision_bits), tuple(o.keep_fp), o.probes,
                          o.sensitivity_sentences, quiet, shape)


#: β of the teacher's soft targets when a quantized method distils from the model it starts from
#: (recipes/ptb/RESULTS_admm.md §11: without it the binary model over-fits a small corpus within two epochs)
DISTILL_WEIGHT = 0.5


def _distillation(o: TrainOptions, quantized: bool) -> dict:
    """``teacher`` and ``distill_weight``: as given; by default a quantized method started from a trained
    model (``--init-from``) distils from that model with β = :data:`DISTILL_WEIGHT`; ``--distill-weight 0``
    turns it off."""
    teacher = o.teacher
    if teacher is None and quantized and o.init_from and o.distill_weight != 0:
        teacher = o.init_from
    weight = o.distill_weight if o.distill_weight is not None else (DISTILL_WEIGHT if teacher else 0.0)
    return {"teacher": teacher if weight > 0 else None, "distill_weight": weight if teacher else 0.0}


def _linear_layers(o: TrainOptions, init_ckpt: Optional[dict], plan: Optional[PrecisionPlan]) -> bool:
    """``linear_layers``: as given (admm only); by default :func:`auto_linear_layers`, where the starting
    model's sizes have Hadamard matrices and its embeddings are not tied (else off)."""
    if o.linear_layers is not None:
        if o.method != "admm":
            raise AdmmqError("--linear-layers/--no-linear-layers apply to --method admm (bin-lin always has them)")
        return o.linear_layers
    if o.method != "admm" or plan is not None or not auto_linear_layers(o.qset, o.tying, init_ckpt is not None):
        return False
    return can_insert(ModelConfig.from_dict(init_ckpt["model_config"]))


def resolve_options(o: TrainOptions, quiet: bool = True) -> RunSettings:
    """The run's configurations from the options (module docstring: which default comes from where)."""
    if o.method not in METHODS:
        raise AdmmqError(f"method must be one of {', '.join(sorted(METHODS))}, got {o.method!r}")
    parse_qset(o.qset)  # a bad set name is an error before any data is read
    plan = _precision_plan(o, quiet)
    init_ckpt = read_checkpoint(resolve_lm_path(o.init_from)) if o.init_from else None
    per_epoch, batches = o.admm_interval if o.admm_interval is not None else (None, None)
    schedule = admm_schedule(o.admm_schedule, o.init_from is not None, gamma=o.gamma,
                             gamma_growth=o.gamma_growth, gamma_max=o.gamma_max,
                             gamma_restart_after=o.gamma_restart_after,
                             gamma_restart_growth=o.gamma_restart_growth, thaw=o.thaw, admm_per_epoch=per_epoch,
                             admm_interval=batches, warm_start=o.warm_start, alpha_lr=o.alpha_lr,
                             optimizer=o.optimizer, lr=o.lr, min_improvement=o.min_improvement)
    if batches and schedule.get("admm_per_epoch") == 0 and o.admm_schedule != "paper":
        counted = [f"--{k.replace('_', '-')}" for k in ("gamma_growth", "gamma_restart_after")
                   if getattr(o, k) is None and schedule.get(k) not in (None, 0, 1.0)]
        if counted:
            raise AdmmqError(f"--admm-interval {batches} (mini-batches) counts γ's schedule in ADMM iterations, "
                             f"but the schedule's {' and '.join(counted)} are per epoch: give them in iterations "
                             f"too, or the interval as K/epoch")
    training = {k: schedule.pop(k, None) for k in TRAINING_KEYS}  # the schedule's apply to admm only
    if o.method != "admm":
        training = {"optimizer": o.optimizer, "lr": o.lr, "min_improvement": o.min_improvement}
    optimizer = training["optimizer"] or "sgd"
    min_improvement = training["min_improvement"]
    if min_improvement is None:
        min_improvement = DEFAULT_MIN_IMPROVEMENT
    lr = training["lr"]
    if lr is None and optimizer == "adam":
        lr = ADAM_LR
    elif lr is None:
        start = finishing_lr(init_ckpt) if init_ckpt is not None else None
        lr = start if start is not None else 1.0
    dropout = o.dropout
    if dropout is None:
        dropout = init_dropout(init_ckpt, METHODS[o.method].quantized) if init_ckpt is not None else 0.0
    factory = METHODS[o.method]
    method_cfg = MethodConfig(method=o.method, qset=o.qset, tying=o.tying, **schedule,
                              extragradient=o.extragradient, eta1=o.eta1, alpha_init=o.alpha_init,
                              projection_start=o.projection_start, keep_fp=tuple(o.keep_fp), bits=o.bits,
                              act_bits=o.act_bits, cycles=o.cycles, linear_layers=_linear_layers(o, init_ckpt, plan),
                              precision=plan.pairs if plan else (),
                              precision_note=plan.note if plan else "")
    cfg = TrainConfig(
        train=o.train, valid=o.valid, text_format=o.text_format, units=o.units, vocab=o.vocab,
        vocab_size=o.vocab_size, min_count=o.min_count, unk=o.unk, spm_model=o.spm_model,
        spm_vocab_size=o.spm_vocab_size, epochs=factory.default_epochs if o.epochs is None else o.epochs,
        batch_size=o.batch_size, bptt=o.bptt, lr=lr, optimizer=optimizer, momentum=o.momentum,
        weight_decay=o.weight_decay, clip=o.clip, loss_norm=o.loss_norm, self_norm=o.self_norm,
        schedule=o.schedule or factory.default_schedule, lr_decay=o.lr_decay, min_improvement=min_improvement,
        restore_best=factory.quantized if o.restore_best is None else o.restore_best,
        seed=o.seed, max_sentences=o.max_sentences, save_every=o.save_every, device=o.device or "auto",
        eval_batch_tokens=o.eval_batch_tokens, init_from=o.init_from, **_distillation(o, factory.quantized))
    model_cfg = ModelConfig(vocab_size=0, embed_dim=o.embed_dim, hidden_dim=o.hidden_dim, layers=o.layers,
                            dropout=dropout, tie_embeddings=o.tie_embeddings)
    return RunSettings(cfg, model_cfg, method_cfg, plan)
