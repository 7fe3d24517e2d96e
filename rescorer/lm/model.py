"""The LSTM language model.

``embedding -> [input linear] -> LSTM (layers) -> [output linear] -> softmax``

The defaults are the paper's: one LSTM layer of 200 units, embedding size 200,
a softmax over the vocabulary.  The optional input/output linear layers are
the "partially quantized linear layers" of the binarized LSTM LM baseline
(``bin-lin``): ``y = scale * (W x) + b`` with a learned per-output ``scale``.

Weight matrices (what quantization acts on) are the 2-D parameters named by
:meth:`LSTMLM.weight_matrix_names`; biases and scales are vectors and stay in
full precision.

The LSTM runs through ``torch.nn.LSTM`` (cuDNN / oneDNN kernels) by default.
With ``model.native_lstm = True`` it runs through a cell written here, step by
step, using the same parameters: slower, but twice differentiable (Hessian-
vector products) and open to hooks on the cell's inputs.

``act_bits`` > 0 (alternating multi-bit training, :mod:`rescorer.lm.alternating_quant`)
quantizes the LSTM's matrix inputs x_t and h_{t-1} to that many bits per
vector; such a model always runs the native cell.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from rescorer.errors import MismatchError
from rescorer.lm.alternating_quant import quantize_activations
from rescorer.lm.model_config import ModelConfig  # noqa: F401  (the model's shape; torch-free module)

State = Tuple[torch.Tensor, torch.Tensor]


class ScaledLinear(nn.Module):
    """``y = scale * (x @ W^T) + bias``; W (out, in), scale and bias (out,)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        self.scale = nn.Parameter(torch.ones(out_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight) * self.scale + self.bias


class Decoder(nn.Module):
    """Output (softmax) layer parameters: weight (outputs, H) unless tied to the embedding, bias (outputs,)."""

    def __init__(self, hidden_dim: int, output_size: int, tied: bool):
        super().__init__()
        self.weight = None if tied else nn.Parameter(torch.empty(output_size, hidden_dim))
        self.bias = nn.Parameter(torch.zeros(output_size))


class LSTMLM(nn.Module):
    """LSTM LM over ``cfg.vocab_size`` input symbols and ``cfg.vocab_size - 1`` outputs."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.tie_embeddings and cfg.embed_dim != cfg.hidden_dim:
            raise ValueError(f"tied embeddings need embed_dim == hidden_dim, got {cfg.embed_dim} != {cfg.hidden_dim}")
        self.cfg = cfg
        self.native_lstm = False
        self.log_z_penalty = 0.0  # training only: weight of (log Z)^2 in the gradient (see loss)
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.input_linear = ScaledLinear(cfg.embed_dim, cfg.embed_dim) if cfg.input_linear else None
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden_dim, cfg.layers, batch_first=True,
                            dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.output_linear = ScaledLinear(cfg.hidden_dim, cfg.hidden_dim) if cfg.output_linear else None
        self.drop = nn.Dropout(cfg.dropout)
        self.decoder = Decoder(cfg.hidden_dim, cfg.output_size, tied=cfg.tie_embeddings)
        self.reset_parameters()

    def reset_parameters(self, init_range: float = 0.1) -> None:
        """Uniform(-0.1, 0.1) weights, zero biases, unit scales (the usual PTB LSTM LM init)."""
        for name, p in self.named_parameters():
            if name.endswith("scale"):
                nn.init.ones_(p)
            elif "bias" in name:
                nn.init.zeros_(p)
            else:
                nn.init.uniform_(p, -init_range, init_range)

    # ------------------------------------------------------------ structure
    def weight_matrix_names(self) -> List[str]:
        """Names of the 2-D weight matrices (the quantized parameters), in a fixed order."""
        return [n for n, p in self.named_parameters() if p.dim() == 2]

    @property
    def output_weight(self) -> torch.Tensor:
        """(outputs, hidden) output-layer weight (rows of the embedding when tied)."""
        if self.decoder.weight is None:
            return self.embedding.weight[: self.cfg.output_size]
        return self.decoder.weight

    # -------------------------------------------------------------- forward
    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.embedding(inputs))
        if self.input_linear is not None:
            x = self.input_linear(x)
        return x

    def forward(self, inputs: torch.Tensor, state: Optional[State] = None) -> Tuple[torch.Tensor, State]:
        """Hidden outputs before the softmax layer.

        inputs: (B, T) int64 ids; state: ((L, B, H), (L, B, H)) or None (zeros).
        Returns (B, T, H) float and the final state.
        """
        x = self.embed(inputs)
        if self.native_lstm or self.cfg.act_bits:
            h, state = self._native_lstm(x, state)
        else:
            h, state = self.lstm(x, state)
        h = self.drop(h)
        if self.output_linear is not None:
            h = self.output_linear(h)
        return h, state

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., H) hidden -> (..., outputs) unnormalised scores."""
        return F.linear(hidden, self.output_weight, self.decoder.bias)

    def token_nll(self, inputs: torch.Tensor, targets: torch.Tensor, state: Optional[State] = None,
                  ignore_index: int = -100) -> Tuple[torch.Tensor, State]:
        """Negative log-probability (nats) of each target: (B, T) float, 0 where ignored."""
        h, state = self(inputs, state)
        mask = targets != ignore_index
        nll = torch.zeros(targets.shape, dtype=h.dtype, device=h.device)
        nll[mask] = F.cross_entropy(self.logits(h[mask]), targets[mask], reduction="none")
        return nll, state

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, state: Optional[State] = None,
             ignore_index: int = -100) -> Tuple[torch.Tensor, State]:
        """Summed cross-entropy (nats) over non-ignored targets, and the final state.

        With ``log_z_penalty`` a > 0 (self-normalisation, ``admmq train --self-norm a``) the
        gradient is that of ``CE + a * sum_t (log Z_t)^2`` (Devlin et al., 2014), which drives
        each position's normaliser towards 1 so that scoring may skip it
        (``admmq rescore --no-normalize-probs``); the value returned stays the cross-entropy.
        """
        h, state = self(inputs, state)
        mask = targets != ignore_index
        logits = self.logits(h[mask])
        if not self.log_z_penalty:
            return F.cross_entropy(logits, targets[mask], reduction="sum"), state
        log_z = torch.logsumexp(logits.float(), dim=-1)  # (tokens,)
        total = (log_z - logits.float().gather(1, targets[mask][:, None]).squeeze(1)).sum()
        penalty = self.log_z_penalty * log_z.square().sum()
        return total + (penalty - penalty.detach()), state

    # --------------------------------------------------------- native cell
    def _native_lstm(self, x: torch.Tensor, state: Optional[State]) -> Tuple[torch.Tensor, State]:
        B, T, _ = x.shape
        L, H = self.cfg.layers, self.cfg.hidden_dim
        if state is None:
            zeros = x.new_zeros(L, B, H)
            state = (zeros, zeros)
        hs, cs = [], []
        layer_in = x
        quant = (lambda v: v)  # noqa: E731
        if self.cfg.act_bits:
            quant = (lambda v: quantize_activations(v, self.cfg.act_bits))  # noqa: E731
        for layer in range(L):
            w_ih = getattr(self.lstm, f"weight_ih_l{layer}")
            w_hh = getattr(self.lstm, f"weight_hh_l{layer}")
            b = getattr(self.lstm, f"bias_ih_l{layer}") + getattr(self.lstm, f"bias_hh_l{layer}")
            h, c = state[0][layer], state[1][layer]
            pre = F.linear(quant(layer_in), w_ih, b)  # (B, T, 4H): input part of all steps at once
            outs = []
            for t in range(T):
                gates = pre[:, t] + F.linear(quant(h), w_hh)
                i, f, g, o = gates.chunk(4, dim=1)  # PyTorch's gate order
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outs.append(h)
            layer_in = torch.stack(outs, dim=1)
            if layer < L - 1 and self.cfg.dropout > 0 and self.training:
                layer_in = F.dropout(layer_in, self.cfg.dropout, True)
            hs.append(h)
            cs.append(c)
        return layer_in, (torch.stack(hs), torch.stack(cs))

    # ------------------------------------------------------------ loading
    def load_weights(self, weights: Dict[str, torch.Tensor], source: str = "checkpoint") -> None:
        """Load a state dict, reporting any name or shape mismatch as :class:`MismatchError`."""
        own = self.state_dict()
        missing = sorted(set(own) - set(weights))
        extra = sorted(set(weights) - set(own))
        if missing or extra:
            raise MismatchError(f"{source}: weights do not fit the model (missing {missing}, unexpected {extra})")
        for name, t in weights.items():
            if tuple(t.shape) != tuple(own[name].shape):
                raise MismatchError(f"{source}: weight {name!r} has shape {tuple(t.shape)}, "
                                    f"the model config expects {tuple(own[name].shape)}")
        self.load_state_dict(weights)
