"""Where an LM file is and what makes a dict an admmq checkpoint (no PyTorch needed).

Shared by the PyTorch loader (:mod:`rescorer.pack.checkpoint`) and the numpy one
(:mod:`rescorer.pack.numpy_lm`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from rescorer.errors import AdmmqError, FormatError, PathLike

FORMAT = "admmq-checkpoint"
VERSION = 1
BEST = "best.pt"
LAST = "last.pt"


def resolve_lm_path(path: PathLike) -> Path:
    """A training output directory stands for its ``best.pt``."""
    p = Path(path)
    if p.is_dir():
        best = p / BEST
        if not best.exists():
            raise AdmmqError(f"directory has no {BEST}", p)
        return best
    return p


def check_checkpoint(data: Any, path: PathLike) -> None:
    """A one-line :class:`FormatError` unless ``data`` is an admmq checkpoint of this version."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FormatError("not an admmq checkpoint (no 'admmq-checkpoint' format tag)", path)
    if data.get("version") != VERSION:
        raise FormatError(f"checkpoint version {data.get('version')!r} is not supported (this admmq reads "
                          f"version {VERSION})", path)
    for key in ("model_config", "units", "model"):
        if key not in data:
            raise FormatError(f"checkpoint lacks '{key}'", path)


def self_norm_of(method_config: Dict[str, Any], meta: Dict[str, Any]) -> float:
    """The ``--self-norm`` weight a model was trained with (a checkpoint's train config, or a packed file's
    method config); 0 when it was not self-normalised."""
    train_cfg = meta.get("train_config") or {}
    return float(train_cfg.get("self_norm") or method_config.get("self_norm") or 0.0)
