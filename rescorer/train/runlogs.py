"""Run logs and rescoring sweeps: their columns, reading and checking them, and run labels.

A **training run directory** (``admmq train -o RUN_DIR``) holds ``best.pt``,
``last.pt``, ``train.log`` (settings and progress, text) and
``train_log.jsonl``: one JSON object per finished epoch, in epoch order, the
whole file rewritten atomically after every epoch (so a resumed run continues
it without duplicates).  Every row has the columns of
:data:`TRAIN_LOG_COLUMNS`; a quantized method adds its own per-epoch figures
(ADMM: ``admm_primal`` = ‖Θ − Q‖, ``admm_codes_changed``, ...) as further keys.
``admmq plot front`` also reads ``RUN_DIR/test_eval.json``
(:data:`TEST_EVAL`): the output of ``admmq eval --lm RUN_DIR --text TEST --json``.

A **rescoring directory** (``admmq rescore -o DIR``) holds ``summary.json``
and, when the weights were tuned or swept, ``sweep.tsv`` (the set the weights
were chosen on) and ``sweep.test.tsv`` (tuned on dev with test references: the
same grid on the test list); see :mod:`rescorer.nbest.rescore_job`.

Readers here raise :class:`~rescorer.errors.AdmmqError` naming the file (and
line) for a missing or malformed file; nothing here needs matplotlib.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple

from rescorer.errors import AdmmqError, FormatError, PathLike
from rescorer.fileio import atomic_open, iter_lines
from rescorer.nbest.rescore_job import SUMMARY, SWEEP, SWEEP_TEST
from rescorer.perplexity import format_ppl
from rescorer.progress import say

LOG_JSONL = "train_log.jsonl"
LOG_TEXT = "train.log"
TEST_EVAL = "test_eval.json"

#: Columns of every ``train_log.jsonl`` row (JSON null where stated).
TRAIN_LOG_COLUMNS: Dict[str, str] = {
    "epoch": "1-based epoch number (int)",
    "lr": "learning rate of this epoch",
    "train_loss": "mean training cross-entropy per token in nats (the training forward pass: dropout, the "
                  "method's quantized forward)",
    "train_ppl": "exp(train_loss)",
    "valid_ppl": "validation perplexity of the full-precision weights Θ",
    "valid_ppl_q": "validation perplexity of the deployed quantized model; null for full-precision methods",
    "best": "true when this epoch became the best so far (on valid_ppl_q for quantized methods, else valid_ppl)",
    "seconds": "training time of the epoch in seconds (evaluation excluded)",
    "tokens_per_s": "training tokens per second",
    "eval_seconds": "end-of-epoch time in seconds: the method's end_epoch (ADMM projection) and validation",
}
NUMERIC_COLUMNS = ("lr", "train_loss", "train_ppl", "valid_ppl", "seconds", "tokens_per_s", "eval_seconds")


class EpochSink(Protocol):
    """Receives each finished epoch's log row (:data:`TRAIN_LOG_COLUMNS` plus method figures)."""

    def write(self, row: Dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def _number(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return str(v) if isinstance(v, int) else f"{v:.4g}"


def format_epoch_row(row: Dict[str, Any]) -> str:
    """The one-line progress message of an epoch: every figure of its log row."""
    q = row.get("valid_ppl_q")
    parts = [f"epoch {row['epoch']}: lr {row['lr']:g}",
             f"train loss {row['train_loss']:.4f} (ppl {format_ppl(row['train_ppl'])})",
             f"valid ppl {format_ppl(row['valid_ppl'])}"
             + (f" (quantized {format_ppl(q)})" if q is not None else "")]
    extra = [f"{k} {_number(v)}" for k, v in row.items()
             if k not in TRAIN_LOG_COLUMNS and isinstance(v, (int, float)) and not isinstance(v, bool)]
    if extra:
        parts.append(" ".join(extra))
    parts.append(f"{row['seconds']:.1f} s ({row['tokens_per_s']:.0f} tok/s) + eval {row['eval_seconds']:.1f} s"
                 + (" *best*" if row.get("best") else ""))
    return " | ".join(parts)


# ------------------------------------------------------------------ reading
def _log_path(path: PathLike) -> Path:
    p = Path(path)
    return p / LOG_JSONL if p.is_dir() else p


def read_train_log(path: PathLike) -> List[Dict[str, Any]]:
    """The rows of a ``train_log.jsonl`` (or of ``RUN_DIR/train_log.jsonl``), checked.

    Each row needs ``epoch`` (int, increasing) and ``valid_ppl`` (number); the
    other documented columns, when present, must be numbers (``valid_ppl_q``:
    a number or null).  Missing ``valid_ppl_q`` reads as null.
    """
    p = _log_path(path)
    if not p.is_file():
        raise AdmmqError(f"no such file (the per-epoch log 'admmq train' writes as {LOG_JSONL})", p)
    rows: List[Dict[str, Any]] = []
    for lineno, line in iter_lines(p):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormatError(f"not JSON ({exc.msg} at column {exc.colno})", p, lineno) from None
        if not isinstance(row, dict):
            raise FormatError(f"expected a JSON object per epoch, got {type(row).__name__}", p, lineno)
        epoch = row.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise FormatError(f"'epoch' must be a positive integer, got {epoch!r}", p, lineno)
        if rows and epoch <= rows[-1]["epoch"]:
            raise FormatError(f"epoch {epoch} after epoch {rows[-1]['epoch']} (epochs must increase)", p, lineno)
        if "valid_ppl" not in row:
            raise FormatError("no 'valid_ppl' column", p, lineno)
        for col in NUMERIC_COLUMNS + ("valid_ppl_q",):
            v = row.get(col)
            if col in row and not (v is None and col == "valid_ppl_q") and \
                    (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise FormatError(f"'{col}' must be a number, got {v!r}", p, lineno)
        row.setdefault("valid_ppl_q", None)
        rows.append(row)
    if not rows:
        raise FormatError("no epochs logged (empty file)", p)
    return rows


def read_json_object(path: PathLike, what: str) -> Dict[str, Any]:
    """A JSON object from ``path``; ``what`` says which file was expected when it is missing."""
    p = Path(path)
    if not p.is_file():
        raise AdmmqError(f"no such file ({what})", p)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise FormatError(f"not JSON ({getattr(exc, 'msg', exc)})", p, line) from None
    if not isinstance(d, dict):
        raise FormatError(f"expected a JSON object, got {type(d).__name__}", p)
    return d


def read_test_ppl(run_dir: PathLike) -> float:
    """Test perplexity of a run: ``ppl`` of ``RUN_DIR/test_eval.json`` (``admmq eval ... --json``)."""
    p = Path(run_dir) / TEST_EVAL
    d = read_json_object(p, f"write it with: admmq eval --lm {run_dir} --text TEST --json > {p}")
    ppl = d.get("ppl")
    if isinstance(ppl, bool) or not isinstance(ppl, (int, float)) or not math.isfinite(ppl) or ppl <= 0:
        raise FormatError(f"'ppl' must be a positive number, got {ppl!r}", p)
    return float(ppl)


# ------------------------------------------------------------- run labels
METHOD_NAMES = {"fp": "STD", "admm": "ADMM", "bin": "Bin", "bin-lin": "Bin+Lin", "multibit": "multi-bit"}
QSET_NAMES = {"pm1": "{±1}", "0pm1": "{0,±1}", "pm12": "{±1,±2}", "pm124": "{±1,±2,±4}"}
TYING_NAMES = {"layer": "layer", "node": "node", "none": "NoTie"}


def _configs_from_text_log(p: Path) -> Tuple[Optional[dict], Optional[dict]]:
    method = model = None
    for _, line in iter_lines(p):
        for key in ("method", "model"):
            marker = f" {key} config: "
            at = line.find(marker)
            if at >= 0:
                try:
                    value = json.loads(line[at + len(marker):])
                except json.JSONDecodeError:
                    continue
                if key == "method" and method is None:
                    method = value
                if key == "model" and model is None:
                    model = value
        if method is not None and model is not None:
            break
    return method, model


def run_configs(run_dir: PathLike) -> Tuple[Optional[dict], Optional[dict]]:
    """(method config, model config) of a run: from ``train.log``, else from its checkpoint; None if neither."""
    d = Path(run_dir)
    if (d / LOG_TEXT).is_file():
        method, model = _configs_from_text_log(d / LOG_TEXT)
        if method is not None:
            return method, model
    for name in ("best.pt", "last.pt"):
        if (d / name).is_file():
            from rescorer.pack.checkpoint import read_checkpoint  # torch: only when train.log says nothing

            ckpt = read_checkpoint(d / name)
            return ckpt.get("method_config") or {"method": "fp"}, ckpt.get("model_config")
    return None, None


def method_label(method: Optional[dict], model: Optional[dict]) -> Optional[str]:
    """``STD``, ``ADMM {±1} layer``, ``ADMM {±1} layer +Lin`` (Bin+Lin's linear layers), ``Bin+Lin``, ``2-bit``...; `` H=…``/`` L=…`` when not 1x200."""
    if not method:
        return None
    name = str(method.get("method", "fp"))
    label = METHOD_NAMES.get(name, name)
    if name == "admm":
        qset = str(method.get("qset", "pm1"))
        if qset.startswith("pow2:"):
            qset_txt = "{0,±1,…,±" + str(2 ** int(qset[5:])) + "}" if qset[5:].isdigit() else qset
        else:
            qset_txt = QSET_NAMES.get(qset, qset)
        tying = str(method.get("tying", "layer"))
        label = "ADMM NoTie" if tying == "none" else f"ADMM {qset_txt} {TYING_NAMES.get(tying, tying)}"
        if method.get("linear_layers"):
            label += " +Lin"
    elif name == "multibit":
        label = f"{method.get('bits', '?')}-bit"
    if model:
        if model.get("hidden_dim", 200) != 200:
            label += f" H={model['hidden_dim']}"
        if model.get("layers", 1) != 1:
            label += f" L={model['layers']}"
    return label


@dataclass
class TrainRun:
    """A training run directory's log rows and legend label."""

    path: str
    label: str
    method: Optional[str]
    rows: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def quantized(self) -> bool:
        return any(r.get("valid_ppl_q") is not None for r in self.rows)

    def best_epoch(self) -> int:
        """The last epoch marked ``best`` (else the one with the lowest selection perplexity)."""
        marked = [r["epoch"] for r in self.rows if r.get("best")]
        if marked:
            return marked[-1]
        key = "valid_ppl_q" if self.quantized else "valid_ppl"
        return min((r for r in self.rows if r.get(key) is not None), key=lambda r: r[key])["epoch"]


def unique_labels(labels: List[str], paths: List[str]) -> List[str]:
    """Labels shared by several runs get the run directory's name appended."""
    return [f"{lab} ({Path(p).name})" if labels.count(lab) > 1 else lab for lab, p in zip(labels, paths)]


def read_runs(run_dirs: List[PathLike], labels: Optional[List[str]] = None) -> List[TrainRun]:
    """The runs of ``run_dirs`` with their logs; ``labels`` (one per run) replace the derived ones."""
    if labels and len(labels) != len(run_dirs):
        raise AdmmqError(f"{len(labels)} --label for {len(run_dirs)} runs (give one per run, in order)")
    runs = []
    for i, d in enumerate(run_dirs):
        rows = read_train_log(Path(d) / LOG_JSONL)
        method, model = run_configs(d) if not labels else (None, None)
        label = labels[i] if labels else (method_label(method, model) or Path(d).name)
        runs.append(TrainRun(str(d), label, method.get("method") if method else None, rows))
    if not labels:
        for run, lab in zip(runs, unique_labels([r.label for r in runs], [r.path for r in runs])):
            run.label = lab
    return runs


# ---------------------------------------------------------- rescore sweeps
@dataclass
class SweepTable:
    """One sweep file: settings (lm_scale, wip) and the WER (%) / errors of the total and each subset."""

    path: str
    set: str  # "dev" or "test"
    subsets: List[str]  # the named subsets with columns, in file order
    lm_scales: List[float]
    wips: List[float]
    errors: Dict[str, List[int]]  # "total" and each subset -> per row
    wer: Dict[str, List[float]]


def read_sweep_tsv(path: PathLike, set_name: str) -> SweepTable:
    """A ``sweep.tsv`` / ``sweep.test.tsv`` of ``admmq rescore`` (columns in :mod:`rescorer.nbest.rescore_job`)."""
    p = Path(path)
    if not p.is_file():
        raise AdmmqError("no such file (the LM-scale sweep 'admmq rescore' writes when it tunes or sweeps)", p)
    lines = iter_lines(p)
    try:
        _, header_line = next(lines)
    except StopIteration:
        raise FormatError("empty file (expected a header 'lm_scale wip errors wer ...')", p) from None
    header = header_line.split("\t")
    if header[:4] != ["lm_scale", "wip", "errors", "wer"] or len(header) % 2:
        raise FormatError(f"header must be 'lm_scale wip errors wer' then errors:NAME wer:NAME pairs, "
                          f"got {header_line!r}", p, 1)
    subsets = []
    for k in range(4, len(header), 2):
        e, w = header[k].partition(":"), header[k + 1].partition(":")
        if e[0] != "errors" or w[0] != "wer" or not e[2] or e[2] != w[2]:
            raise FormatError(f"columns {header[k]!r} {header[k + 1]!r} are not errors:NAME wer:NAME", p, 1)
        subsets.append(e[2])
    names = ["total"] + subsets
    table = SweepTable(str(p), set_name, subsets, [], [], {n: [] for n in names}, {n: [] for n in names})
    for lineno, line in lines:
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise FormatError(f"expected {len(header)} tab-separated fields, got {len(fields)}", p, lineno)
        try:
            table.lm_scales.append(float(fields[0]))
            table.wips.append(float(fields[1]))
            for i, n in enumerate(names):
                table.errors[n].append(int(fields[2 + 2 * i]))
                table.wer[n].append(float(fields[3 + 2 * i]))
        except ValueError:
            raise FormatError(f"not numbers: {line!r}", p, lineno) from None
    if not table.lm_scales:
        raise FormatError("no grid points (only a header)", p)
    return table


@dataclass
class RescoreSweeps:
    """A rescoring directory's sweeps and the chosen weights."""

    path: str
    lm_scale: float
    wip: float
    chosen_by: str  # "dev" or "test"
    tables: List[SweepTable]


def read_rescore_dir(rescore_dir: PathLike) -> RescoreSweeps:
    """``summary.json`` and the sweep file(s) of an ``admmq rescore`` output directory."""
    d = Path(rescore_dir)
    s = read_json_object(d / SUMMARY, "the summary 'admmq rescore -o DIR' writes")
    weights, chosen = s.get("weights"), s.get("chosen_by")
    if not isinstance(weights, dict) or not all(isinstance(weights.get(k), (int, float)) for k in ("lm_scale", "wip")):
        raise FormatError("no weights.lm_scale / weights.wip numbers", d / SUMMARY)
    if chosen == "given":
        raise AdmmqError("the weights were given (--lm-scale and --wip), so nothing was swept; rerun admmq "
                         "rescore with --dev/--dev-ref or --ref to tune them", d / SUMMARY)
    if chosen not in ("dev", "test"):
        raise FormatError(f"chosen_by must be 'dev', 'test' or 'given', got {chosen!r}", d / SUMMARY)
    tables = [read_sweep_tsv(d / SWEEP, chosen)]
    if chosen == "dev" and (d / SWEEP_TEST).exists():
        tables.append(read_sweep_tsv(d / SWEEP_TEST, "test"))
    return RescoreSweeps(str(d), float(weights["lm_scale"]), float(weights["wip"]), chosen, tables)


class RunLog:
    """Writes ``train.log`` (text) and ``train_log.jsonl`` (one object per epoch) in the run directory,
    and hands each epoch's row to the ``sinks``."""

    def __init__(self, out: Path, quiet: bool, sinks: Sequence[EpochSink] = (), enabled: bool = True):
        self.out = out
        self.quiet = quiet
        self.sinks = list(sinks)
        self.enabled = enabled  # False on the data-parallel ranks other than 0

    def line(self, message: str) -> None:
        if not self.enabled:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.out / LOG_TEXT, "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {message}\n")
        say(message, self.quiet)

    def rewrite_jsonl(self, rows: List[Dict[str, Any]]) -> None:
        with atomic_open(self.out / LOG_JSONL) as fh:
            for row in rows:
                fh.write(json.dumps(row, sort_keys=True) + "\n")

    def epoch(self, rows: List[Dict[str, Any]]) -> None:
        """After an epoch: ``train_log.jsonl`` rewritten with all ``rows`` (so a resumed run never
        duplicates an epoch), the newest row to every sink, the row as a progress line."""
        if not self.enabled:
            return
        self.rewrite_jsonl(rows)
        for sink in self.sinks:
            sink.write(rows[-1])
        self.line(format_epoch_row(rows[-1]))

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
