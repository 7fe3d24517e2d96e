"""One LSTM step at a time over a batch of tree nodes, and log-probabilities of chosen outputs.

:class:`StepLM` runs an :class:`~rescorer.lm.model.LSTMLM`'s computation for a
batch of nodes of a prefix tree (:mod:`rescorer.lm.prefix_tree`): each node
consumes one unit from its parent's state.  It is the same arithmetic as
``LSTMLM.forward`` (PyTorch's gate order i, f, g, o; ``c' = σ(f)c + σ(i)tanh(g)``,
``h' = σ(o)tanh(c')``), with savings that do not change the result beyond
float rounding:

* the first layer's input part ``W_ih x_t + b_ih + b_hh`` depends on the unit
  alone; once more units have been stepped than the vocabulary has, it is
  tabulated per unit ((V, 4H), built once) and looked up;
* on the CPU the output layer never writes its (rows, V) logits: a wanted
  log-probability is one dot product (the word's logit, float64) minus the
  row's normaliser ``log Z``, computed by :class:`rescorer.lm.log_normalizer.LogNormalizer`
  (numpy in vocabulary chunks, or the compiled kernel; with the kernel at hand
  scoring normally runs on :class:`rescorer.lm.kernel_step.KernelStep` instead);
* elsewhere (a GPU) the output layer runs in row slices of ``softmax_rows``,
  with the weight stored transposed for ``addmm``, and only the wanted entries
  of each row's log-softmax are kept.

The output layer is pluggable: :class:`DenseOutput` (fp32, exact) or
:class:`rescorer.lm.int8_output.Int8Output` (opt-in approximation).  The
stepper interface :func:`rescorer.lm.prefix_scoring.score_tree` drives
(``step``, ``new_state``, ``concat``, ``logprobs_at``) takes numpy
index arrays and returns numpy log-probabilities.
``normalize=False`` skips ``log Z`` altogether (a self-normalised model's
log-probability is its logit; ``admmq rescore --no-normalize-probs``).
"""

from __future__ import annotations

import time
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from rescorer.lm.alternating_quant import quantize_activations
from rescorer.lm.log_normalizer import LogNormalizer
from rescorer.lm.model import LSTMLM

State = Tuple[torch.Tensor, torch.Tensor]
TABLE_MAX_ELEMENTS = 64 * 1024 * 1024  # 256 MiB of float32: larger vocabularies compute the input part


class DenseOutput:
    """The model's own output layer: ``logits = h W^T + b`` with W (V, H).

    On the CPU (``fused``) it gives word logits and normalisers without the logits
    matrix (:class:`LogNormalizer`, built on first use); elsewhere full logits
    rows, with W kept as (H, V) for ``addmm``.
    """

    exact = True
    name = "fp32"

    def __init__(self, model: LSTMLM):
        self.weight = model.output_weight.detach()
        self.bias = model.decoder.bias.detach()
        self.fused = self.weight.device.type == "cpu"
        self._normalizer: Optional[LogNormalizer] = None
        self._weight_t: Optional[torch.Tensor] = None

    @property
    def normalizer(self) -> LogNormalizer:
        if self._normalizer is None:
            self._normalizer = LogNormalizer(self.weight, self.bias)
        return self._normalizer

    def logprobs(self, h: torch.Tensor, rows: np.ndarray, targets: np.ndarray, normalize: bool) -> np.ndarray:
        """(n, H) outputs on the CPU, (k,) rows and word ids -> (k,) float64 log-probabilities (logits
        without ``normalize``), by :class:`LogNormalizer`."""
        hn = h.detach().float().numpy()
        lp = self.normalizer.target_logits(hn[rows], targets)
        return lp - self.normalizer(hn)[rows] if normalize else lp

    def target_logits(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(k, H) rows and (k,) word ids -> (k,) float64 logits (any device)."""
        w = self.weight.index_select(0, targets).double()
        return (h.double() * w).sum(1) + self.bias.double().index_select(0, targets)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        """(n, H) -> (n, V) logits."""
        if self._weight_t is None:
            self._weight_t = self.weight.t().contiguous()
        return torch.addmm(self.bias.to(h.dtype), h, self._weight_t.to(h.dtype))

    def describe(self) -> str:
        if self.fused and self._normalizer is not None:
            return f"fp32 output layer, {self._normalizer.describe()}"
        return "fp32 output layer"


class StepLM:
    """Stepping and output log-probabilities of a model, for prefix-tree scoring.

    ``softmax_rows``: rows of logits computed at once (memory: rows x V floats).
    """

    def __init__(self, model: LSTMLM, output=None, softmax_rows: int = 256, normalize: bool = True):
        self.model = model
        self.normalize = normalize
        self.seconds = {"lstm": 0.0, "output": 0.0}  # wall time of the steps and of the output layer
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
        self.vocab_size = self.cfg.vocab_size

    # ------------------------------------------------------------ LSTM
    @torch.no_grad()
    def _input_gates(self, tokens: torch.Tensor) -> torch.Tensor:
        """First layer's ``W_ih x + b`` for (n,) units: (n, 4H)."""
        self._maybe_build_table()
        if self.table is not None:
            return self.table.index_select(0, tokens)
        x = self.model.embed(tokens)
        return F.linear(self.quant(x), self.w_ih[0], self.bias[0])

    def _maybe_build_table(self) -> None:
        V = self.cfg.vocab_size
        if self.table is None and self.stepped >= V and V * 4 * self.cfg.hidden_dim <= TABLE_MAX_ELEMENTS:
            self.table = self._build_table()

    def _build_table(self, chunk: int = 4096) -> torch.Tensor:
        V, H4 = self.cfg.vocab_size, 4 * self.cfg.hidden_dim
        table = torch.empty(V, H4, device=self.device)
        for a in range(0, V, chunk):
            ids = torch.arange(a, min(V, a + chunk), device=self.device)
            table[a: a + ids.numel()] = F.linear(self.quant(self.model.embed(ids)), self.w_ih[0], self.bias[0])
        return table

    # ---------------------------------------------- the stepper interface
    def new_state(self, n: int) -> State:
        L, H = self.cfg.layers, self.cfg.hidden_dim
        return torch.empty(L, n, H, device=self.device), torch.empty(L, n, H, device=self.device)

    @staticmethod
    def concat(parts: List[torch.Tensor]) -> torch.Tensor:
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def step(self, tokens: np.ndarray, prev: Optional[State], parents: Optional[np.ndarray]) -> Tuple[torch.Tensor,
                                                                                                     State]:
        """Consume (n,) units (numpy) from the states ``prev[:, parents]`` (None: zeros)."""
        t = torch.from_numpy(np.ascontiguousarray(tokens)).to(self.device)
        state = None
        if prev is not None:
            idx = torch.from_numpy(np.ascontiguousarray(parents)).to(self.device)
            state = (prev[0][:, idx], prev[1][:, idx])
        return self.step_tensors(t, state)

    @torch.no_grad()
    def step_tensors(self, tokens: torch.Tensor, state: Optional[State]) -> Tuple[torch.Tensor, State]:
        """Consume (n,) units from ``state`` ((L, n, H) h and c; None = zeros).

        Returns the top layer's output after ``output_linear`` (n, H) and the new state.
        """
        t0 = time.perf_counter()
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
        state = (torch.stack(hs), torch.stack(cs))
        self.seconds["lstm"] += time.perf_counter() - t0
        return out, state

    @torch.no_grad()
    def read_sequences(self, tokens: np.ndarray, lens: np.ndarray, table: State,
                       rows_from: np.ndarray) -> Optional[State]:
        """End states of (B, T) unit rows read to their lengths ``lens`` (B,) (non-increasing) from ``table``
        rows ``rows_from`` (B,), in one call of the model's LSTM kernel: (L, B, H) h and c (carry-over
        histories).  None where the model runs its native cell (the caller steps instead)."""
        if self.cfg.act_bits or self.model.native_lstm:
            return None
        from torch.nn.utils.rnn import pack_padded_sequence
        rows = torch.from_numpy(np.ascontiguousarray(rows_from)).to(self.device)
        h, c = table[0][:, rows].contiguous(), table[1][:, rows].contiguous()
        tok = torch.from_numpy(np.ascontiguousarray(tokens)).to(self.device)
        x = pack_padded_sequence(self.model.embed(tok), torch.from_numpy(np.asarray(lens)), batch_first=True)
        _, (h, c) = self.model.lstm(x, (h, c))
        return h, c

    # ---------------------------------------------------------- outputs
    @torch.no_grad()
    def logprobs_at(self, h: torch.Tensor, rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``log softmax(logits(h[rows]))[targets]``: (k,) float64, for (k,) row indices sorted ascending.

        Without ``normalize``: the logits themselves.
        """
        t0 = time.perf_counter()
        try:
            return self._logprobs_at(h, np.asarray(rows), np.asarray(targets))
        finally:
            self.seconds["output"] += time.perf_counter() - t0

    def _logprobs_at(self, h: torch.Tensor, rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
        if rows.size == 0:
            return np.zeros(0)
        if getattr(self.output, "fused", False):
            return self.output.logprobs(h, rows, targets, self.normalize)
        r = torch.from_numpy(rows).to(h.device)
        t = torch.from_numpy(targets).to(h.device)
        if not self.normalize:
            out = self.output if hasattr(self.output, "target_logits") else self.dense
            return out.target_logits(h.float().index_select(0, r), t).cpu().numpy()
        out = torch.empty(rows.size, dtype=torch.float64, device=h.device)
        R = self.softmax_rows
        bounds = torch.searchsorted(r, torch.arange(0, h.shape[0] + R, R, device=r.device)).tolist()
        for j, r0 in enumerate(range(0, h.shape[0], R)):
            a, b = bounds[j], bounds[j + 1]
            if a == b:
                continue
            out[a:b] = log_softmax_at(self.output(h[r0: r0 + R]).float(), r[a:b] - r0, t[a:b])
        return out.cpu().numpy()

    @property
    def dense(self) -> DenseOutput:
        """The model's own fp32 output layer (word logits without a normaliser)."""
        if isinstance(self.output, DenseOutput):
            return self.output
        if getattr(self, "_dense", None) is None:
            self._dense = DenseOutput(self.model)
        return self._dense


def log_softmax_at(logits: torch.Tensor, rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log_softmax(logits, 1)[rows, targets]`` for (n, V) logits, without writing the (n, V) result.

    Overwrites ``logits``: the row maximum is subtracted and the exponentials are
    taken in place (two passes over the logits fewer than ``log_softmax`` + gather;
    the same arithmetic).  (k,) float32.
    """
    logits -= logits.amax(dim=1, keepdim=True)
    picked = logits[rows, targets]
    return picked - logits.exp_().sum(dim=1).log_()[rows]
