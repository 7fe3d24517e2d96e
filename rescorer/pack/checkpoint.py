"""Training checkpoints: saving, reading and rebuilding the deployed model they hold.

A checkpoint is a ``dict`` of plain values and tensors saved with
``torch.save`` and read with ``torch.load(weights_only=True)``: loading never
unpickles code.  Layout (``format = "admmq-checkpoint"``, ``version = 1``)::

    model_config   dict   ModelConfig fields
    method_config  dict   MethodConfig fields (method name and its settings)
    train_config   dict   TrainConfig fields (what produced it)
    units          dict   vocabulary (word symbols, or the SentencePiece model bytes)
    model          dict   full-precision weights Θ (state dict)
    quantized      dict   name -> {codes, basis, alpha}: the deployed quantized matrices
    method_state   dict   the method's resumable state (ADMM: Q, λ, ...)
    optimizer      dict   optimizer state dict
    trainer        dict   epoch, step, lr, best figures, RNG state, ...
    log            list   one dict per finished epoch

``best.pt`` and ``last.pt`` share this layout.  The model that evaluation
and rescoring use is ``model`` with every matrix in ``quantized`` replaced by
its dequantized values (:func:`rescorer.pack.lm_file.load_lm`, which also
loads packed files, recognised by their own header).
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from rescorer.errors import AdmmqError, FormatError, MismatchError, PathLike
from rescorer.fileio import atomic_path
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.lm.quantized import QuantizedMatrix
from rescorer.lm.subword import units_from_state

from rescorer.pack.lm_path import (BEST, FORMAT, LAST, VERSION, check_checkpoint, resolve_lm_path,  # noqa: F401
                                   self_norm_of)


def save_checkpoint(path: PathLike, payload: Dict[str, Any]) -> None:
    """Write ``payload`` atomically (temp file + rename)."""
    data = dict(payload)
    data["format"] = FORMAT
    data["version"] = VERSION
    with atomic_path(path) as tmp:
        try:
            torch.save(data, tmp)
        except RuntimeError as exc:  # torch's zip writer reports ENOSPC and friends as RuntimeError
            raise AdmmqError(f"cannot write the checkpoint (disk full?): {str(exc).splitlines()[0][:200]}",
                             path) from None


def read_checkpoint(path: PathLike) -> Dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; anything else is a one-line :class:`FormatError`."""
    p = Path(path)
    if not p.exists():
        raise AdmmqError("no such file", p)
    if p.is_dir():
        raise AdmmqError("is a directory, expected a checkpoint file", p)
    try:
        with warnings.catch_warnings():  # torch's own advice would be to load it unsafely: not ours to give
            warnings.simplefilter("ignore")
            data = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise FormatError("refused: it holds pickled Python objects, which loading would run as code; nothing "
                          "was run. An admmq checkpoint holds only tensors and plain values: for a model you "
                          "trust, save its state_dict() and convert it with `admmq import`", p) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError,
            OSError, AttributeError, TypeError, IndexError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FormatError(f"not a readable admmq checkpoint (corrupt or truncated?): {msg[:200]}", p) from None
    check_checkpoint(data, p)
    return data


@dataclass
class LoadedLM:
    """A ready-to-score LM: the deployed model (eval mode), its units and what it is."""

    model: LSTMLM
    units: Any
    path: str
    kind: str  # "checkpoint" or "packed"
    method_config: Dict[str, Any] = field(default_factory=dict)
    quantized: Dict[str, QuantizedMatrix] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return str(self.method_config.get("method", "fp"))

    @property
    def self_norm(self) -> float:
        """The ``--self-norm`` weight the model was trained with (0: not self-normalised)."""
        return self_norm_of(self.method_config, self.meta)


def quantized_from_state(state: Optional[Dict[str, Any]], source: str) -> Dict[str, QuantizedMatrix]:
    out = {}
    for name, d in (state or {}).items():
        try:
            out[name] = QuantizedMatrix.from_state(d, name)
        except FormatError as exc:
            raise FormatError(exc.message, source) from None
    return out


def build_model(model_config: Dict[str, Any], weights: Dict[str, torch.Tensor],
                quantized: Dict[str, QuantizedMatrix], source: str) -> LSTMLM:
    """An eval-mode :class:`LSTMLM` with ``weights``, quantized matrices dequantized over them."""
    cfg = ModelConfig.from_dict(dict(model_config))
    model = LSTMLM(cfg)
    weights = dict(weights)
    for name, q in quantized.items():
        if name not in weights:
            raise MismatchError(f"{source}: quantized matrix {name!r} is not a model parameter")
        if q.shape != tuple(weights[name].shape):
            raise MismatchError(f"{source}: quantized matrix {name!r} has shape {q.shape}, "
                                f"expected {tuple(weights[name].shape)}")
        weights[name] = q.dequantize()
    model.load_weights(weights, source)
    model.eval()
    return model


def units_for_model(state: Dict[str, Any], model: LSTMLM, path: PathLike):
    """The stored vocabulary, checked against the model's input size."""
    try:
        units = units_from_state(state)
    except (KeyError, TypeError) as exc:
        raise FormatError(f"stored vocabulary is malformed ({exc})", path) from None
    except FormatError as exc:
        raise FormatError(exc.message, path) from None
    if len(units) != model.cfg.vocab_size:
        raise MismatchError(f"vocabulary has {len(units)} symbols but the model was built for "
                            f"{model.cfg.vocab_size}", path)
    return units
