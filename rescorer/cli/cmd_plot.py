"""``admmq plot curves|front|sweep``: figures from run directories and rescoring outputs (admmq[plot])."""

from __future__ import annotations

import click

from rescorer.report.plots import SIZE_KINDS, FigureOptions, plot_curves, plot_front, plot_sweep
from rescorer.cli.group import cli


def figure_options(f):
    """-o/--out, --width, --height, --dpi, --svg, --title."""
    decorators = [
        click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
                     help="PNG to write; the CSV of the drawn points goes beside it (FILE.csv)."),
        click.option("--width", type=click.IntRange(min=100), default=1200, help="PNG width in pixels."),
        click.option("--height", type=click.IntRange(min=100), default=800, help="PNG height in pixels."),
        click.option("--dpi", type=click.IntRange(min=10), default=150, help="Resolution (sets the text size)."),
        click.option("--svg", is_flag=True, help="Also write FILE.svg beside the PNG."),
        click.option("--title", default=None, help="Figure title [default: says what is drawn]."),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def _opts(width, height, dpi, svg, title) -> FigureOptions:
    return FigureOptions(width=width, height=height, dpi=dpi, svg=svg, title=title)


def _report(files) -> None:
    click.echo(f"wrote {files.png} ({files.points} points in {files.csv})" + (f" and {files.svg}" if files.svg else ""))


label_option = click.option("--label", "labels", multiple=True,
                            help="Legend label of each run, in order (repeat once per run) [default: from the "
                                 "run's method settings in train.log].")
run_dirs_argument = click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))


@cli.group("plot")
def plot_group() -> None:
    """Figures from what runs wrote (needs matplotlib: pip install 'admmq[plot]').

    Each writes -o FILE.png, FILE.csv with the points drawn, and FILE.svg with --svg.
    """


@plot_group.command("curves")
@run_dirs_argument
@label_option
@click.option("--y-scale", type=click.Choice(["log", "linear"]), default="log", help="Perplexity axis.")
@figure_options
def curves_command(run_dirs, labels, y_scale, out, width, height, dpi, svg, title):
    """Validation perplexity against epoch for the training runs RUN_DIRS (their train_log.jsonl).

    Quantized model solid, full-precision weights dashed, the best epoch starred.

    \b
    admmq plot curves exp/std exp/binlin exp/admm_layer_pm1 -o curves.png
    """
    _report(plot_curves(run_dirs, out, _opts(width, height, dpi, svg, title), list(labels) or None, y_scale))


@plot_group.command("front")
@run_dirs_argument
@label_option
@click.option("--paper", is_flag=True, help="Add the paper's Table 1 (PTB) points as hollow markers.")
@click.option("--size", type=click.Choice(sorted(SIZE_KINDS)), default="paper",
              help="paper: weight matrices at their stored width (Table 1's count); file: the whole packed file "
                   "admmq export --bits auto writes.")
@figure_options
def front_command(run_dirs, labels, paper, size, out, width, height, dpi, svg, title):
    """Test perplexity against model size (MiB, log axis) for RUN_DIRS, the Pareto front marked.

    Test perplexity: RUN_DIR/test_eval.json, written by
    'admmq eval --lm RUN_DIR --text TEST --json > RUN_DIR/test_eval.json'.
    Size: of RUN_DIR/best.pt's packed export (see 'admmq info').

    \b
    admmq plot front exp/* --paper -o front.png
    """
    _report(plot_front(run_dirs, out, _opts(width, height, dpi, svg, title), paper, size, list(labels) or None))


@plot_group.command("sweep")
@click.argument("rescore_dir", type=click.Path(exists=True, file_okay=False))
@figure_options
def sweep_command(rescore_dir, out, width, height, dpi, svg, title):
    """WER against LM scale from an 'admmq rescore -o RESCORE_DIR' run (sweep.tsv, summary.json).

    One line per WER subset and word insertion penalty, the chosen weights
    starred; with dev tuning a second panel shows the same grid on the test list
    (sweep.test.tsv).

    \b
    admmq plot sweep exp/rescore -o sweep.png
    """
    _report(plot_sweep(rescore_dir, out, _opts(width, height, dpi, svg, title)))
