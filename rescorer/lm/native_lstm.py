"""The LSTM step of prefix-tree scoring through the compiled kernels (CPU, fp32, one thread).

:class:`NativeLSTM` does what :meth:`rescorer.lm.step_lm.StepLM.step` does in PyTorch, for the same
parameters: per layer the gate pre-activations ``W_ih x + b_ih + b_hh + W_hh h`` (the first layer's
input part a row of the per-unit table once it exists, else a product) in one pass of
``affine_rows`` over weights packed as 16-column panels, then the cell (PyTorch's gate order i, f, g,
o) in one pass of ``lstm_pointwise``, whose sigmoid and tanh use the kernel's exponential (relative
error ~2e-7).  Gates, weights and the table are padded to a multiple of 16 columns.  The scores equal
the PyTorch step's to float rounding (``tests/test_exact_scoring.py``).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch

State = Tuple[torch.Tensor, torch.Tensor]


def _panels(lib, w: torch.Tensor) -> torch.Tensor:
    """W (N, K) float32 -> its 16-column panels (ceil(N / 16) * K * 16,)."""
    w = w.detach().float().contiguous()
    N, K = w.shape
    out = torch.empty(-(-N // 16) * K * 16, dtype=torch.float32)
    lib.lse_pack(w.data_ptr(), N, K, out.data_ptr())
    return out


def _pad(v: torch.Tensor, n: int) -> torch.Tensor:
    out = torch.zeros(n, dtype=torch.float32)
    out[: v.numel()] = v.detach().float()
    return out


class NativeLSTM:
    """The LSTM layers of a model as kernel calls; ``w_ih``, ``w_hh`` (4H, in) and ``bias`` (4H,) per layer."""

    def __init__(self, lib, hidden: int, w_ih: List[torch.Tensor], w_hh: List[torch.Tensor],
                 bias: List[torch.Tensor]):
        self.lib, self.H = lib, hidden
        self.P = -(-4 * hidden // 16)
        self.N = 16 * self.P
        self.ih = [_panels(lib, w) for w in w_ih]
        self.hh = [_panels(lib, w) for w in w_hh]
        self.bias = [_pad(b, self.N) for b in bias]
        self.in_dims = [w.shape[1] for w in w_ih]
        self.table: Optional[torch.Tensor] = None

    def set_table(self, table: torch.Tensor) -> None:
        """The first layer's per-unit input part (V, 4H), padded to (V, N)."""
        V = table.shape[0]
        self.table = torch.zeros(V, self.N, dtype=torch.float32)
        self.table[:, : 4 * self.H] = table

    def _affine(self, a: torch.Tensor, panels: torch.Tensor, bias: Optional[torch.Tensor],
                add: Optional[torch.Tensor], out: torch.Tensor) -> None:
        a = a.float().contiguous()
        rc = self.lib.affine_rows(a.data_ptr(), a.shape[0], a.shape[1], panels.data_ptr(), self.P,
                                  bias.data_ptr() if bias is not None else None,
                                  add.data_ptr() if add is not None else None, out.data_ptr())
        if rc != 0:
            raise MemoryError("out of memory in the LSTM kernel")

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, embed, state: Optional[State]) -> Tuple[torch.Tensor, State]:
        """(n,) units from ``state`` ((L, n, H) pair or None) -> top-layer h (n, H) and the new state.

        ``embed(tokens)`` gives the first layer's inputs when there is no table yet."""
        n = tokens.numel()
        hs, cs = [], []
        x = None
        for k in range(len(self.ih)):
            if k == 0 and self.table is not None:
                gates = self.table.index_select(0, tokens)
            else:
                gates = torch.empty(n, self.N, dtype=torch.float32)
                self._affine(embed(tokens) if k == 0 else x, self.ih[k], self.bias[k], None, gates)
            c_prev = None
            if state is not None:
                self._affine(state[0][k], self.hh[k], None, gates, gates)
                c_prev = state[1][k].float().contiguous()
            h = torch.empty(n, self.H, dtype=torch.float32)
            c = torch.empty(n, self.H, dtype=torch.float32)
            self.lib.lstm_pointwise(gates.data_ptr(), n, self.H, self.N,
                                    c_prev.data_ptr() if c_prev is not None else None, h.data_ptr(), c.data_ptr())
            hs.append(h)
            cs.append(c)
            x = h
        if len(hs) == 1:
            return x, (hs[0].unsqueeze(0), cs[0].unsqueeze(0))
        return x, (torch.stack(hs), torch.stack(cs))
