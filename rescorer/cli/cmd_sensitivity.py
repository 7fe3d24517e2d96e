"""``admmq sensitivity``: how much each weight matrix of an LM suffers at each bit width."""

from __future__ import annotations

import json

import click

from rescorer.pack.lm_file import load_lm
from rescorer.lm.corpus import load_corpus
from rescorer.errors import AdmmqError
from rescorer.fileio import atomic_open
from rescorer.quant.mixed import DEFAULT_BUDGET_BITS, parse_bits_list
from rescorer.lm.batch_control import pick_device
from rescorer.quant.sensitivity import TRACES, SensitivityConfig, measure_sensitivity
from rescorer.cli.group import cli
from rescorer.cli.options import (batch_tokens_option, budget_bits_option, device_option, json_option, lm_option,
                                  metric_option, probes_option, quiet_option, sensitivity_sentences_option,
                                  text_format_for, text_format_option, widths_option)


@cli.command("sensitivity")
@lm_option("Full-precision LM (checkpoint or run directory).")
@click.option("--valid", "valid_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Validation text the sensitivity is measured on.")
@text_format_option
@metric_option()
@widths_option
@click.option("--tying", type=click.Choice(["layer", "node"]), default="layer", show_default=True,
              help="One α per matrix (layer) or per output row (node).")
@click.option("--trace", "trace", type=click.Choice(TRACES), default="gauss-newton", show_default=True,
              help="hessian: gauss-newton = trace of the Gauss-Newton (Fisher) matrix by labels sampled from "
                   "the LM, never negative; hutchinson = trace of the Hessian by Rademacher probes (refused "
                   "when not significantly positive).")
@probes_option
@click.option("--max-probes", type=click.IntRange(min=2), default=256, show_default=True,
              help="hessian: most trace samples.")
@sensitivity_sentences_option
@batch_tokens_option
@device_option
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the trace samples / nas batches.")
@budget_bits_option
@click.option("--steps", type=click.IntRange(min=1), default=200, show_default=True,
              help="nas: search steps (one validation batch each).")
@click.option("-o", "--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the table as JSON here (input to admmq train --allocation auto --metric FILE).")
@json_option
@quiet_option
def sensitivity_command(lm_path, valid_path, text_format, metric, widths, tying, trace, probes, max_probes,
                        sensitivity_sentences, batch_tokens, device, seed, budget_bits, steps, out_path, as_json,
                        quiet):
    """Sensitivity of each weight matrix of LM to quantization at each width.

    \b
    admmq sensitivity --lm exp/std --valid ptb.valid.txt --metric kl
    admmq sensitivity --lm exp/std --valid ptb.valid.txt --metric hessian --probes 32 -o sens.json
    admmq sensitivity --lm exp/std --valid ptb.valid.txt --metric nas --budget-bits 2 --steps 200
    """
    lm = load_lm(lm_path, str(pick_device(device)))
    if lm.quantized:
        raise AdmmqError("sensitivity needs a full-precision LM; this one is quantized", lm_path)
    cfg = SensitivityConfig(metric=metric, bits=parse_bits_list(widths), tying=tying, probes=probes,
                            trace=trace, max_probes=max(max_probes, probes),
                            batch_tokens=batch_tokens, max_sentences=sensitivity_sentences, seed=seed,
                            budget_bits=DEFAULT_BUDGET_BITS if budget_bits is None else budget_bits, steps=steps)
    fmt = text_format_for(valid_path, text_format, lambda w: not lm.units.is_oov(w))
    table = measure_sensitivity(lm.model, load_corpus(lm.units, valid_path, fmt), lm.units, cfg,
                                quiet=quiet)
    if out_path:
        with atomic_open(out_path) as f:
            json.dump(table.to_dict(), f, indent=1, sort_keys=True)
    click.echo(json.dumps(table.to_dict(), sort_keys=True) if as_json else table.text())
