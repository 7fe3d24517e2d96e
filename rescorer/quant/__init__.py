"""Quantization training methods: full precision and the quantized ones (ADMM, binarized, multi-bit).

Also the quantization sets and projections, mixed precision, per-matrix sensitivity and the
precision search.  Only training (:mod:`rescorer.train`) and the command line use this layer;
what a deployed model needs of quantization (the quantized-matrix form, activation quantization)
lives in :mod:`rescorer.lm`.
"""

from __future__ import annotations

from typing import Callable, Dict

from rescorer.errors import AdmmqError
from rescorer.quant.admm import AdmmMethod
from rescorer.quant.binarize import BinLinMethod, BinMethod
from rescorer.quant.method import MethodConfig, TrainingMethod
from rescorer.quant.multibit import MultibitMethod

METHODS: Dict[str, Callable[[MethodConfig], TrainingMethod]] = {
    "fp": TrainingMethod,
    "admm": AdmmMethod,
    "bin": BinMethod,
    "bin-lin": BinLinMethod,
    "multibit": MultibitMethod,
}


def build_method(cfg: MethodConfig) -> TrainingMethod:
    """The :class:`TrainingMethod` named by ``cfg.method``."""
    try:
        factory = METHODS[cfg.method]
    except KeyError:
        raise AdmmqError(f"unknown training method {cfg.method!r}; choose from {sorted(METHODS)}") from None
    return factory(cfg)


__all__ = ["METHODS", "MethodConfig", "TrainingMethod", "build_method"]
