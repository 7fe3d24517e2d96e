"""Splitting n-best lists into rescoring jobs and merging the jobs' results back.

A shard is a contiguous block of utterances, in the list's utterance order
(first appearance): job ``k`` of ``n`` (1-based, Kaldi's ``JOB=1:n``) takes
utterances ``floor((k-1)·U/n) .. floor(k·U/n) - 1``, so the split is
deterministic and the jobs' outputs, concatenated in job order, are the
unsplit list's.  An utterance never straddles two jobs, so every per-utterance
decision (the best hypothesis) is the one the unsplit run makes, as long as
the weights are the same in every job (given, or tuned on a whole dev set).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from rescorer.errors import AdmmqError, MismatchError, PathLike
from rescorer.fileio import atomic_open, check_writable
from rescorer.nbest.lists import NBestList, write_nbest_file
from rescorer.nbest.kaldi_dir import read_nbest, read_symbol_table, write_nbest_dir


def parse_shard(spec: str) -> Tuple[int, int]:
    """``"k/n"`` -> ``(k, n)`` with ``1 <= k <= n``."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec or "")
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise AdmmqError(f"--job {spec!r}: expected K/N with 1 <= K <= N (job K of N, as Kaldi's JOB=1:N)")
    return int(m.group(1)), int(m.group(2))


def shard_range(num_utts: int, k: int, n: int) -> Tuple[int, int]:
    """Utterances ``[start, stop)`` of job ``k`` of ``n``."""
    return (k - 1) * num_utts // n, k * num_utts // n


def select_utterances(nb: NBestList, start: int, stop: int) -> NBestList:
    """The utterances ``start .. stop-1`` of ``nb`` with all their hypotheses (costs kept)."""
    lo, hi = int(nb.offsets[start]), int(nb.offsets[stop])
    offsets = nb.offsets[start: stop + 1] - lo
    part = NBestList(keys=nb.keys[lo:hi], words=nb.words[lo:hi], ranks=nb.ranks[lo:hi],
                     costs={k: v[lo:hi] for k, v in nb.costs.items()}, utts=nb.utts[start:stop],
                     offsets=offsets.astype(np.int64), source=nb.source, symbols=nb.symbols)
    part.all_empty = sum(1 for u in range(len(part.utts))
                         if all(len(part.words[i]) == 0 for i in range(offsets[u], offsets[u + 1])))
    if part.all_empty:
        part.warnings.append(f"{nb.source}: {part.all_empty} utterance(s) of this shard have only empty "
                             f"hypotheses (kept; their best hypothesis is empty)")
    return part


def shard_nbest(nb: NBestList, k: int, n: int) -> NBestList:
    """Job ``k`` of ``n`` of ``nb`` (may hold no utterance when ``n`` exceeds the utterances)."""
    return select_utterances(nb, *shard_range(nb.num_utterances, k, n))


def concat_nbest(parts: Sequence[NBestList]) -> NBestList:
    """The lists one after another; an utterance in two of them is an error naming both."""
    if not parts:
        raise AdmmqError("nothing to merge")
    names = parts[0].cost_names()
    where: Dict[str, str] = {}
    for p in parts:
        if set(p.cost_names()) != set(names):
            raise MismatchError(f"{p.source}: cost columns {' '.join(p.cost_names())} differ from "
                                f"{parts[0].source}'s {' '.join(names)}")
        for u in p.utts:
            if u in where:
                raise MismatchError(f"utterance {u!r} is in both {where[u]} and {p.source}")
            where[u] = p.source
    offsets = [np.zeros(1, dtype=np.int64)]
    base = 0
    for p in parts:
        offsets.append(p.offsets[1:] + base)
        base += len(p)
    symbols = parts[0].symbols if all(p.symbols == parts[0].symbols for p in parts) else None
    out = NBestList(keys=[k for p in parts for k in p.keys], words=[w for p in parts for w in p.words],
                    ranks=np.concatenate([p.ranks for p in parts]),
                    costs={c: np.concatenate([p.costs[c] for p in parts]) for c in names},
                    utts=[u for p in parts for u in p.utts], offsets=np.concatenate(offsets),
                    source=" + ".join(p.source for p in parts), symbols=symbols)
    out.all_empty = sum(p.all_empty for p in parts)
    return out


def _write(nb: NBestList, dest: Path, form: str, archive: str, symbols) -> None:
    if form == "file":
        write_nbest_file(nb, dest)
    else:
        write_nbest_dir(nb, dest, archive, symbols)


def split_nbest(src: PathLike, out_dir: PathLike, n: int, to: str = "auto", archive: str = "text",
                words_txt: Optional[PathLike] = None) -> List[Path]:
    """Write jobs ``1..n`` of ``src`` as ``out_dir/1`` .. ``out_dir/n`` (Kaldi's ``split<n>/JOB``).

    ``to``: ``dir`` (Kaldi n-best directories), ``file`` (single-file form) or
    ``auto`` (the form of ``src``).  Returns the paths written.
    """
    if n < 1:
        raise AdmmqError(f"cannot split into {n} parts")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise AdmmqError("exists and is not a directory", out)
    out.mkdir(parents=True, exist_ok=True)
    check_writable(out / "1")
    nb = read_nbest(src, words_txt)
    form = to if to != "auto" else ("dir" if Path(src).is_dir() else "file")
    symbols = read_symbol_table(words_txt) if words_txt else None
    paths = []
    for k in range(1, n + 1):
        _write(shard_nbest(nb, k, n), out / str(k), form, archive, symbols)
        paths.append(out / str(k))
    return paths


def merge_nbest(srcs: Sequence[PathLike], dest: PathLike, to: str = "auto", archive: str = "text",
                words_txt: Optional[PathLike] = None) -> NBestList:
    """Concatenate the n-best lists ``srcs`` (jobs in order) into ``dest`` (form as ``to``; auto = the first's)."""
    check_writable(Path(dest) / "x" if Path(dest).is_dir() else dest)
    parts = [read_nbest(s, words_txt) for s in srcs]
    nb = concat_nbest(parts)
    form = to if to != "auto" else ("dir" if Path(srcs[0]).is_dir() else "file")
    _write(nb, Path(dest), form, archive, read_symbol_table(words_txt) if words_txt else None)
    return nb


def write_text(texts: Dict[str, Tuple[str, ...]], path: PathLike) -> None:
    with atomic_open(path) as fh:
        for utt, words in texts.items():
            fh.write(" ".join((utt,) + tuple(words)) + "\n")
