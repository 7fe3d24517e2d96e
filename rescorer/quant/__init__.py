"""Training methods: full precision and the quantized ones (ADMM, binarized, multi-bit)."""

from __future__ import annotations

from typing import Callable, Dict

from ..errors import AdmmqError
from .admm import AdmmMethod
from .binarize import BinLinMethod, BinMethod
from .method import MethodConfig, TrainingMethod
from .multibit import MultibitMethod
from .qmatrix import QuantizedMatrix

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
