"""Frozen settings dataclasses stored in checkpoints: to and from plain dicts.

:class:`~rescorer.lm.model.ModelConfig`, :class:`~rescorer.quant.method.MethodConfig`
and :class:`~rescorer.train.config.TrainConfig` are written into every
checkpoint as dicts and read back with :func:`settings_from_dict`, which
refuses names it does not know (a checkpoint from a newer admmq) instead of
dropping them.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping, Type, TypeVar

from rescorer.errors import MismatchError

T = TypeVar("T")


def settings_from_dict(cls: Type[T], d: Mapping[str, Any], what: str) -> T:
    """``cls(**d)``, or :class:`MismatchError` naming the unknown ``what`` settings."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(d) - names
    if unknown:
        raise MismatchError(f"unknown {what} settings {sorted(unknown)} (checkpoint from a newer admmq?)")
    return cls(**d)
