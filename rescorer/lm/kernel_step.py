"""Prefix-tree scoring steps on the CPU through the compiled kernels, on numpy arrays (no PyTorch).

:class:`KernelStep` is the stepper :func:`rescorer.lm.prefix_scoring.score_tree` drives, for an
LSTM LM given as its weights (numpy arrays named as :class:`rescorer.lm.model.LSTMLM`'s state dict):

* the LSTM, per layer: the gate pre-activations ``W_ih x + b_ih + b_hh + W_hh h`` in one pass of the
  kernel's ``affine_rows`` over weights packed as 16-column panels (the first layer's input part a
  row of a per-unit table, built with the same kernel once more units have been stepped than the
  vocabulary has), then the cell (PyTorch's gate order i, f, g, o) in one pass of
  ``lstm_pointwise``, whose sigmoid and tanh use the kernel's exponential (relative error ~2e-7);
* the output: a word's logit as a float64 dot product, minus the row's normaliser from
  :class:`rescorer.lm.log_normalizer.LogNormalizer` (skipped with ``normalize=False``).

The optional scaled linear layers of ``bin-lin`` models (``y = scale * (W x) + b``) run as numpy
products.  Gates, weights and the table are padded to a multiple of 16 columns.  Scores equal the
PyTorch forward pass to float rounding (``tests/test_exact_scoring.py``).
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from rescorer.lm.log_normalizer import LogNormalizer, _f32, _ptr

State = Tuple[np.ndarray, np.ndarray]
TABLE_MAX_ELEMENTS = 64 * 1024 * 1024  # 256 MiB of float32: larger vocabularies compute the input part


def _panels(lib, w: np.ndarray) -> np.ndarray:
    """W (N, K) -> its 16-column panels (ceil(N / 16) * K * 16,) float32."""
    w = _f32(w)
    N, K = w.shape
    out = np.empty(-(-N // 16) * K * 16, dtype=np.float32)
    lib.lse_pack(_ptr(w), N, K, _ptr(out))
    return out


def _scaled_linear(x: np.ndarray, weights: Dict[str, np.ndarray], name: str) -> np.ndarray:
    """``scale * (x W^T) + b`` of the ``ScaledLinear`` layer ``name``."""
    return (x @ weights[f"{name}.weight"].T) * weights[f"{name}.scale"] + weights[f"{name}.bias"]


class KernelStep:
    """One LSTM step over a batch of tree nodes and the log-probabilities of chosen outputs (module docstring).

    ``weights``: name -> array; ``layers``, ``hidden``: the LSTM's shape; ``output_size``: softmax outputs.
    """

    def __init__(self, lib, weights: Dict[str, np.ndarray], layers: int, hidden: int, output_size: int,
                 softmax_rows: int = 256, normalize: bool = True):
        self.lib, self.layers, self.H = lib, layers, hidden
        self.w = {k: _f32(v) for k, v in weights.items()}
        self.normalize = normalize
        self.softmax_rows = max(1, int(softmax_rows))
        self.seconds = {"lstm": 0.0, "output": 0.0}
        self.P = -(-4 * hidden // 16)
        self.N = 16 * self.P
        self.ih = [_panels(lib, self.w[f"lstm.weight_ih_l{k}"]) for k in range(layers)]
        self.hh = [_panels(lib, self.w[f"lstm.weight_hh_l{k}"]) for k in range(layers)]
        self.bias = []
        for k in range(layers):
            b = np.zeros(self.N, dtype=np.float32)
            b[: 4 * hidden] = self.w[f"lstm.bias_ih_l{k}"] + self.w[f"lstm.bias_hh_l{k}"]
            self.bias.append(b)
        emb = self.w["embedding.weight"]
        self.vocab_size = emb.shape[0]
        out_w = self.w.get("decoder.weight", emb[:output_size])
        self.has_input_linear = "input_linear.weight" in self.w
        self.has_output_linear = "output_linear.weight" in self.w
        self.out_weight, self.out_bias = _f32(out_w), self.w["decoder.bias"]
        self._normalizer: Optional[LogNormalizer] = None
        self.table: Optional[np.ndarray] = None
        self.stepped = 0

    @property
    def normalizer(self) -> LogNormalizer:
        if self._normalizer is None:
            self._normalizer = LogNormalizer(self.out_weight, self.out_bias)
        return self._normalizer

    def describe(self) -> str:
        out = "no normaliser (logits)" if not self.normalize else self.normalizer.describe()
        return f"compiled CPU kernels (LSTM; {out})"

    # ------------------------------------------------------------ LSTM
    def _embed(self, tokens: np.ndarray) -> np.ndarray:
        x = self.w["embedding.weight"][tokens]
        return _scaled_linear(x, self.w, "input_linear") if self.has_input_linear else x

    def _affine(self, a: np.ndarray, panels: np.ndarray, bias: Optional[np.ndarray], add: Optional[np.ndarray],
                out: np.ndarray) -> None:
        a = _f32(a)
        rc = self.lib.affine_rows(_ptr(a), a.shape[0], a.shape[1], _ptr(panels), self.P,
                                  _ptr(bias) if bias is not None else None, _ptr(add) if add is not None else None,
                                  _ptr(out))
        if rc != 0:
            raise MemoryError("out of memory in the LSTM kernel")

    def _maybe_build_table(self, chunk: int = 4096) -> None:
        V = self.vocab_size
        if self.table is not None or self.stepped < V or V * self.N > TABLE_MAX_ELEMENTS:
            return
        table = np.empty((V, self.N), dtype=np.float32)
        for a in range(0, V, chunk):
            ids = np.arange(a, min(V, a + chunk))
            self._affine(self._embed(ids), self.ih[0], self.bias[0], None, table[a: a + ids.size])
        self.table = table

    def new_state(self, n: int) -> State:
        return (np.empty((self.layers, n, self.H), dtype=np.float32),
                np.empty((self.layers, n, self.H), dtype=np.float32))

    @staticmethod
    def concat(parts: List[np.ndarray]) -> np.ndarray:
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def step(self, tokens: np.ndarray, prev: Optional[State], parents: Optional[np.ndarray]) -> Tuple[np.ndarray, State]:
        """Consume (n,) units from the states ``prev[:, parents]`` ((L, m, H) pair; None: zeros).

        Returns the top layer's output (after ``output_linear``) (n, H) and the new state."""
        t0 = time.perf_counter()
        n = tokens.size
        self.stepped += n
        self._maybe_build_table()
        hs, cs = np.empty((self.layers, n, self.H), dtype=np.float32), np.empty((self.layers, n, self.H),
                                                                             dtype=np.float32)
        x = None
        for k in range(self.layers):
            if k == 0 and self.table is not None:
                gates = self.table[tokens]
            else:
                gates = np.empty((n, self.N), dtype=np.float32)
                self._affine(self._embed(tokens) if k == 0 else x, self.ih[k], self.bias[k], None, gates)
            c_prev = None
            if prev is not None:
                self._affine(prev[0][k][parents], self.hh[k], None, gates, gates)
                c_prev = np.ascontiguousarray(prev[1][k][parents])
            self.lib.lstm_pointwise(_ptr(gates), n, self.H, self.N, _ptr(c_prev) if c_prev is not None else None,
                                    _ptr(hs[k]), _ptr(cs[k]))
            x = hs[k]
        out = _scaled_linear(x, self.w, "output_linear") if self.has_output_linear else x
        self.seconds["lstm"] += time.perf_counter() - t0
        return out, (hs, cs)

    # ---------------------------------------------------------- outputs
    def logprobs_at(self, h: np.ndarray, rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``log softmax(h[rows] W^T + b)[targets]`` (or the logits without ``normalize``): (k,) float64."""
        t0 = time.perf_counter()
        h = _f32(h)
        picked = np.ascontiguousarray(h[rows])
        lp = np.einsum("ij,ij->i", picked.astype(np.float64), self.out_weight[targets].astype(np.float64)) + \
            self.out_bias[targets]
        if self.normalize and rows.size:
            lp -= self.normalizer(h)[rows]
        self.seconds["output"] += time.perf_counter() - t0
        return lp
