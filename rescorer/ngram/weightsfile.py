"""The interpolation-weights file that ``admmq interpolate`` writes and ``eval``/``rescore`` read.

A small JSON object::

    {
      "format": "admmq-interpolation-weights", "version": 1,
      "components": [{"kind": "lstm",  "path": "/abs/exp/std/best.pt", "weight": 0.62, "ppl": 121.3},
                     {"kind": "ngram", "path": "/abs/lm/ptb.4g.arpa",   "weight": 0.38, "ppl": 148.2}],
      "oov": {"mode": "share", "types": 10000, "logprob": -16.118},
      "ppl": 109.7,                        # the mixture's validation perplexity
      "valid": {"path": "...", "tokens": 73760},
      "iterations": [{"iteration": 0, "weights": [0.5, 0.5], "ppl": 112.0}, ...]
    }

Components are listed LSTMs first, then n-grams, in command-line order; a
command given ``--weights FILE`` with its own ``--lm``/``--ngram`` must list
the same kinds in the same order (paths may differ: models move).  Without
``--lm``/``--ngram`` the file's paths are used.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from rescorer.errors import AdmmqError, FormatError, PathLike
from rescorer.fileio import atomic_open
from rescorer.ngram.mixture import OovPolicy

FORMAT = "admmq-interpolation-weights"
VERSION = 1
KINDS = ("lstm", "ngram")


@dataclass
class WeightsFile:
    kinds: List[str]
    paths: List[str]
    weights: List[float]
    oov: Optional[OovPolicy] = None
    extra: Dict[str, Any] = field(default_factory=dict)
    path: Optional[str] = None


def read_weights(path: PathLike) -> WeightsFile:
    """Read a weights file; anything malformed is a one-line :class:`FormatError`."""
    p = Path(path)
    if not p.exists():
        raise AdmmqError("no such file", p)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FormatError(f"not JSON: {exc.msg}", p, exc.lineno) from None
    except UnicodeDecodeError:
        raise FormatError("not a UTF-8 text file (expected an admmq weights JSON file)", p) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FormatError(f"not an admmq interpolation-weights file (no \"format\": \"{FORMAT}\")", p)
    if data.get("version") != VERSION:
        raise FormatError(f"weights file version {data.get('version')!r} is not supported (expected {VERSION})", p)
    comps = data.get("components")
    if not isinstance(comps, list) or not comps:
        raise FormatError("\"components\" must be a non-empty list", p)
    kinds, paths, weights = [], [], []
    for i, c in enumerate(comps):
        if not isinstance(c, dict) or c.get("kind") not in KINDS or not isinstance(c.get("path"), str):
            raise FormatError(f"component {i + 1} needs \"kind\" (lstm or ngram) and \"path\"", p)
        w = c.get("weight")
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not (w >= 0):
            raise FormatError(f"component {i + 1} needs a \"weight\" >= 0, got {w!r}", p)
        kinds.append(c["kind"])
        paths.append(c["path"])
        weights.append(float(w))
    if sum(weights) <= 0:
        raise FormatError("the weights sum to 0", p)
    oov = None
    if isinstance(data.get("oov"), dict):
        try:
            oov = OovPolicy.from_dict(data["oov"])
        except (AdmmqError, TypeError, ValueError) as exc:
            raise FormatError(f"bad \"oov\" entry: {exc}", p) from None
    extra = {k: v for k, v in data.items() if k not in ("format", "version", "components", "oov")}
    return WeightsFile(kinds, paths, weights, oov, extra, os.fspath(p))


def write_weights(path: PathLike, kinds: List[str], paths: List[str], weights: List[float],
                  oov: Optional[OovPolicy] = None, component_ppl: Optional[List[float]] = None,
                  **extra: Any) -> None:
    """Write a weights file atomically; ``extra`` adds top-level fields (ppl, valid, iterations, ...)."""
    comps = []
    for k, (kind, cp, w) in enumerate(zip(kinds, paths, weights)):
        entry: Dict[str, Any] = {"kind": kind, "path": os.path.abspath(cp), "weight": float(w)}
        if component_ppl is not None:
            entry["ppl"] = float(component_ppl[k])
        comps.append(entry)
    data: Dict[str, Any] = {"format": FORMAT, "version": VERSION, "components": comps}
    if oov is not None:
        data["oov"] = oov.to_dict()
    data.update(extra)
    with atomic_open(path) as fh:
        json.dump(data, fh, indent=1)
        fh.write("\n")
