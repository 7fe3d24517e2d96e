"""A scale factor per quantized matrix trained on the loss (ADMM's ``alpha_lr``).

Eq. 20 sets the scale α of a table by least squares: the Q = α·V nearest the weights it projects.
The α nearest in weights is not the one the loss prefers: from PTB's trained STDs the trained factors
settle at 0.4-0.55 for the recurrent matrix, 0.5-0.7 for the input path (embedding and input weights,
which only act through their product) and 0.6-0.9 for the output layer, and layer {±1} ends 2-4 %
lower on validation than with eq. 20's α alone (recipes/ptb/RESULTS_admm.md §14).  Bin+Lin learns its
scales by gradient; this gives ADMM's tables the same.

Each quantized matrix ``n`` gets a factor c_n = exp(u_n), u_n = 0 at the start.  The training
forward pass uses c_n·X_n in place of the matrix X_n (Θ_n, or Q_n with the gradient at Q), so
∂L/∂u_n = c_n·⟨∂L/∂W_n, X_n⟩ and the gradient reaching Θ_n is c_n·∂L/∂W_n.  u is updated by Adam
(its own moments, rate ``lr``) after every optimizer step.  The deployed model is c_n·α_n·V_n: the
same table and one float per matrix, so the size and the file format do not change.  ADMM itself
(eqs. 18-21: the projection, λ, the penalty) still works with eq. 20's Q = α·V.
"""

from __future__ import annotations

import math
from typing import Dict, Iterable

import torch

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # Adam's defaults (Kingma & Ba)


class TrainedScales:
    """The factors c = exp(u) of the named matrices, with Adam's moments; everything a float64 scalar."""

    def __init__(self, names: Iterable[str], lr: float):
        assert lr > 0, f"trained scales need a positive rate, got {lr}"
        self.lr = float(lr)
        self.names = list(names)
        self.log_scale: Dict[str, torch.Tensor] = {n: torch.zeros((), dtype=torch.float64) for n in self.names}
        self.grad: Dict[str, torch.Tensor] = {n: torch.zeros((), dtype=torch.float64) for n in self.names}
        self.m: Dict[str, torch.Tensor] = {n: torch.zeros((), dtype=torch.float64) for n in self.names}
        self.v: Dict[str, torch.Tensor] = {n: torch.zeros((), dtype=torch.float64) for n in self.names}
        self.steps = 0

    def factor(self, name: str) -> float:
        """c of one matrix (1.0 for a matrix without a factor)."""
        u = self.log_scale.get(name)
        return 1.0 if u is None else math.exp(float(u))

    def take_gradient(self, name: str, weight_grad: torch.Tensor, used: torch.Tensor) -> None:
        """From ∂L/∂W (R, C) at W = c·``used`` (R, C): store ∂L/∂u, and turn ``weight_grad`` in place into
        the gradient with respect to ``used`` (c·∂L/∂W)."""
        c = self.factor(name)
        self.grad[name] = c * (weight_grad.double() * used.double()).sum().cpu()
        weight_grad.mul_(c)

    def step(self) -> None:
        """One Adam step on every u with the gradients of the last :meth:`take_gradient` calls."""
        self.steps += 1
        fix1, fix2 = 1.0 - BETA1 ** self.steps, 1.0 - BETA2 ** self.steps
        for n in self.names:
            g = self.grad[n]
            self.m[n] = BETA1 * self.m[n] + (1.0 - BETA1) * g
            self.v[n] = BETA2 * self.v[n] + (1.0 - BETA2) * g * g
            self.log_scale[n] = self.log_scale[n] - self.lr * (self.m[n] / fix1) / ((self.v[n] / fix2).sqrt() + EPS)

    def figures(self) -> Dict[str, float]:
        """The factors for the training log, ``alpha_factor/<matrix>``."""
        return {f"alpha_factor/{n}": self.factor(n) for n in self.names}

    def state_dict(self) -> dict:
        copy = lambda d: {k: v.clone() for k, v in d.items()}  # noqa: E731
        return {"log_scale": copy(self.log_scale),
                "m": copy(self.m), "v": copy(self.v), "steps": torch.tensor(self.steps)}

    def load_state_dict(self, state: dict) -> None:
        self.log_scale = {k: v.clone().double() for k, v in state["log_scale"].items()}
        self.m = {k: v.clone().double() for k, v in state["m"].items()}
        self.v = {k: v.clone().double() for k, v in state["v"].items()}
        self.names = list(self.log_scale)
        self.grad = {n: torch.zeros((), dtype=torch.float64) for n in self.names}
        self.steps = int(state["steps"])
