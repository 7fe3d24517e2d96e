"""Training with quantized weights in the forward pass and straight-through gradients.

The binarized baselines (``bin``, ``bin-lin``) and alternating multi-bit
quantization (``multibit``) keep full-precision *latent* weights W as the
model's parameters.  Each mini-batch:

1. the quantized weights Q(W) are written into the parameters (in place, so
   cuDNN's packed weight buffer stays valid);
2. forward and backward run with Q(W): the gradient is ∂L/∂Q;
3. the latent W are written back and receive that gradient (the
   straight-through estimator ∂Q/∂W ≈ 1, optionally masked by
   :meth:`StraightThroughMethod.adjust_gradient`), then the optimizer steps.

The deployed model is Q(W) of the final latent weights.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch

from rescorer.lm.batching import Batch
from rescorer.lm.model import LSTMLM, State
from rescorer.quant.method import TrainingMethod
from rescorer.lm.quantized import QuantizedMatrix


class StraightThroughMethod(TrainingMethod):
    """Base of the methods that train latent full-precision weights through quantized forward passes."""

    quantized = True
    default_epochs = 50
    default_schedule = "plateau"

    def quantize(self, name: str, weight: torch.Tensor) -> QuantizedMatrix:
        """Q(W) of one (R, C) latent weight matrix."""
        raise NotImplementedError

    def forward_weight(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        """The (R, C) values used in the forward pass (default: Q(W) dequantized)."""
        return self.quantize(name, weight).dequantize().to(weight.dtype)

    def adjust_gradient(self, name: str, weight: torch.Tensor, grad: torch.Tensor) -> None:
        """Modify the straight-through gradient in place (default: identity)."""

    def train_step(self, model: LSTMLM, optimizer: torch.optim.Optimizer, batch: Batch, state: Optional[State],
                   clip: float) -> Tuple[torch.Tensor, Optional[State]]:
        names: List[str] = self.quantized_names(model)
        params = dict(model.named_parameters())
        latent: Dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for n in names:
                w = params[n]
                latent[n] = w.detach().clone()
                w.copy_(self.forward_weight(n, latent[n]))
        try:
            optimizer.zero_grad(set_to_none=True)
            objective, loss, new_state = self.forward_loss(model, batch, state)
            (objective / batch.norm).backward()
        finally:
            with torch.no_grad():
                for n in names:
                    params[n].copy_(latent[n])
        self.sync_gradients(model)
        for n in names:
            if params[n].grad is not None:
                self.adjust_gradient(n, params[n].detach(), params[n].grad)
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        self.after_step(model)
        return loss.detach(), new_state

    def quantized_matrices(self, model: LSTMLM) -> Dict[str, QuantizedMatrix]:
        params = dict(model.named_parameters())
        return {n: self.quantize(n, params[n].detach()) for n in self.quantized_names(model)}
