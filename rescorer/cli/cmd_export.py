"""``admmq export``: a quantized checkpoint as a packed low-bit file."""

from __future__ import annotations

import json

import click

from rescorer.pack.bitpack import BITS_CHOICES, parse_bits
from rescorer.report.model_size import describe_lm_file
from rescorer.pack.lm_file import export_packed
from rescorer.progress import say
from rescorer.cli.group import cli
from rescorer.cli.options import json_option, lm_option, quiet_option
from rescorer.cli.renames import OldPositional, new_or_old_form


@cli.command("export")
@lm_option("Quantized LM to pack: a training checkpoint (best.pt/last.pt), a run directory (its best.pt) or a "
           "packed file (re-packed).", required=False)
@click.argument("checkpoint", cls=OldPositional, type=click.Path(exists=True))
@click.option("--bits", default="auto", show_default=True, metavar="|".join(BITS_CHOICES),
              help="Bits per weight code: 1-8 (bit-packed), 1.6 (5 ternary codes per byte, base 3), "
                   "2.67 (3 codes of up to six levels per byte, base 6), or auto (the smallest that fits, "
                   "per matrix). Codes that do not fit are an error naming the matrix.")
@click.option("--alpha-dtype", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="Precision of the alpha (scale) tables; fp16 halves them but changes the model slightly.")
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False, writable=True),
              help="Packed file to write (atomically).")
@json_option
@quiet_option
def export_command(lm_path, checkpoint, bits, alpha_dtype, out, as_json, quiet):
    """Pack the quantized matrices of the LM into OUT (codes bit-packed; alpha, biases fp32).

    Matrices the method did not quantize are stored in full precision. OUT
    loads everywhere an LM is taken (admmq eval --lm, rescoring,
    rescorer.pack.lm_file.load_lm) without running pickled code;
    `admmq info --lm OUT` shows its sizes.

    \b
    admmq export --lm exp/admm -o exp/admm/model.admmq
    """
    checkpoint = new_or_old_form("export", lm_path, checkpoint, "--lm")
    request = parse_bits(bits)
    say(f"packing {checkpoint} at --bits {bits} (alpha {alpha_dtype})", quiet)
    export_packed(checkpoint, out, request, alpha_dtype)
    report = describe_lm_file(out)
    if as_json:
        click.echo(json.dumps(report.to_dict(), sort_keys=True))
    elif not quiet:
        click.echo(report.text())
    else:
        click.echo(f"{out}: {report.size_bytes:,} bytes, compression {report.compression_ratio:.2f}x")
