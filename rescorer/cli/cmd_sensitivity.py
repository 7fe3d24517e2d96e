"""``admmq sensitivity``: how much each weight matrix of an LM suffers at each bit width."""

from __future__ import annotations

import json

import click

from ..checkpoint import load_lm
from ..corpus import load_corpus
from ..errors import AdmmqError
from ..fileio import atomic_open
from ..quant.mixed import parse_bits_list
from ..quant.sensitivity import METRICS, TRACES, SensitivityConfig, measure_sensitivity
from . import cli
from .options import json_option, quiet_option, text_format_for, text_format_option


@cli.command("sensitivity")
@click.option("--lm", "lm_path", required=True, type=click.Path(exists=True),
              help="Full-precision LM (checkpoint or run directory).")
@click.option("--text", "text_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Validation text the sensitivity is measured on.")
@text_format_option
@click.option("--method", "metric", type=click.Choice(METRICS), default="kl", show_default=True,
              help="kl: mean KL(p_fp || p_q) per token with one matrix quantized; hessian: "
                   "Tr(C)/n * ||Q_b(W) - W||^2, C the curvature of --trace; nas: -ln pi of a "
                   "differentiable search over the tables under a size penalty (lower = preferred).")
@click.option("--bits", "bits_spec", default="1,2,3,4,8", show_default=True,
              help="Widths to measure (tables: 1 pm1, 2 pm12, 3 pm124, 4 int:4, 8 int:8) and/or tables by "
                   "name (0pm1, pow2:1, int:3, ...).")
@click.option("--tying", type=click.Choice(["layer", "node"]), default="layer", show_default=True,
              help="One α per matrix (layer) or per output row (node).")
@click.option("--trace", "trace", type=click.Choice(TRACES), default="gauss-newton", show_default=True,
              help="hessian: gauss-newton = trace of the Gauss-Newton (Fisher) matrix by labels sampled from "
                   "the LM, never negative; hutchinson = trace of the Hessian by Rademacher probes (refused "
                   "when not significantly positive).")
@click.option("--probes", type=click.IntRange(min=2), default=32, show_default=True,
              help="hessian: least trace samples; more are drawn, up to --max-probes, until every standard "
                   "error is at most 10% of its trace.")
@click.option("--max-probes", type=click.IntRange(min=2), default=256, show_default=True,
              help="hessian: most trace samples.")
@click.option("--max-sentences", type=click.IntRange(min=0), default=0, show_default=True,
              help="Use the first N sentences of --text only (0 = all).")
@click.option("--batch-tokens", type=click.IntRange(min=16), default=4096, show_default=True,
              help="Padded tokens per batch.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the trace samples / nas batches.")
@click.option("--budget-bits", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True,
              help="nas: the stored bits per weight the search aims at.")
@click.option("--steps", type=click.IntRange(min=1), default=200, show_default=True,
              help="nas: search steps (one validation batch each).")
@click.option("-o", "--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the table as JSON here (input to admmq train --precision auto --sensitivity FILE).")
@json_option
@quiet_option
def sensitivity_command(lm_path, text_path, text_format, metric, bits_spec, tying, trace, probes, max_probes,
                        max_sentences, batch_tokens, seed, budget_bits, steps, out_path, as_json, quiet):
    """Sensitivity of each weight matrix of LM to quantization at each width.

    \b
    admmq sensitivity --lm exp/std --text ptb.valid.txt --method kl
    admmq sensitivity --lm exp/std --text ptb.valid.txt --method hessian --probes 32 -o sens.json
    admmq sensitivity --lm exp/std --text ptb.valid.txt --method nas --budget-bits 2 --steps 200
    """
    lm = load_lm(lm_path)
    if lm.quantized:
        raise AdmmqError("sensitivity needs a full-precision LM; this one is quantized", lm_path)
    cfg = SensitivityConfig(metric=metric, bits=parse_bits_list(bits_spec), tying=tying, probes=probes,
                            trace=trace, max_probes=max(max_probes, probes),
                            batch_tokens=batch_tokens, max_sentences=max_sentences, seed=seed,
                            budget_bits=budget_bits, steps=steps)
    fmt = text_format_for(text_path, text_format, lambda w: not lm.units.is_oov(w))
    table = measure_sensitivity(lm.model, load_corpus(lm.units, text_path, fmt), lm.units, cfg,
                                quiet=quiet)
    if out_path:
        with atomic_open(out_path) as f:
            json.dump(table.to_dict(), f, indent=1, sort_keys=True)
    click.echo(json.dumps(table.to_dict(), sort_keys=True) if as_json else table.text())
