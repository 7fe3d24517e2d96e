"""How a training method plugs into the trainer.

The trainer (:mod:`rescorer.train`) owns the data, the optimizer, the
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

from dataclasses import asdict, dataclass, fields
from typing import Dict, Optional, Tuple

import torch

from ..batching import Batch
from ..errors import MismatchError
from ..model import LSTMLM, ModelConfig, State
from .qmatrix import QuantizedMatrix


@dataclass(frozen=True)
class MethodConfig:
    """Which training method, with its settings (only those the method reads matter)."""

    method: str = "fp"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MethodConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise MismatchError(f"unknown method settings {sorted(unknown)} (checkpoint from a newer admmq?)")
        return cls(**d)


class TrainingMethod:
    """Full-precision training (the paper's STD baseline); the base of every method."""

    name = "fp"
    quantized = False

    def __init__(self, cfg: MethodConfig):
        self.cfg = cfg

    def adapt_model_config(self, cfg: ModelConfig) -> ModelConfig:
        """The model shape this method trains (``bin-lin`` adds linear layers)."""
        return cfg

    def setup(self, model: LSTMLM) -> None:
        """Initialise the method's state for a fresh run (not called on resume)."""

    def forward_loss(self, model: LSTMLM, batch: Batch, state: Optional[State]) -> Tuple[torch.Tensor, State]:
        """Summed cross-entropy of the batch in the training forward pass."""
        return model.loss(batch.inputs, batch.targets, state)

    def train_step(self, model: LSTMLM, optimizer: torch.optim.Optimizer, batch: Batch,
                   state: Optional[State], clip: float) -> Tuple[torch.Tensor, Optional[State]]:
        """One update; returns the summed loss (detached, on the device) and the carried state."""
        optimizer.zero_grad(set_to_none=True)
        loss, new_state = self.forward_loss(model, batch, state)
        (loss / batch.norm).backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        self.after_step(model)
        return loss.detach(), new_state

    def after_step(self, model: LSTMLM) -> None:
        """Hook after each optimizer step (e.g. clip latent weights to [-1, 1])."""

    def end_epoch(self, model: LSTMLM, epoch: int) -> Dict[str, float]:
        """End-of-epoch work; returns figures for the training log."""
        return {}

    def quantized_matrices(self, model: LSTMLM) -> Dict[str, QuantizedMatrix]:
        """The quantized weight matrices of the deployed model (empty: full precision)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def deployed_state_dict(model: LSTMLM, qmats: Dict[str, QuantizedMatrix]) -> Dict[str, torch.Tensor]:
    """The model's state dict with each quantized matrix replaced by its dequantized values."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for name, q in qmats.items():
        if name not in sd:
            raise MismatchError(f"quantized matrix {name!r} is not a parameter of the model")
        sd[name] = q.dequantize().to(sd[name].dtype).to(sd[name].device)
    return sd
