"""Training methods: full precision and the quantized ones (ADMM, binarized, multi-bit)."""

from __future__ import annotations

from typing import Callable, Dict

from rescorer.errors import AdmmqError
from rescorer.quant.admm import AdmmMethod
from rescorer.quant.binarize import BinLinMethod, BinMethod
from rescorer.quant.method import MethodConfig, TrainingMethod
from rescorer.quant.multibit import MultibitMethod
from rescorer.lm.quantized import QuantizedMatrix

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


__all__ = ["METHODS", "MethodConfig", "QuantizedMatrix", "TrainingMethod", "build_method"]
