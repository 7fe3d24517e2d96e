"""``admmq plot``: training curves, the size-perplexity front and LM-scale sweeps as PNG (+ CSV, SVG).

Every figure is drawn from files a run already wrote (:mod:`rescorer.train.runlogs`),
never by re-running anything, and comes with the CSV of exactly the points it
drew, beside the PNG (``FILE.png`` -> ``FILE.csv``; ``--svg``: ``FILE.svg``).
Outputs are written atomically; the PNG is ``width x height`` pixels.

matplotlib (``pip install 'admmq[plot]'``) is imported only when a figure is
drawn (the object API, no pyplot: no global state, no display needed);
without it, drawing raises a one-line :class:`AdmmqError` naming the extra.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

from rescorer.errors import AdmmqError, FormatError, PathLike
from rescorer.fileio import atomic_open, atomic_path, check_writable
from rescorer.train.runlogs import RescoreSweeps, read_rescore_dir, read_runs, read_test_ppl

EXTRA = "pip install 'admmq[plot]'"
MIB = float(1 << 20)
SIZE_KINDS = {
    "paper": "model size (MiB, log scale): weight matrices at their stored width, the paper's count",
    "file": "packed file size (MiB, log scale): admmq export --bits auto",
}


class PaperPoint(NamedTuple):
    family: str  # legend group
    label: str
    size_mb: float
    ppl: float


#: The paper's Table 1 (PTB, LSTM 1x200): model size in "MB" (= MiB, see rescorer.report.model_size) and test PPL.
PAPER_TABLE1: Tuple[PaperPoint, ...] = (
    PaperPoint("STD", "STD 10 ep", 16.53, 114.4),
    PaperPoint("Bin", "Bin 50 ep", 0.52, 131.6),
    PaperPoint("Bin", "Bin 400 ep", 0.52, 126.3),
    PaperPoint("Bin+Lin", "Bin+Lin 50 ep", 0.53, 121.5),
    PaperPoint("Bin+Lin", "Bin+Lin 400 ep", 0.53, 116.2),
    PaperPoint("ADMM NoTie", "ADMM NoTie {1}", 16.53, 114.6),
    PaperPoint("ADMM node", "ADMM {±1} node", 0.65, 117.2),
    PaperPoint("ADMM node", "ADMM {0,±1} node", 1.32, 119.3),
    PaperPoint("ADMM node", "ADMM {±1,±2} node", 1.32, 118.4),
    PaperPoint("ADMM node", "ADMM {±1,±2,±4} node", 2.01, 115.9),
    PaperPoint("ADMM layer", "ADMM {±1} layer", 0.52, 121.8),
    PaperPoint("ADMM layer", "ADMM {0,±1} layer", 1.06, 123.1),
    PaperPoint("ADMM layer", "ADMM {±1,±2} layer", 1.06, 122.7),
    PaperPoint("ADMM layer", "ADMM {±1,±2,±4} layer", 1.57, 120.4),
)
PAPER_MARKERS = {"STD": "s", "Bin": "v", "Bin+Lin": "^", "ADMM NoTie": "D", "ADMM node": "o", "ADMM layer": "P"}


@dataclass(frozen=True)
class FigureOptions:
    """Pixel size and resolution of the PNG; ``svg``: also write an SVG; ``title``: None = the default."""

    width: int = 1200
    height: int = 800
    dpi: int = 150
    svg: bool = False
    title: Optional[str] = None

    def __post_init__(self) -> None:
        if self.width < 100 or self.height < 100 or self.dpi < 10:
            raise AdmmqError(f"figure too small: {self.width}x{self.height} px at {self.dpi} dpi "
                             f"(at least 100x100 px, 10 dpi)")


@dataclass
class FigureFiles:
    png: str
    csv: str
    svg: Optional[str]
    points: int  # CSV rows


def output_paths(output: PathLike, svg: bool) -> Tuple[Path, Path, Optional[Path]]:
    """(PNG, CSV, SVG or None) for ``-o FILE.png``; each checked writable before any work."""
    png = Path(output)
    if png.suffix.lower() != ".png":
        raise AdmmqError("output must be a .png file name (the CSV and SVG go beside it)", png)
    paths = (png, png.with_suffix(".csv"), png.with_suffix(".svg") if svg else None)
    for p in paths:
        if p is not None:
            check_writable(p)
    return paths


def _figure(opts: FigureOptions, ncols: int = 1, sharey: bool = False):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise AdmmqError(f"admmq plot needs matplotlib: {EXTRA}") from None
    fig = Figure(figsize=(opts.width / opts.dpi, opts.height / opts.dpi), dpi=opts.dpi, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False, sharey=sharey)[0]
    return fig, list(axes)


def _write(fig, opts: FigureOptions, output: PathLike, header: Sequence[str], rows: List[Sequence[Any]]) -> FigureFiles:
    png, csv_path, svg = output_paths(output, opts.svg)
    with atomic_open(csv_path) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(["" if v is None else v for v in row] for row in rows)
    # the pixel size is exact: figsize * dpi, no tight bounding box
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=opts.dpi, metadata={"Software": None})
    if svg is not None:
        with atomic_path(svg) as tmp:
            fig.savefig(tmp, format="svg", metadata={"Date": None})
    return FigureFiles(str(png), str(csv_path), None if svg is None else str(svg), len(rows))


def _colors(n: int) -> List[str]:
    base = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
            "#bcbd22", "#7f7f7f"]
    return [base[i % len(base)] for i in range(n)]


# ------------------------------------------------------------------ curves
def theta_ceiling(runs: Sequence[Any]) -> float:
    """10x the largest finite perplexity of the deployed models (quantized, or fp for fp runs) of ``runs``."""
    deployed = [r["valid_ppl_q"] if run.quantized else r["valid_ppl"] for run in runs for r in run.rows]
    return 10 * max((v for v in deployed if v is not None and math.isfinite(v)), default=math.inf)


def plot_curves(run_dirs: Sequence[PathLike], output: PathLike, opts: FigureOptions = FigureOptions(),
                labels: Optional[List[str]] = None, y_scale: str = "log") -> FigureFiles:
    """Validation perplexity against epoch of several runs: quantized model solid, full precision (Θ) dashed.

    CSV: ``run,label,epoch,valid_ppl,valid_ppl_q`` (one row per logged epoch; ``valid_ppl_q`` empty for
    full-precision runs).
    """
    output_paths(output, opts.svg)
    runs = read_runs(list(run_dirs), labels)
    fig, (ax,) = _figure(opts)
    rows = []
    # A binarized run's latent Θ can score 1e50 and more: Θ points above 10x the largest deployed-model
    # perplexity are left off the axes (labelled so; the CSV keeps them) so that the models stay readable.
    ceiling = theta_ceiling(runs)
    for run, color in zip(runs, _colors(len(runs))):
        epochs = [r["epoch"] for r in run.rows]
        fp = [r["valid_ppl"] for r in run.rows]
        if run.quantized:
            q = [math.nan if r["valid_ppl_q"] is None else r["valid_ppl_q"] for r in run.rows]
            ax.plot(epochs, q, "-", color=color, lw=1.8, marker="o", ms=3, label=f"{run.label}: quantized")
            shown = [v if v <= ceiling else math.nan for v in fp]
            off = " (off the scale)" if any(v > ceiling for v in fp) else ""
            ax.plot(epochs, shown, "--", color=color, lw=1.0, alpha=0.8, label=f"{run.label}: full precision Θ{off}")
        else:
            ax.plot(epochs, fp, "--", color=color, lw=1.8, marker="o", ms=3, label=f"{run.label} (full precision)")
        best = run.best_epoch()
        b = next(r for r in run.rows if r["epoch"] == best)
        ax.plot([best], [b["valid_ppl_q"] if run.quantized else b["valid_ppl"]], marker="*", ms=12, color=color,
                mec="black", mew=0.6, ls="none")
        rows += [[run.path, run.label, r["epoch"], r["valid_ppl"], r["valid_ppl_q"]] for r in run.rows]
    ax.set_yscale(y_scale)
    if y_scale == "log":
        from matplotlib.ticker import LogLocator, ScalarFormatter

        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 7.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.yaxis.get_minor_formatter().set_scientific(False)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation perplexity" + (" (log scale)" if y_scale == "log" else ""))
    ax.set_title(opts.title or "Validation perplexity per epoch (solid: quantized model, dashed: full "
                               "precision; ★ best epoch)", fontsize="medium")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return _write(fig, opts, output, ["run", "label", "epoch", "valid_ppl", "valid_ppl_q"], rows)


# ------------------------------------------------------------------- front
def pareto_front(points: Sequence[Tuple[float, float]]) -> List[bool]:
    """Which (size, perplexity) points no other point beats: smaller or equal in both, smaller in one."""
    return [not any(s2 <= s and p2 <= p and (s2 < s or p2 < p) for s2, p2 in points) for s, p in points]


@dataclass
class FrontPoint:
    source: str  # "run" or "paper"
    label: str
    run: str
    size_mib: float
    test_ppl: float
    pareto: Optional[bool]  # None for the paper's points


def run_front_points(run_dirs: Sequence[PathLike], size: str = "paper",
                     labels: Optional[List[str]] = None) -> List[FrontPoint]:
    """(size, test PPL) of each run: ``RUN_DIR/test_eval.json`` and the size of its best.pt's packed export."""
    from rescorer.report.model_size import describe_lm_file  # torch: only for this figure

    if size not in SIZE_KINDS:
        raise AdmmqError(f"size must be one of {sorted(SIZE_KINDS)}, got {size!r}")
    runs = read_runs(list(run_dirs), labels)
    points = []
    for run in runs:
        ppl = read_test_ppl(run.path)
        rep = describe_lm_file(run.path)
        points.append(FrontPoint("run", run.label, run.path,
                                 (rep.paper_bytes if size == "paper" else rep.size_bytes) / MIB, ppl, None))
    for p, on in zip(points, pareto_front([(p.size_mib, p.test_ppl) for p in points])):
        p.pareto = on
    return points


def plot_front(run_dirs: Sequence[PathLike], output: PathLike, opts: FigureOptions = FigureOptions(),
               paper: bool = False, size: str = "paper", labels: Optional[List[str]] = None) -> FigureFiles:
    """Test perplexity against model size (log axis) with the runs' Pareto front; ``paper``: Table 1 too.

    CSV: ``source,label,run,size_mib,test_ppl,pareto`` (``source`` run or paper; pareto 1/0, empty for the
    paper's points).
    """
    output_paths(output, opts.svg)
    points = run_front_points(run_dirs, size, labels)
    return draw_front(points, output, opts, paper, size)


def draw_front(points: List[FrontPoint], output: PathLike, opts: FigureOptions, paper: bool = False,
               size: str = "paper") -> FigureFiles:
    """Draw :func:`plot_front`'s figure from ready points (the runs')."""
    fig, (ax,) = _figure(opts)
    for p, color in zip(points, _colors(len(points))):
        ax.plot([p.size_mib], [p.test_ppl], "o", ms=9 if p.pareto else 7, color=color, alpha=1.0 if p.pareto else 0.5,
                mec="black" if p.pareto else color, mew=1.2, ls="none", label=p.label)
        ax.annotate(p.label, (p.size_mib, p.test_ppl), xytext=(6, 4), textcoords="offset points", fontsize="x-small")
    front = sorted((p.size_mib, p.test_ppl) for p in points if p.pareto)
    if front:
        xs, ys = zip(*front)
        ax.step(xs, ys, where="post", color="black", lw=1.2, alpha=0.7, label="Pareto front (runs)")
    rows = [["run", p.label, p.run, p.size_mib, p.test_ppl, int(bool(p.pareto))] for p in points]
    if paper:
        seen = set()
        for pp in PAPER_TABLE1:
            ax.plot([pp.size_mb], [pp.ppl], PAPER_MARKERS[pp.family], ms=8, mfc="none", mec="#555555", mew=1.1,
                    ls="none", label=None if pp.family in seen else f"paper Table 1: {pp.family}")
            seen.add(pp.family)
            rows.append(["paper", pp.label, "", pp.size_mb, pp.ppl, None])
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(SIZE_KINDS[size])
    ax.set_ylabel("test perplexity")
    ax.set_title(opts.title or "Test perplexity against model size (filled, outlined: on the Pareto front)",
                 fontsize="medium")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="x-small", ncols=2 if paper else 1)
    return _write(fig, opts, output, ["source", "label", "run", "size_mib", "test_ppl", "pareto"], rows)


# ------------------------------------------------------------------- sweep
SET_TITLES = {("dev", "dev"): "dev list (the weights were tuned here)",
              ("dev", "test"): "test list (with the dev-tuned weights)",
              ("test", "test"): "test list (swept on its references: optimistic)"}
WIP_STYLES = ["-", "--", ":", "-."]


def _chosen_row(sweeps: RescoreSweeps, table) -> int:
    for i, (a, b) in enumerate(zip(table.lm_scales, table.wips)):
        if math.isclose(a, sweeps.lm_scale, rel_tol=1e-5, abs_tol=1e-9) and \
                math.isclose(b, sweeps.wip, rel_tol=1e-5, abs_tol=1e-9):
            return i
    raise FormatError(f"the chosen weights (LM scale {sweeps.lm_scale:g}, wip {sweeps.wip:g}) in summary.json "
                      f"are not a grid point of this sweep", table.path)


def plot_sweep(rescore_dir: PathLike, output: PathLike, opts: FigureOptions = FigureOptions()) -> FigureFiles:
    """WER against LM scale: one line per subset (and total) and insertion penalty, the chosen point marked;
    one panel per sweep file (the tuning set; with dev tuning also the test list).

    CSV: ``set,subset,wip,lm_scale,errors,wer,chosen`` (chosen 1 at the chosen weights).
    """
    output_paths(output, opts.svg)
    sweeps = read_rescore_dir(rescore_dir)
    fig, axes = _figure(opts, len(sweeps.tables), sharey=True)
    rows = []
    for ax, table in zip(axes, sweeps.tables):
        chosen = _chosen_row(sweeps, table)
        wips = sorted(set(table.wips), key=lambda w: (w != sweeps.wip, w))  # the chosen penalty solid
        names = ["total"] + table.subsets
        for name, color in zip(names, ["black"] + _colors(len(table.subsets))):
            for k, wip in enumerate(wips):
                idx = sorted((i for i, b in enumerate(table.wips) if b == wip), key=lambda i: table.lm_scales[i])
                xs = [table.lm_scales[i] for i in idx]
                ys = [table.wer[name][i] for i in idx]
                ax.plot(xs, ys, WIP_STYLES[k % len(WIP_STYLES)], color=color, lw=2.0 if name == "total" else 1.2,
                        marker="o" if len(xs) < 25 else None, ms=3)
                rows += [[table.set, name, wip, table.lm_scales[i], table.errors[name][i], table.wer[name][i],
                          int(i == chosen)] for i in idx]
            ax.plot([table.lm_scales[chosen]], [table.wer[name][chosen]], "*", ms=14 if name == "total" else 10,
                    color=color, mec="gold", mew=1.0, ls="none")
        ax.set_title(f"{SET_TITLES.get((sweeps.chosen_by, table.set), table.set)}\n★ LM scale {sweeps.lm_scale:g}, "
                     f"wip {sweeps.wip:g}: WER {table.wer['total'][chosen]:.2f}%", fontsize="medium")
        ax.set_xlabel("LM scale (Kaldi LMWT)")
        if ax is axes[0]:
            ax.set_ylabel("WER (%)")
        ax.grid(True, alpha=0.3)
    from matplotlib.lines import Line2D

    last = sweeps.tables[-1]
    handles = [Line2D([], [], color=c, lw=2.0 if n == "total" else 1.2, label=n)
               for n, c in zip(["total"] + last.subsets, ["black"] + _colors(len(last.subsets)))]
    wips = sorted(set(last.wips), key=lambda w: (w != sweeps.wip, w))
    handles += [Line2D([], [], color="gray", ls=WIP_STYLES[k % len(WIP_STYLES)], label=f"wip {w:g}")
                for k, w in enumerate(wips)]
    handles.append(Line2D([], [], marker="*", ms=12, color="black", mec="gold", ls="none", label="chosen"))
    axes[-1].legend(handles=handles, fontsize="small")
    if opts.title:
        fig.suptitle(opts.title)
    return _write(fig, opts, output, ["set", "subset", "wip", "lm_scale", "errors", "wer", "chosen"], rows)
