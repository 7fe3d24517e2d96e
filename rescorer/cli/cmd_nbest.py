"""``admmq nbest convert|split|merge``: n-best list forms, and rescoring jobs."""

from __future__ import annotations

from pathlib import Path

import click

from rescorer.nbest.kaldi_dir import ARCHIVE_FORMATS, convert_nbest
from rescorer.nbest.shards import merge_nbest, split_nbest
from rescorer.cli.group import cli
from rescorer.cli.options import nj_option, quiet_option
from rescorer.cli.renames import OldPositional, new_or_old_form, old_form


def out_option(help: str, dir_only: bool = False):
    """-o/--out of an n-best tool; the command checks that it is given (it also takes the old positional form)."""
    return click.option("-o", "--out", type=click.Path(file_okay=not dir_only), default=None, help=help)


@cli.group("nbest")
def nbest_group() -> None:
    """Kaldi n-best lists: the n-best directory and admmq's single-file form."""


@nbest_group.command("convert")
@click.argument("src", type=click.Path(exists=True))
@click.argument("old_dest", cls=OldPositional, type=click.Path())
@out_option("The n-best list to write (directory or file, see --to).")
@click.option("--to", "to", type=click.Choice(["auto", "file", "dir"]), default="auto", show_default=True,
              help="Form of OUT; auto = the other form than SRC.")
@click.option("--archive", type=click.Choice(ARCHIVE_FORMATS), default="text", show_default=True,
              help="Archives of an OUT directory: text (ark,t), binary (ark) or scp (binary NAME.ark + NAME.scp).")
@click.option("--words-txt", type=click.Path(exists=True, dir_okay=False),
              help="Symbol table: to read 'words' id archives, and to write them into an OUT directory.")
def convert_command(src, old_dest, out, to, archive, words_txt):
    """Convert the n-best list SRC (directory or file) into OUT.

    \b
    admmq nbest convert data/ptb-tts/dev -o dev.nbest.txt
    """
    dest = new_or_old_form("nbest convert", out, old_dest, "-o/--out")
    nb, form = convert_nbest(src, dest, to, archive, words_txt)
    click.echo(f"{Path(src)} -> {Path(dest)} ({form}): {nb.num_utterances} utterances, {len(nb)} hypotheses, "
               f"costs: {' '.join(nb.cost_names()) or 'none'}")


@nbest_group.command("split")
@click.argument("src", type=click.Path(exists=True))
@click.argument("old_out_dir", cls=OldPositional, type=click.Path(file_okay=False))
@out_option("Directory of the parts OUT/1, OUT/2, ...", dir_only=True)
@nj_option("Number of parts (jobs).", required=True)
@click.option("--to", "to", type=click.Choice(["auto", "file", "dir"]), default="auto", show_default=True,
              help="Form of each part; auto = the form of SRC.")
@click.option("--archive", type=click.Choice(ARCHIVE_FORMATS), default="text", show_default=True,
              help="Archives of directory parts.")
@click.option("--words-txt", type=click.Path(exists=True, dir_okay=False), help="Symbol table (id archives).")
def split_command(src, old_out_dir, out, nj, to, archive, words_txt):
    """Split SRC by utterance into parts OUT/1, OUT/2, ... (contiguous blocks, deterministic).

    \b
    admmq nbest split data/ptb-tts/test --nj 4 -o exp/split
    """
    out_dir = new_or_old_form("nbest split", out, old_out_dir, "-o/--out")
    paths = split_nbest(src, out_dir, nj, to, archive, words_txt)
    click.echo(f"{src} -> {len(paths)} parts in {out_dir}")


@nbest_group.command("merge")
@click.argument("srcs", nargs=-1, required=True, type=click.Path())
@out_option("The n-best list to write (directory or file, see --to).")
@click.option("--to", "to", type=click.Choice(["auto", "file", "dir"]), default="auto", show_default=True,
              help="Form of OUT; auto = the form of the first SRC.")
@click.option("--archive", type=click.Choice(ARCHIVE_FORMATS), default="text", show_default=True,
              help="Archives of an OUT directory.")
@click.option("--words-txt", type=click.Path(exists=True, dir_okay=False), help="Symbol table (id archives).")
def merge_command(srcs, out, to, archive, words_txt):
    """Concatenate the n-best lists SRCS (jobs in order, e.g. each job's nbest.txt) into OUT.

    \b
    admmq nbest merge exp/rescore.1/nbest.txt exp/rescore.2/nbest.txt -o exp/rescore/nbest.txt
    """
    if out is None:  # the old form DEST SRC..., taken only for a DEST not there yet (never over a source)
        if len(srcs) < 2 or Path(srcs[0]).exists():
            raise click.UsageError("missing option '-o/--out'")
        old_form("nbest merge", srcs)
        out, srcs = srcs[0], srcs[1:]
    for src in srcs:
        if not Path(src).exists():
            raise click.BadParameter(f"{src!r} does not exist", param_hint="SRCS")
    dest = out
    nb = merge_nbest(srcs, dest, to, archive, words_txt)
    click.echo(f"{len(srcs)} parts -> {dest}: {nb.num_utterances} utterances, {len(nb)} hypotheses")


@nbest_group.command("synth")
@click.option("--text", "text", type=click.Path(exists=True, dir_okay=False), required=True,
              help="PTB-style text (one tokenized sentence per line, e.g. ptb.valid.txt).")
@click.option("-o", "--out", "out", type=click.Path(file_okay=False), required=True,
              help="Kaldi n-best directory to write (replaced whole when it exists).")
@click.option("--voices", default="slt,rms", show_default=True,
              help="flite voices, comma-separated; each is a subset (utt2subset).")
@click.option("--sentences", type=click.IntRange(min=1), default=60, show_default=True,
              help="Sentences to sample from the eligible lines (all of them when fewer).")
@click.option("--seed", type=int, default=20251123, show_default=True,
              help="Sentence selection seed: random.Random(seed).sample(eligible, sentences).")
@click.option("--noise-seed", type=int, default=20251123, show_default=True,
              help="Base of the per-utterance noise seeds.")
@click.option("--letter", default="d", show_default=True,
              help="Set letter in the utterance ids <voice>_<letter><index> (d = dev, t = test).")
@click.option("--snr", "snr_db", type=float, default=24.0, show_default=True, help="Speech-to-noise ratio, dB.")
@click.option("--nbest", type=click.IntRange(min=1), default=100, show_default=True,
              help="Distinct hypotheses per utterance (at most).")
@click.option("--max-raw", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Read at most this many entries of pocketsphinx's n-best iterator.")
@click.option("--min-tokens", type=click.IntRange(min=1), default=6, show_default=True,
              help="Shortest eligible sentence, PTB tokens.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=25, show_default=True,
              help="Longest eligible sentence, PTB tokens.")
@click.option("--limit", type=click.IntRange(min=0), default=0, show_default=True,
              help="Only the first LIMIT selected sentences (0 = all): a quick check of the tools.")
@nj_option("Parallel decoding processes.", default=1, show_default=True)
@click.option("--work-dir", type=click.Path(file_okay=False),
              help="Per-utterance results (a killed run resumes from them). [default: OUT.work]")
@click.option("--keep-audio", is_flag=True, help="Also keep each noisy utterance as WORK_DIR/<uttid>.wav.")
@quiet_option
def synth_command(text, out, voices, sentences, seed, noise_seed, letter, snr_db, nbest, max_raw, min_tokens,
                  max_tokens, limit, nj, work_dir, keep_audio, quiet):
    """Make real n-best lists from TEXT: flite voices, pink noise, pocketsphinx (needs flite and pocketsphinx).

    The defaults with ptb.valid.txt regenerate data/ptb-tts/dev; with ptb.test.txt,
    --sentences 100 --seed 20251124 --letter t, data/ptb-tts/test.
    """
    from rescorer.synth.make import SynthConfig, make_nbest

    names = tuple(v for v in voices.split(",") if v)
    if not names:
        raise click.BadParameter("give at least one voice", param_hint="--voices")
    cfg = SynthConfig(voices=names, sentences=sentences, seed=seed, noise_seed=noise_seed, letter=letter,
                      snr_db=snr_db, nbest=nbest, max_raw=max_raw, min_tokens=min_tokens, max_tokens=max_tokens,
                      jobs=nj, limit=limit)
    s = make_nbest(text, out, cfg, work_dir, keep_audio, quiet)
    click.echo(f"{s.out}: {s.utterances} utterances ({len(names)} voices x {len(s.lines)} sentences), "
               f"{s.hypotheses} hypotheses, {s.reference_words} reference words; decoded {s.decoded} now, "
               f"{s.not_in_lattice} hypotheses not in the lattice and {s.same_after_mapping} duplicates after "
               f"PTB tokenization dropped; {s.seconds:.1f} s")
