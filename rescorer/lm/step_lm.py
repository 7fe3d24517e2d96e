"""One LSTM step at a time over a batch of tree nodes, and log-probabilities of chosen outputs.

:class:`StepLM` runs an :class:`~rescorer.lm.model.LSTMLM`'s computation for a
batch of nodes of a prefix tree (:mod:`rescorer.lm.prefix_tree`): each node
consumes one unit from its parent's state.  It is the same arithmetic as
``LSTMLM.forward`` (PyTorch's gate order i, f, g, o; ``c' = σ(f)c + σ(i)tanh(g)``,
``h' = σ(o)tanh(c')``), with two savings that do not change the result beyond
float rounding:

* the first layer's input part ``W_ih x_t + b_ih + b_hh`` depends on the unit
  alone; once more units have been stepped than the vocabulary has, it is
  tabulated per unit ((V, 4H), built once) and looked up;
* the output layer runs in row slices of ``softmax_rows`` (256 on CPU: the
  (rows, V) logits stay in cache), with the weight stored transposed for
  ``addmm``, and only the wanted entries of each row's log-softmax are kept.

The output layer is pluggable: :class:`DenseOutput` (fp32, exact) or
:class:`rescorer.lm.int8_output.Int8Output` (opt-in approximation).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from rescorer.lm.alternating_quant import quantize_activations
from rescorer.lm.model import LSTMLM

State = Tuple[torch.Tensor, torch.Tensor]
TABLE_MAX_ELEMENTS = 64 * 1024 * 1024  # 256 MiB of float32: larger vocabularies compute the input part


class DenseOutput:
    """The model's own output layer: ``logits = h W^T + b`` with W (V, H) kept as (H, V)."""

    exact = True
    name = "fp32"

    def __init__(self, model: LSTMLM):
        self.weight_t = model.output_weight.detach().t().contiguous()
        self.bias = model.decoder.bias.detach()

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        """(n, H) -> (n, V) logits."""
        return torch.addmm(self.bias.to(h.dtype), h, self.weight_t.to(h.dtype))


class StepLM:
    """Stepping and output log-probabilities of a model, for prefix-tree scoring.

    ``softmax_rows``: rows of logits computed at once (memory: rows x V floats).
    """

    def __init__(self, model: LSTMLM, output=None, softmax_rows: int = 256):
        self.model = model
        self.cfg = model.cfg
        self.output = output if output is not None else DenseOutput(model)
        self.softmax_rows = max(1, int(softmax_rows))
        lstm = model.lstm
        self.w_ih = [getattr(lstm, f"weight_ih_l{k}").detach() for k in range(self.cfg.layers)]
        self.w_hh_t = [getattr(lstm, f"weight_hh_l{k}").detach().t().contiguous() for k in range(self.cfg.layers)]
        self.bias = [(getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")).detach()
                     for k in range(self.cfg.layers)]
        self.quant = lambda v: v  # noqa: E731
        if self.cfg.act_bits:  # multibit with online activation quantization: the LSTM's matrix inputs
            self.quant = lambda v: quantize_activations(v, self.cfg.act_bits)  # noqa: E731
        self.table: Optional[torch.Tensor] = None
        self.stepped = 0  # units stepped so far (decides when the input table pays off)
        self.device = next(model.parameters()).device

    # ------------------------------------------------------------ LSTM
    @torch.no_grad()
    def _input_gates(self, tokens: torch.Tensor) -> torch.Tensor:
        """First layer's ``W_ih x + b`` for (n,) units: (n, 4H)."""
        V = self.cfg.vocab_size
        if self.table is None and self.stepped >= V and V * 4 * self.cfg.hidden_dim <= TABLE_MAX_ELEMENTS:
            self.table = self._build_table()
        if self.table is not None:
            return self.table.index_select(0, tokens)
        x = self.model.embed(tokens)
        return F.linear(self.quant(x), self.w_ih[0], self.bias[0])

    def _build_table(self, chunk: int = 4096) -> torch.Tensor:
        V, H4 = self.cfg.vocab_size, 4 * self.cfg.hidden_dim
        table = torch.empty(V, H4, device=self.device)
        for a in range(0, V, chunk):
            ids = torch.arange(a, min(V, a + chunk), device=self.device)
            table[a: a + ids.numel()] = F.linear(self.quant(self.model.embed(ids)), self.w_ih[0], self.bias[0])
        return table

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, state: Optional[State]) -> Tuple[torch.Tensor, State]:
        """Consume (n,) units from ``state`` ((L, n, H) h and c; None = zeros).

        Returns the top layer's output after ``output_linear`` (n, H) and the new state.
        """
        self.stepped += int(tokens.numel())
        hs, cs = [], []
        x = None
        for k in range(self.cfg.layers):
            gates = self._input_gates(tokens) if k == 0 else F.linear(self.quant(x), self.w_ih[k], self.bias[k])
            if state is not None:
                gates = torch.addmm(gates, self.quant(state[0][k]), self.w_hh_t[k].to(gates.dtype))
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(i) * torch.tanh(g)
            if state is not None:
                c = c + torch.sigmoid(f) * state[1][k]
            h = torch.sigmoid(o) * torch.tanh(c)
            hs.append(h)
            cs.append(c)
            x = h
        out = x
        if self.model.output_linear is not None:
            out = self.model.output_linear(out)
        return out, (torch.stack(hs), torch.stack(cs))

    # ---------------------------------------------------------- outputs
    @torch.no_grad()
    def logprobs_at(self, h: torch.Tensor, rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``log softmax(logits(h[rows]))[targets]``: (k,) float32, for (k,) row indices sorted ascending."""
        out = torch.empty(rows.numel(), dtype=torch.float32, device=h.device)
        if rows.numel() == 0:
            return out
        R = self.softmax_rows
        bounds = torch.searchsorted(rows, torch.arange(0, h.shape[0] + R, R, device=rows.device)).tolist()
        for j, r0 in enumerate(range(0, h.shape[0], R)):
            a, b = bounds[j], bounds[j + 1]
            if a == b:
                continue
            out[a:b] = log_softmax_at(self.output(h[r0: r0 + R]).float(), rows[a:b] - r0, targets[a:b])
        return out


def log_softmax_at(logits: torch.Tensor, rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log_softmax(logits, 1)[rows, targets]`` for (n, V) logits, without writing the (n, V) result.

    Overwrites ``logits``: the row maximum is subtracted and the exponentials are
    taken in place (two passes over the logits fewer than ``log_softmax`` + gather;
    the same arithmetic).  (k,) float32.
    """
    logits -= logits.amax(dim=1, keepdim=True)
    picked = logits[rows, targets]
    return picked - logits.exp_().sum(dim=1).log_()[rows]
