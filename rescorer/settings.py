"""Settings: frozen dataclasses stored in checkpoints, to and from plain dicts; number lists from options.

:class:`~rescorer.lm.model.ModelConfig`, :class:`~rescorer.quant.method.MethodConfig`
and :class:`~rescorer.train.config.TrainConfig` are written into every
checkpoint as dicts and read back with :func:`settings_from_dict`, which
refuses names it does not know (a checkpoint from a newer admmq) instead of
dropping them.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping, Tuple, Type, TypeVar

from rescorer.errors import AdmmqError, MismatchError

T = TypeVar("T")


def settings_from_dict(cls: Type[T], d: Mapping[str, Any], what: str) -> T:
    """``cls(**d)``, or :class:`MismatchError` naming the unknown ``what`` settings."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(d) - names
    if unknown:
        raise MismatchError(f"unknown {what} settings {sorted(unknown)} (checkpoint from a newer admmq?)")
    return cls(**d)


def parse_numbers(spec: str, what: str, expected: str = "comma-separated numbers") -> Tuple[float, ...]:
    """``"0.6,0.4"`` -> (0.6, 0.4): the comma-separated numbers of an option value (spaces around them and
    a trailing comma allowed), or :class:`AdmmqError` ``WHAT: expected EXPECTED, got 'SPEC'``."""
    items = [x.strip() for x in str(spec).split(",")]
    if items and not items[-1]:
        items.pop()
    try:
        if not items:
            raise ValueError
        return tuple(float(x) for x in items)
    except ValueError:
        raise AdmmqError(f"{what}: expected {expected}, got {spec!r}") from None
