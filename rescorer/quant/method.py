"""How a training method plugs into the trainer.

The trainer (:mod:`rescorer.train.loop`) owns the data, the optimizer, the
learning-rate schedule, validation and checkpoints.  A
:class:`TrainingMethod` owns what differs between full-precision training
and each quantized training method:

* how one mini-batch updates the model (``train_step``: straight-through
  quantized forward passes, ADMM's penalty and extra-gradient step, ...);
* what happens at the end of an epoch (``end_epoch``: ADMM's projection and
  multiplier update);
* which model is deployed (``quantized_matrices``: the matrices evaluation,
  export and rescoring use instead of the full-precision ones);
* its own resumable state (``state_dict`` / ``load_state_dict``, plain tensors).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch

from rescorer.lm.batching import Batch
from rescorer.errors import AdmmqError, MismatchError
from rescorer.settings import settings_from_dict
from rescorer.lm.distillation import distillation_loss
from rescorer.lm.model import LSTMLM, ModelConfig, State
from rescorer.lm.quantized import QuantizedMatrix
from rescorer.quant.linear_layers import insert_linear_layers, with_linear_layers


EXTRAGRADIENTS = ("none", "penalty", "past", "full", "quantized")

#: What happens to Θ after each ADMM iteration (``--warm-start``): ``none`` = nothing (the paper);
#: ``centre`` = Θ moved by the change of the penalty's centre Q − λ (drifts: Θ + λ, which eq. 18
#: projects, then jumps by the change of Q, so α creeps up; kept to reproduce RESULTS_admm.md §1);
#: ``quantized`` = Θ ← Q, eq. 21's λ absorbing the difference, so Θ + λ is unchanged.
WARM_STARTS = ("none", "centre", "quantized")

#: ADMM schedules, every count in epochs of the training text (recipes/ptb/RESULTS_admm.md):
#: ``paper`` = one ADMM iteration (eqs. 18-21) per epoch, fixed γ, SGD (the paper, section 4);
#: ``trained`` = from a trained model: 40 iterations per epoch, Θ ← Q after each (warm start
#: ``quantized``), γ 1e-3, SGD at the model's last rate (the default for tables of three or more levels
#: until RESULTS_admm.md §15);
#: ``trained-adam`` = from a trained model into any table (``auto``'s choice): 80 iterations per epoch, Adam
#: at 1e-2 (its rate halved when an epoch gains under 1 %), γ from 5e-4 growing ×1.9 per epoch up to 1e-1, and
#: once, after 6 epochs, from 5e-4 again growing ×5.4 per epoch (a loose penalty lets the frozen codes
#: move once more), and a factor per matrix on α trained by Adam at 1e-2 (``alpha_lr``, :mod:`.trained_scale`).
#: ``optimizer``, ``lr`` and ``min_improvement`` are training settings (:class:`rescorer.train.config.TrainConfig`).
ADMM_SCHEDULES = {
    "paper": {"admm_per_epoch": 1, "admm_interval": 0, "warm_start": "none", "gamma": 3e-3, "gamma_growth": 1.0,
              "gamma_max": 0.0, "gamma_restart_after": 0, "gamma_restart_growth": 0.0, "optimizer": "sgd"},
    "trained": {"admm_per_epoch": 40, "admm_interval": 0, "warm_start": "quantized", "gamma": 1e-3,
                "gamma_growth": 1.0, "gamma_max": 0.0, "gamma_restart_after": 0, "gamma_restart_growth": 0.0,
                "optimizer": "sgd"},
    "trained-adam": {"admm_per_epoch": 80, "admm_interval": 0, "warm_start": "quantized", "gamma": 5e-4,
                     "gamma_growth": 1.9, "gamma_max": 1e-1, "gamma_restart_after": 6.0,
                     "gamma_restart_growth": 5.4, "alpha_lr": 1e-2, "optimizer": "adam", "lr": 1e-2,
                     "min_improvement": 0.01},
}
#: The schedule entries that are training settings, not :class:`MethodConfig` fields (a schedule without
#: ``lr`` or ``min_improvement`` leaves the trainer's default; its ``lr`` is for its own optimizer).
TRAINING_KEYS = ("optimizer", "lr", "min_improvement")


def short_number(x: float) -> str:
    """5e-4, 1e-3, 0.1: how the docs write γ."""
    return f"{x:.0e}".replace("e-0", "e-") if 0 < x <= 0.01 else f"{x:g}"


def describe_schedule(name: str) -> str:
    """One line saying what schedule ``name`` of :data:`ADMM_SCHEDULES` sets (the CLI's help), e.g.
    ``80 per epoch, warm start, Adam at 1e-2, γ from 5e-4 growing ×1.9 per epoch to 0.1, …``."""
    s = ADMM_SCHEDULES[name]
    k = s["admm_per_epoch"]
    parts = ["one ADMM iteration per epoch" if k == 1 else f"{k} per epoch"]
    if s["warm_start"] != "none":
        parts.append("warm start")
    opt = "Adam" if s["optimizer"] == "adam" else "SGD"
    parts.append(f"{opt} at {short_number(s['lr'])}" if "lr" in s else opt)
    if s["gamma_growth"] == 1.0:
        parts.append(f"γ {short_number(s['gamma'])}, fixed")
    else:
        cap = f" to {short_number(s['gamma_max'])}" if s["gamma_max"] > 0 else ""
        parts.append(f"γ from {short_number(s['gamma'])} growing ×{s['gamma_growth']:g} per epoch{cap}")
    if s["gamma_restart_after"] > 0:
        growth = s["gamma_restart_growth"] or s["gamma_growth"]
        parts.append(f"started again after {s['gamma_restart_after']:g} epochs growing ×{growth:g} per epoch")
    if s.get("alpha_lr", 0) > 0:
        parts.append(f"α's factor trained at {short_number(s['alpha_lr'])}")
    if "min_improvement" in s:
        parts.append(f"the rate halved when an epoch gains under {s['min_improvement']:.0%}")
    return ", ".join(parts)


def auto_schedule(from_trained: bool) -> str:
    """``auto``'s schedule: ``trained-adam`` from a trained model, whatever its tables (RESULTS_admm.md §15),
    ``paper`` from scratch."""
    return "trained-adam" if from_trained else "paper"


def auto_linear_layers(qset: str, tying: str, from_trained: bool) -> bool:
    """ADMM's default for ``linear_layers``: on for the layer-tied tables {±1} (every matrix one scale times a
    sign, the model Bin+Lin quantizes) and {0,±1} started from a trained model; with them layer {±1} leads the
    equally tuned Bin+Lin at every epoch at 10k and 24k sentences (RESULTS_admm.md §16) and layer {0,±1}
    gains at every corpus size (§17).  Off for node tying and the other tables (node {±1,±2,±4} is within
    2 % of the STD without them) and from scratch (not measured)."""
    return from_trained and qset in ("pm1", "0pm1") and tying == "layer"


def admm_schedule(name: str, from_trained: bool, **given) -> dict:
    """The ADMM schedule settings of ``name`` (``auto``: :func:`auto_schedule`), with the ``given``
    (not None) settings taking precedence."""
    if name == "auto":
        name = auto_schedule(from_trained)
    if name not in ADMM_SCHEDULES:
        raise AdmmqError(f"ADMM schedule must be auto, {', '.join(ADMM_SCHEDULES)}, got {name!r}")
    out = dict(ADMM_SCHEDULES[name])
    if given.get("optimizer") not in (None, out.get("optimizer")):
        out.pop("lr", None)  # the schedule's rate is for its own optimizer
    out.update({k: v for k, v in given.items() if v is not None})
    return out


@dataclass(frozen=True)
class MethodConfig:
    """Which training method, with its settings (only those the method reads matter).

    ADMM (``admm``): ``qset`` quantization set, ``tying`` layer|node|none,
    ``gamma`` penalty γ (eq. 14; per-token-mean cross entropy), ``gamma_growth``
    factor applied to γ after each ADMM iteration (1 = the paper's fixed γ) up to
    ``gamma_max`` (0 = no cap), ``gamma_restart_after`` the ADMM iteration after which γ starts
    again from ``gamma`` (once; 0 = never) and grows from then on by ``gamma_restart_growth``
    (0 = by ``gamma_growth``), ``admm_interval`` the quantization and multiplier
    updates (eqs. 18-21) every that many mini-batches (0 = once per epoch, the paper),
    ``warm_start`` what happens to Θ after each of them (:data:`WARM_STARTS`),
    ``extragradient`` none|penalty|past|full and ``eta1`` its look-ahead step η₁ as
    a multiple of the learning rate (η₂ is the learning rate), ``alpha_init``
    one|mean and ``projection_start`` exact|given (see :mod:`.qsets`), ``alpha_lr``
    Adam's rate for a factor per matrix on α trained on the loss (0 = eq. 20's α
    alone; :mod:`.trained_scale`), ``linear_layers`` Bin+Lin's two partially quantized linear layers added
    to the model (:mod:`.linear_layers`; :func:`auto_linear_layers` says when by default), ``thaw``: when an
    epoch stalls with the codes frozen (its last ADMM iteration changed none), γ's warm-up starts again from
    ``gamma`` (growing by ``gamma_restart_growth``) instead of the rate being halved, and the next epoch is not
    judged (:meth:`TrainingMethod.thaw`; replaces ``gamma_restart_after`` from then on).
    Multi-bit (``multibit``): ``bits`` per weight, ``act_bits`` per LSTM input
    activation (0 = full precision), ``cycles`` alternating cycles after the greedy
    start.  All quantized methods: ``keep_fp`` weight matrices left in full precision.
    Mixed precision (ADMM): ``precision`` pairs (matrix, quantization set) overriding
    ``qset`` per matrix (:mod:`.mixed`), ``precision_note`` how they were chosen.
    """

    method: str = "fp"
    qset: str = "pm1"
    tying: str = "layer"
    gamma: float = 3e-3
    gamma_growth: float = 1.0
    gamma_max: float = 0.0
    gamma_restart_after: float = 0
    gamma_restart_growth: float = 0.0
    admm_interval: int = 0
    admm_per_epoch: int = 0
    warm_start: str = "none"
    extragradient: str = "past"
    eta1: float = 1.0
    alpha_init: str = "one"
    projection_start: str = "exact"
    alpha_lr: float = 0.0
    linear_layers: bool = False
    thaw: bool = False
    keep_fp: Tuple[str, ...] = ()
    bits: int = 2
    act_bits: int = 0
    cycles: int = 2
    precision: Tuple[Tuple[str, str], ...] = ()
    precision_note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep_fp", tuple(self.keep_fp))
        if isinstance(self.warm_start, bool):  # checkpoints of admmq before the modes: True was ``centre``
            object.__setattr__(self, "warm_start", "centre" if self.warm_start else "none")
        object.__setattr__(self, "precision", tuple((str(n), str(q)) for n, q in self.precision))
        checks = [
            (self.tying in ("layer", "node", "none"), f"tying must be layer, node or none, got {self.tying!r}"),
            (self.warm_start in WARM_STARTS, f"warm start must be one of {WARM_STARTS}, got {self.warm_start!r}"),
            (self.extragradient in EXTRAGRADIENTS,
             f"extragradient must be one of {EXTRAGRADIENTS}, got {self.extragradient!r}"),
            (self.alpha_init in ("one", "mean"), f"alpha init must be one or mean, got {self.alpha_init!r}"),
            (self.projection_start in ("exact", "given"),
             f"projection start must be exact or given, got {self.projection_start!r}"),
            (self.gamma >= 0 and self.gamma_growth > 0 and self.eta1 >= 0 and self.gamma_max >= 0,
             f"gamma >= 0, gamma growth > 0, gamma max >= 0 and eta1 >= 0 required (got {self.gamma}, "
             f"{self.gamma_growth}, {self.gamma_max}, {self.eta1})"),
            (self.alpha_lr >= 0, f"alpha lr must be >= 0 (0 = eq. 20's α alone), got {self.alpha_lr}"),
            (self.gamma_restart_after >= 0 and self.gamma_restart_growth >= 0,
             f"gamma restart after >= 0 ADMM iterations and gamma restart growth >= 0 required (got "
             f"{self.gamma_restart_after}, {self.gamma_restart_growth})"),
            (self.admm_interval >= 0, f"admm interval must be >= 0 batches (0 = once per epoch), got "
                                      f"{self.admm_interval}"),
            (self.admm_per_epoch >= 0 and not (self.admm_per_epoch and self.admm_interval),
             f"admm iterations per epoch must be >= 0 and not given with an interval in mini-batches (got "
             f"{self.admm_per_epoch} per epoch, every {self.admm_interval} mini-batches)"),
            (1 <= self.bits <= 8 and 0 <= self.act_bits <= 8 and self.cycles >= 0,
             f"bits must be 1..8, act bits 0..8 and cycles >= 0 (got {self.bits}, {self.act_bits}, "
             f"{self.cycles})"),
        ]
        for ok, msg in checks:
            if not ok:
                raise AdmmqError(msg)

    @property
    def schedule_unit(self) -> str:
        """What γ's growth and restart count: ``epoch`` (fractions of an epoch, the same on every corpus;
        with ``admm_per_epoch``) or ``iteration`` (ADMM iterations, with an interval in mini-batches)."""
        return "epoch" if self.admm_per_epoch > 0 else "iteration"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MethodConfig":
        return settings_from_dict(cls, d, "method")


class TrainingMethod:
    """Full-precision training (the paper's STD baseline); the base of every method."""

    name = "fp"
    quantized = False
    default_epochs = 10  # what `admmq train` uses when --epochs is not given
    default_schedule = "newbob"

    #: set by a data-parallel trainer: sums ``.grad`` over the processes (:class:`rescorer.train.distributed.Dist`)
    grad_sync: Optional[Callable[[LSTMLM], None]] = None

    #: ``bin-lin``: Bin+Lin's linear layers whatever ``MethodConfig.linear_layers`` says
    always_linear_layers = False

    def __init__(self, cfg: MethodConfig):
        self.cfg = cfg

    @property
    def linear_layers(self) -> bool:
        """Whether the trained model has Bin+Lin's two linear layers (:mod:`.linear_layers`)."""
        return self.always_linear_layers or self.cfg.linear_layers

    def adapt_model_config(self, cfg: ModelConfig) -> ModelConfig:
        """The model shape this method trains: with Bin+Lin's linear layers when ``linear_layers`` asks for
        them (``bin-lin`` always; :mod:`.linear_layers`)."""
        return with_linear_layers(cfg) if self.linear_layers else cfg

    def adapt_init_weights(self, weights: Dict[str, torch.Tensor], cfg: ModelConfig,
                           source: str) -> Dict[str, torch.Tensor]:
        """The ``--init-from`` checkpoint's weights made to fit :meth:`adapt_model_config`'s shape (the
        linear layers started orthogonal, so the function stays the trained model's)."""
        return insert_linear_layers(weights, cfg, source) if self.linear_layers else weights

    def setup(self, model: LSTMLM) -> None:
        """Initialise the method's state for a fresh run (not called on resume)."""

    def begin_epoch(self, epoch: int, n_batches: int, start: int) -> None:
        """Called before an epoch's first batch (or, on resume, before batch ``start`` + 1): the 0-based
        ``epoch`` of ``n_batches`` mini-batches, ``start`` of them already done."""

    #: set by the trainer for knowledge distillation (``--teacher``): the teacher LM and the weight β of its
    #: soft targets (:mod:`rescorer.lm.distillation`)
    teacher: Optional[LSTMLM] = None
    distill_weight: float = 0.0

    def forward_loss(self, model: LSTMLM, batch: Batch,
                     state: Optional[State]) -> Tuple[torch.Tensor, torch.Tensor, State]:
        """(objective to minimise, cross entropy against the data, final state) of the batch in the
        training forward pass, both summed over its tokens; the objective is the cross entropy unless a
        teacher is set."""
        if self.teacher is not None:
            return distillation_loss(model, self.teacher, batch.inputs, batch.targets, self.distill_weight, state)
        loss, state = model.loss(batch.inputs, batch.targets, state)
        return loss, loss, state

    def train_step(self, model: LSTMLM, optimizer: torch.optim.Optimizer, batch: Batch,
                   state: Optional[State], clip: float) -> Tuple[torch.Tensor, Optional[State]]:
        """One update; returns the summed loss (detached, on the device) and the carried state."""
        optimizer.zero_grad(set_to_none=True)
        objective, loss, new_state = self.forward_loss(model, batch, state)
        (objective / batch.norm).backward()
        self.sync_gradients(model)
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        self.after_step(model)
        return loss.detach(), new_state

    def sync_gradients(self, model: LSTMLM) -> None:
        """Right after every backward pass, before clipping: sum the gradients over data-parallel processes."""
        if self.grad_sync is not None:
            self.grad_sync(model)

    def after_step(self, model: LSTMLM) -> None:
        """Hook after each optimizer step (e.g. clip latent weights to [-1, 1])."""

    def end_epoch(self, model: LSTMLM, epoch: int) -> Dict[str, float]:
        """End-of-epoch work; returns figures for the training log."""
        return {}

    def quantized_matrices(self, model: LSTMLM) -> Dict[str, QuantizedMatrix]:
        """The quantized weight matrices of the deployed model (empty: full precision)."""
        return {}

    def training_point(self, model: LSTMLM) -> Dict[str, torch.Tensor]:
        """Matrices the training forward pass uses in place of the model's parameters (ADMM's trained
        scales: c·Θ), for the full-precision validation figure; empty: the parameters themselves."""
        return {}

    def quantized_names(self, model: LSTMLM) -> List[str]:
        """The weight matrices this method quantizes: all of them but ``keep_fp``."""
        names = model.weight_matrix_names()
        unknown = [n for n in getattr(self.cfg, "keep_fp", ()) if n not in names]
        if unknown:
            raise AdmmqError(f"--keep-fp {', '.join(unknown)}: not a weight matrix of the model; "
                             f"choose from {', '.join(names)}")
        return [n for n in names if n not in self.cfg.keep_fp]

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def thaw(self) -> bool:
        """Called by the trainer when an epoch stalled (gained under ``min_improvement``): True if the method
        answered it itself (ADMM's ``thaw`` with frozen codes: γ started again), and the rate stays; False:
        the trainer halves the rate as usual."""
        return False

    def restore_position(self, state: dict) -> None:
        """Go back to an earlier state (``restore_best``): where the method stood then, keeping the schedule
        where it is now (the training progress goes on)."""
        self.load_state_dict(state)


def deployed_state_dict(model: LSTMLM, qmats: Dict[str, QuantizedMatrix]) -> Dict[str, torch.Tensor]:
    """The model's state dict with each quantized matrix replaced by its dequantized values."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for name, q in qmats.items():
        if name not in sd:
            raise MismatchError(f"quantized matrix {name!r} is not a parameter of the model")
        sd[name] = q.dequantize().to(sd[name].dtype).to(sd[name].device)
    return sd
