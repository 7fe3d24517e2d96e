"""An LSTM LM's deployed weights as numpy arrays, loaded without PyTorch, for the compiled CPU kernels.

:func:`load_weights_lm` reads what :func:`rescorer.pack.lm_file.load_lm` reads — a checkpoint
(through :mod:`rescorer.pack.torch_zip`), a training directory (its ``best.pt``) or a packed file
(:func:`rescorer.pack.read.read_packed` with ``numpy=True``) — and returns the model's shape, its
weights with every quantized matrix dequantized (``W[r, c] = sum_k alpha[g(r), k] *
basis[codes[r, c], k]``, the same arithmetic), and its units.  The checks are those of the PyTorch
loader: every problem is a one-line error naming the file.  Importing PyTorch takes about a second,
most of an ``admmq rescore`` run on the kernels; this path does not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict

import numpy as np

from rescorer.errors import AdmmqError, FormatError, MismatchError, PathLike
from rescorer.lm.model_config import ModelConfig, parameter_shapes
from rescorer.lm.subword import units_from_state
from rescorer.pack.lm_path import check_checkpoint, resolve_lm_path, self_norm_of
from rescorer.pack.read import is_packed_file, read_packed
from rescorer.pack.torch_zip import load_torch_zip


@dataclass
class WeightsLM:
    """A model as arrays: ``cfg``, ``weights`` (state-dict names -> float32 arrays), ``units`` and what it is."""

    cfg: ModelConfig
    weights: Dict[str, np.ndarray]
    units: Any
    path: str
    kind: str  # "checkpoint" or "packed"
    method_config: Dict[str, Any] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def self_norm(self) -> float:
        return self_norm_of(self.method_config, self.meta)


def dequantize(name: str, codes: np.ndarray, basis: np.ndarray, alpha: np.ndarray, source: str) -> np.ndarray:
    """The real-valued (R, C) float32 matrix of a quantized one, its parts checked as the PyTorch loader does."""
    codes, basis, alpha = np.asarray(codes), np.asarray(basis, dtype=np.float32), np.asarray(alpha, np.float32)
    if codes.ndim != 2 or basis.ndim != 2 or alpha.ndim != 2 or basis.shape[1] != alpha.shape[1] or \
            alpha.shape[0] not in (1, codes.shape[0]):
        raise FormatError(f"quantized matrix {name!r} is malformed: codes {codes.shape}, basis {basis.shape}, "
                          f"alpha {alpha.shape}", source)
    if codes.size and int(codes.max()) >= basis.shape[0]:
        raise FormatError(f"quantized matrix {name!r} has code {int(codes.max())} but only {basis.shape[0]} "
                          f"levels", source)
    table = alpha @ basis.T  # (G, L): the value of each code per row group
    idx = codes.astype(np.int64)
    return table[0][idx] if table.shape[0] == 1 else np.take_along_axis(table, idx, axis=1)


def _model_config(d: Any, source: str) -> ModelConfig:
    try:
        return ModelConfig.from_dict(dict(d))
    except (TypeError, ValueError) as exc:
        raise FormatError(f"model config {d} is malformed ({str(exc).splitlines()[0][:200]})", source) from None


def _check(cfg: ModelConfig, weights: Dict[str, np.ndarray], units, source: str) -> None:
    """Names and shapes against the model config, the vocabulary against its input size."""
    want = parameter_shapes(cfg)
    missing, extra = sorted(set(want) - set(weights)), sorted(set(weights) - set(want))
    if missing or extra:
        raise MismatchError(f"{source}: weights do not fit the model (missing {missing}, unexpected {extra})")
    for name, shape in want.items():
        if tuple(weights[name].shape) != shape:
            raise MismatchError(f"{source}: weight {name!r} has shape {tuple(weights[name].shape)}, the model config "
                                f"expects {shape}")
    if len(units) != cfg.vocab_size:
        raise MismatchError(f"vocabulary has {len(units)} symbols but the model was built for {cfg.vocab_size}",
                            source)


def _units(state: Dict[str, Any], source: str):
    try:
        return units_from_state(state)
    except (KeyError, TypeError) as exc:
        raise FormatError(f"stored vocabulary is malformed ({exc})", source) from None
    except FormatError as exc:
        raise FormatError(exc.message, source) from None


def load_weights_lm(path: PathLike) -> WeightsLM:
    """The deployed weights of a checkpoint, a training directory or a packed file (module docstring)."""
    p = resolve_lm_path(path)
    source = os.fspath(p)
    if is_packed_file(p):
        pm, header, size = read_packed(p, numpy=True)
        weights = {k: np.asarray(v, dtype=np.float32) for k, v in pm.dense.items()}
        for name, (codes, basis, alpha) in pm.quantized.items():
            weights[name] = dequantize(name, codes, basis, alpha, source)
        cfg, units = _model_config(pm.model_config, source), _units(pm.units_state, source)
        kind, method, meta = "packed", dict(pm.method_config), {"file_bytes": size}
    else:
        if not p.exists():
            raise AdmmqError("no such file", p)
        data = load_torch_zip(p)
        check_checkpoint(data, p)
        weights = {k: np.asarray(v, dtype=np.float32) for k, v in dict(data["model"]).items()}
        for name, d in (data.get("quantized") or {}).items():
            if not isinstance(d, dict) or not {"codes", "basis", "alpha"} <= set(d):
                raise FormatError(f"quantized matrix {name!r} is malformed", source)
            if name not in weights:
                raise MismatchError(f"{source}: quantized matrix {name!r} is not a model parameter")
            w = dequantize(name, d["codes"], d["basis"], d["alpha"], source)
            if w.shape != weights[name].shape:
                raise MismatchError(f"{source}: quantized matrix {name!r} has shape {w.shape}, expected "
                                    f"{weights[name].shape}")
            weights[name] = w
        cfg, units = _model_config(data["model_config"], source), _units(data["units"], source)
        kind, method = "checkpoint", dict(data.get("method_config") or {})
        meta = {"trainer": data.get("trainer", {}), "train_config": data.get("train_config", {})}
    _check(cfg, weights, units, source)
    return WeightsLM(cfg, weights, units, source, kind, method, meta)
