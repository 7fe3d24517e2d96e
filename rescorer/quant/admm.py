"""ADMM quantized training (the paper, section 4, eqs. 13-21).

State per quantized weight matrix Θ (R, C): the quantized variable Q = α·V
(codes V (R, C) uint8 into the quantization set, scales α (G,) per tying
group) and the scaled multiplier λ (R, C).  One ADMM iteration per epoch:

1. full-precision update (eqs. 14-17): every mini-batch is an SGD step on
   ``L = F_ce(Θ) + γ/2 ‖Θ − Q + λ‖²`` whose penalty gradient ``γ(Θ − Q + λ)``
   (eq. 16) is added analytically to the back-propagated cross-entropy
   gradient.  The extra-gradient step of eq. 17 comes in four forms
   (``--extragradient``), with η₁ = ``eta1`` × learning rate and η₂ = the
   learning rate:

   * ``full``: the standard (Korpelevich) form, Θ̄ = Θ − η₁∇L(Θ),
     Θ ← Θ − η₂∇L(Θ̄); two forward/backward passes per mini-batch (≈ 2× cost).
     (The paper's eq. 17 writes Θ ← Θ̄ − η₂∇L(Θ̄), i.e. two plain steps; the
     standard form steps from Θ with the look-ahead gradient, which is what
     makes it an extra-gradient method.)
   * ``past`` (default): extrapolation from the past (Popov 1980): the
     look-ahead reuses the previous mini-batch's gradient,
     Θ̄ = Θ − η₁ g_prev, g = ∇L(Θ̄), Θ ← Θ − η₂ g, g_prev ← g.  One
     forward/backward pass per mini-batch, the same look-ahead structure.
   * ``penalty``: look-ahead on the penalty only, with the cross-entropy
     gradient reused.  Algebraically this is the plain step scaled by
     (1 − η₁γ) on the quantized matrices, so it is offered for comparison only.
   * ``none``: plain SGD on L.

2. quantization update (eqs. 18-20): Q = α·V = projection of Θ + λ onto the
   table, alternating V (eq. 19) and α (eq. 20) until no code changes
   (:func:`rescorer.quant.qsets.project`).
3. multiplier update (eq. 21): λ ← λ + Θ − Q.

Schedule (when 2-3 run, γ's growth, its restart and the thaw): :mod:`.penalty_schedule`.

Warm start (``MethodConfig.warm_start``), after each iteration: ``quantized``
sets Θ ← Q; with eq. 21's λ the sum Θ + λ (the "shadow" weights eq. 18
projects) is unchanged, the next cross-entropy gradients are taken next to the
deployed model, and the penalty γ(Θ − Q + λ) pulls Θ + λ towards its
projection.  ``centre`` moves Θ by the change of the centre Q − λ, which makes
Θ + λ jump by the change of Q at each iteration: every α change feeds back
into the next projection and α creeps up (RESULTS_admm.md §4).

Trained scales (``MethodConfig.alpha_lr`` > 0, :mod:`.trained_scale`): the forward pass of step 1
uses c·Θ (c·Q with the gradient at Q) for a factor c per matrix that Adam trains on the loss; the
deployed matrix is c·α·V.  Steps 2-3 keep eq. 20's Q = α·V.

Linear layers (``MethodConfig.linear_layers``, :mod:`.linear_layers`): the model gets Bin+Lin's two
partially quantized linear layers; their matrices are quantized like every other (their per-output
scales and biases are full precision).

Mixed precision (``MethodConfig.precision``, :mod:`.mixed`): each matrix has
its own table (``qset_of``); every update above is per matrix, so nothing
else changes.

The deployed model is Q (:meth:`AdmmMethod.quantized_matrices`); the trainer
evaluates it after every iteration and keeps the best.  ``tying="none"`` is
the paper's "NoTie {1}" row: every weight is its own table, so Q = Θ + λ, λ
stays 0, the penalty is a proximal term towards the previous iteration's Θ,
and the deployed model is full precision.
"""

from __future__ import annotations

import math
import time
from typing import Dict, List, Optional, Tuple

import torch

from rescorer.lm.batching import Batch
from rescorer.errors import AdmmqError
from rescorer.lm.model import LSTMLM, State
from rescorer.quant.method import MethodConfig, TrainingMethod
from rescorer.quant.penalty_schedule import gamma_after_iteration, gamma_at
from rescorer.lm.quantized import QuantizedMatrix
from rescorer.quant.qsets import QuantSet, alpha_start, parse_qset, project
from rescorer.quant.trained_scale import TrainedScales


class AdmmMethod(TrainingMethod):
    name = "admm"
    quantized = True
    default_epochs = 50  # one ADMM iteration per epoch, 50 iterations (the paper)
    default_schedule = "plateau"  # halve the lr on stalls of the quantized model, never stop early

    def __init__(self, cfg: MethodConfig):
        super().__init__(cfg)
        self.qset = parse_qset(cfg.qset)
        self.qsets = {name: parse_qset(spec) for name, spec in cfg.precision}  # per-matrix tables (mixed)
        self.quantized = cfg.tying != "none"
        self.gamma = float(cfg.gamma)
        self.iteration = 0
        self.since_update = 0  # mini-batches since the last ADMM iteration (interval schedule)
        self.epoch = 0  # where training stands (begin_epoch / train_step): epoch, batches done of n_batches
        self.batch = 0
        self.n_batches = 0
        self.epoch_updates = 0  # ADMM iterations in the epoch so far
        self.names: List[str] = []
        self.codes: Dict[str, torch.Tensor] = {}  # (R, C) uint8: V
        self.alpha: Dict[str, torch.Tensor] = {}  # (G,) float32: α per tying group
        self.lam: Dict[str, torch.Tensor] = {}  # (R, C) float32: λ
        self.target: Dict[str, torch.Tensor] = {}  # (R, C): Q − λ, where the penalty pulls Θ
        self.g_prev: Dict[str, torch.Tensor] = {}  # ``past`` extra-gradient: last gradient, every parameter
        self.last_figures: Dict[str, float] = {}  # of the latest ADMM iteration in this epoch
        self.scales: Optional[TrainedScales] = None  # ``alpha_lr`` > 0: a factor on α per matrix, trained
        self.last_changed = -1  # codes the latest ADMM iteration changed (-1: none run yet)
        self.thaw_at = -1.0  # training progress (epochs) of the latest thaw (``thaw``; -1: none)

    # ---------------------------------------------------------------- state
    def qset_of(self, name: str) -> QuantSet:
        """The quantization table of one matrix: its ``precision`` entry, else ``qset``."""
        return self.qsets.get(name, self.qset)

    def _factor(self, name: str) -> float:
        """The trained factor c on α of one matrix (1 without ``alpha_lr``)."""
        return 1.0 if self.scales is None else self.scales.factor(name)

    def _dense_q(self, name: str) -> torch.Tensor:
        """Q = α·levels[V] of one matrix: (R, C) float32."""
        codes, alpha = self.codes[name], self.alpha[name]
        levels = self.qset_of(name).tensor(codes.device)
        return levels[codes.long()] * alpha.reshape(-1, 1)

    def _refresh_target(self, name: str) -> None:
        self.target[name] = self._dense_q(name) - self.lam[name]

    def setup(self, model: LSTMLM) -> None:
        """Q⁽⁰⁾ = projection of the initial Θ (α started per ``alpha_init``), λ⁽⁰⁾ = 0."""
        self.names = self.quantized_names(model)
        unknown = sorted(set(self.qsets) - set(self.names))
        if unknown:
            raise AdmmqError(f"precision given for {', '.join(unknown)}, which is not a quantized weight matrix; "
                             f"choose from {', '.join(self.names)}")
        params = dict(model.named_parameters())
        for name in self.names:
            theta = params[name].detach()
            if not self.quantized:
                self.target[name] = theta.clone()
                continue
            alpha0 = alpha_start(theta, self.cfg.tying, self.cfg.alpha_init)
            proj = project(theta, self.qset_of(name), self.cfg.tying, alpha0, self.cfg.projection_start)
            self.codes[name], self.alpha[name] = proj.codes, proj.alpha
            self.lam[name] = torch.zeros_like(theta)
            self._refresh_target(name)
        if self.quantized and self.cfg.alpha_lr > 0:
            self.scales = TrainedScales(self.names, self.cfg.alpha_lr)

    def _to_device(self, model: LSTMLM) -> None:
        dev = next(model.parameters()).device
        for store in (self.codes, self.alpha, self.lam, self.target, self.g_prev):
            for k, v in store.items():
                if v.device != dev:
                    store[k] = v.to(dev)

    def begin_epoch(self, epoch: int, n_batches: int, start: int) -> None:
        self.epoch, self.n_batches, self.batch = epoch, n_batches, start

    def progress(self) -> float:
        """Training progress in epochs: 0-based epoch plus the done fraction of this one."""
        return self.epoch + (self.batch / self.n_batches if self.n_batches else 0.0)

    def _iteration_due(self) -> bool:
        """After this mini-batch, an ADMM iteration? (K per epoch, evenly; or every N mini-batches.)"""
        k, n = self.cfg.admm_per_epoch, self.n_batches
        if k > 0 and n > 0:
            return (self.batch * k) // n > ((self.batch - 1) * k) // n
        interval = self.cfg.admm_interval
        return interval > 0 and self.since_update >= interval

    # ---------------------------------------------------- full-precision step
    def _gradient(self, model: LSTMLM, optimizer: torch.optim.Optimizer, batch: Batch, state: Optional[State],
                  clip: float, at_q: bool = False) -> Tuple[torch.Tensor, State]:
        """∇L at the current parameters into ``.grad``: clipped ∇F_ce plus γ(Θ − Q + λ) (eq. 16).

        ``at_q``: ∇F_ce is taken at the quantized point (each quantized matrix replaced by Q, the
        other parameters as they are), the penalty gradient at Θ.
        """
        params = dict(model.named_parameters())
        saved, used = {}, {}
        if (at_q or self.scales is not None) and self.quantized:
            for name in self.names:  # the forward pass at c·X, X = Q or Θ (c = 1 without trained scales)
                saved[name] = params[name].detach().clone()
                used[name] = self._dense_q(name) if at_q else saved[name]
                params[name].data.copy_(used[name] * self._factor(name))
        optimizer.zero_grad(set_to_none=True)
        objective, loss, new_state = self.forward_loss(model, batch, state)
        (objective / batch.norm).backward()
        for name, theta in saved.items():
            params[name].data.copy_(theta)
        self.sync_gradients(model)  # data-parallel: the global batch's ∇F_ce, before clip and penalty
        if self.scales is not None:
            for name in self.names:  # ∂L/∂u, and c·∂L/∂W into Θ's gradient
                self.scales.take_gradient(name, params[name].grad, used[name])
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        if self.gamma > 0:
            for name in self.names:
                p = params[name]
                p.grad.add_(p.detach(), alpha=self.gamma).sub_(self.target[name], alpha=self.gamma)
        return loss, new_state

    def train_step(self, model: LSTMLM, optimizer: torch.optim.Optimizer, batch: Batch, state: Optional[State],
                   clip: float) -> Tuple[torch.Tensor, Optional[State]]:
        self._to_device(model)
        mode = self.cfg.extragradient
        step = self.cfg.eta1 * optimizer.param_groups[0]["lr"]  # η₁
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if mode == "past" and self.g_prev:
            for n, p in named:  # Θ̄ = Θ − η₁ g_prev
                p.data.add_(self.g_prev[n], alpha=-step)
        loss, new_state = self._gradient(model, optimizer, batch, state, clip, at_q=mode == "quantized")
        if mode == "past":
            if self.g_prev:
                for n, p in named:  # back to Θ; the step below uses ∇L(Θ̄)
                    p.data.add_(self.g_prev[n], alpha=step)
            self.g_prev = {n: p.grad for n, p in named}
        elif mode == "full":
            g1 = {n: p.grad for n, p in named}
            for n, p in named:  # Θ̄ = Θ − η₁ ∇L(Θ)
                p.data.add_(g1[n], alpha=-step)
            self._gradient(model, optimizer, batch, state, clip)  # ∇L(Θ̄), same batch
            for n, p in named:
                p.data.add_(g1[n], alpha=step)
        elif mode == "penalty" and self.gamma > 0:
            # ∇L(Θ̄), ∇F reused, Θ̄ = Θ − η₁∇L(Θ): (1 − η₁γ)∇L(Θ) on the quantized matrices
            params = dict(named)
            for name in self.names:
                params[name].grad.mul_(1.0 - step * self.gamma)
        optimizer.step()  # Θ ← Θ − η₂ ∇L(Θ̄)
        if self.scales is not None:
            self.scales.step()
        self.after_step(model)
        self.since_update += 1
        self.batch += 1
        if self._iteration_due():
            self.last_figures = self.admm_iteration(model)
        return loss.detach(), new_state

    # ------------------------------------------------------ ADMM iteration
    def end_epoch(self, model: LSTMLM, epoch: int) -> Dict[str, float]:
        """The epoch's last ADMM iteration (unless its last batch ran one); returns log figures."""
        figures = self.admm_iteration(model) if self.since_update > 0 or not self.last_figures \
            else dict(self.last_figures)
        figures["admm_updates"] = self.epoch_updates
        if self.scales is not None:
            figures.update(self.scales.figures())
        self.epoch_updates = 0
        self.last_figures = {}
        return figures

    def gamma_at(self, t: float) -> float:
        """γ(t) of the epoch-unit schedule at ``t`` epochs of training (:func:`.penalty_schedule.gamma_at`)."""
        return gamma_at(self.cfg, t, self.thaw_at)

    def thaw(self) -> bool:
        """``thaw`` on a stalled epoch whose last ADMM iteration changed no code: γ's warm-up starts again
        from ``gamma`` now (a looser eq. 14 penalty lets the codes move, eq. 18), growing by
        ``gamma_restart_growth`` per epoch; True if it did (the trainer keeps the rate)."""
        if not (self.cfg.thaw and self.quantized and self.cfg.schedule_unit == "epoch" and self.last_changed == 0):
            return False
        self.thaw_at = float(self.epoch + 1)  # called after the epoch's end: progress = the next epoch's start
        self.gamma = self.gamma_at(self.thaw_at)
        return True

    def _next_gamma(self, gamma_used: float) -> float:
        """γ for the mini-batches after iteration ``self.iteration`` (just counted)."""
        if self.cfg.schedule_unit == "epoch":
            return self.gamma_at(self.progress())
        return gamma_after_iteration(self.cfg, self.iteration, gamma_used)

    def admm_iteration(self, model: LSTMLM) -> Dict[str, float]:
        """Quantization update (eqs. 18-20) and multiplier update (eq. 21); returns log figures."""
        self._to_device(model)
        t0 = time.perf_counter()
        params = dict(model.named_parameters())
        gamma_used = self.gamma
        self.iteration += 1
        self.since_update = 0
        self.epoch_updates += 1
        self.gamma = self._next_gamma(gamma_used)
        if not self.quantized:  # NoTie: Q = Θ + λ, λ stays 0; the penalty recentres on Θ
            for name in self.names:
                self.target[name] = params[name].detach().clone()
            return {"admm_iter": self.iteration, "admm_gamma": gamma_used}
        res2 = theta2 = dual2 = lam2 = 0.0
        changed = total = alternations = 0
        for name in self.names:
            theta = params[name].detach()
            if not bool(torch.isfinite(theta).all()):  # never project (and save) garbage
                raise AdmmqError(f"ADMM diverged in iteration {self.iteration}: {name} holds non-finite values "
                                 f"(gamma {gamma_used:g}); nothing was saved from this iteration; "
                                 f"lower --gamma or --lr")
            q_old = self._dense_q(name)
            proj = project(theta + self.lam[name], self.qset_of(name), self.cfg.tying, self.alpha[name],
                           self.cfg.projection_start)  # eqs. 18-20 on Θ⁽ᵏ⁺¹⁾ + λ⁽ᵏ⁾
            changed += int((proj.codes != self.codes[name]).sum())
            total += proj.codes.numel()
            alternations = max(alternations, proj.alternations)
            self.codes[name], self.alpha[name] = proj.codes, proj.alpha
            q_new = self._dense_q(name)
            target_old = self.target[name]
            self.lam[name].add_(theta - q_new)  # eq. 21: λ ← λ + Θ − Q
            self._refresh_target(name)
            res2 += float(((theta - q_new) ** 2).sum())  # before the warm start: ``theta`` is a view of Θ
            theta2 += float((theta ** 2).sum())
            dual2 += float(((q_new - q_old) ** 2).sum())
            lam2 += float((self.lam[name] ** 2).sum())
            if self.cfg.warm_start == "quantized":  # Θ ← Q: Θ + λ, what eq. 18 projects next, is unchanged
                params[name].data.copy_(q_new)
            elif self.cfg.warm_start == "centre":  # Θ keeps its offset from the penalty's centre Q − λ
                params[name].data.add_(self.target[name] - target_old)
        self.last_changed = changed
        return {
            "admm_iter": self.iteration,
            "admm_gamma": gamma_used,
            "admm_primal": math.sqrt(res2),  # ‖Θ − Q‖ over all quantized matrices
            "admm_primal_rel": math.sqrt(res2 / max(theta2, 1e-30)),
            "admm_dual": gamma_used * math.sqrt(dual2),  # γ‖Q⁽ᵏ⁺¹⁾ − Q⁽ᵏ⁾‖
            "admm_lambda": math.sqrt(lam2),
            "admm_codes_changed": changed,
            "admm_codes_changed_frac": changed / max(total, 1),
            "admm_alternations": alternations,
            "admm_seconds": time.perf_counter() - t0,  # this quantization + multiplier update
        }

    # ----------------------------------------------------------- deployment
    def quantized_matrices(self, model: LSTMLM) -> Dict[str, QuantizedMatrix]:
        if not self.quantized:
            return {}
        return {n: QuantizedMatrix(self.codes[n], self.qset_of(n).basis().to(self.codes[n].device),
                                   self.alpha[n].reshape(-1, 1) * self._factor(n))  # c·α (trained_scale)
                for n in self.names}

    def training_point(self, model: LSTMLM) -> Dict[str, torch.Tensor]:
        """With trained scales, c·Θ (R, C) of each quantized matrix: what the forward pass trains."""
        params = dict(model.named_parameters())
        return {} if self.scales is None else {n: params[n].detach() * self._factor(n) for n in self.names}

    # --------------------------------------------------------------- resume
    def state_dict(self) -> dict:
        cpu = lambda d: {k: v.detach().cpu().clone() for k, v in d.items()}  # noqa: E731
        return {"iteration": torch.tensor(self.iteration), "gamma": torch.tensor(self.gamma, dtype=torch.float64),
                "names": list(self.names), "codes": cpu(self.codes), "alpha": cpu(self.alpha), "lam": cpu(self.lam),
                "anchor": cpu(self.target) if not self.quantized else {}, "g_prev": cpu(self.g_prev),
                "since_update": torch.tensor(self.since_update), "epoch_updates": torch.tensor(self.epoch_updates),
                "last_figures": {k: torch.tensor(float(v), dtype=torch.float64)
                                 for k, v in self.last_figures.items()},
                "scales": self.scales.state_dict() if self.scales is not None else {},
                "last_changed": torch.tensor(self.last_changed), "thaw_at": torch.tensor(self.thaw_at,
                                                                                          dtype=torch.float64)}

    def restore_position(self, state: dict) -> None:
        """Θ's companions of an earlier state (codes, α, λ, the extra-gradient memory); the iteration count,
        γ and the interval bookkeeping stay where the schedule is now."""
        keep = (self.iteration, self.gamma, self.since_update, self.epoch_updates, dict(self.last_figures),
                self.last_changed, self.thaw_at)
        self.load_state_dict(state)
        (self.iteration, self.gamma, self.since_update, self.epoch_updates, self.last_figures, self.last_changed,
         self.thaw_at) = keep

    def load_state_dict(self, state: dict) -> None:
        self.iteration = int(state["iteration"])
        self.gamma = float(state["gamma"])
        self.names = list(state["names"])
        self.codes = dict(state["codes"])
        self.alpha = dict(state["alpha"])
        self.lam = dict(state["lam"])
        self.g_prev = dict(state["g_prev"])
        self.since_update = int(state.get("since_update", 0))
        self.last_changed = int(state.get("last_changed", -1))
        self.thaw_at = float(state.get("thaw_at", -1.0))
        self.epoch_updates = int(state.get("epoch_updates", 0))
        self.last_figures = {k: float(v) for k, v in state.get("last_figures", {}).items()}
        for k in ("admm_iter", "admm_codes_changed", "admm_alternations"):
            if k in self.last_figures:
                self.last_figures[k] = int(self.last_figures[k])
        if state.get("scales"):
            self.scales = TrainedScales(self.names, self.cfg.alpha_lr)
            self.scales.load_state_dict(state["scales"])
        if self.quantized:
            for name in self.names:
                self._refresh_target(name)
        else:
            self.target = dict(state["anchor"])
