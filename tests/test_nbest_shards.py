"""Rescoring jobs: `admmq rescore --job K/N`, `admmq nbest split|merge`, `admmq wer` over several outputs.

The real ptb-tts n-best lists (first 10 test utterances) rescored with a real
back-off 3-gram of PTB train text: the jobs' merged outputs equal the unsplit run's.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rescorer.cli.group import cli
from rescorer.errors import AdmmqError
from rescorer.nbest.kaldi_dir import read_nbest
from rescorer.nbest.shards import concat_nbest, parse_shard, shard_nbest, shard_range
from tests.conftest import ptb_lines
from tests.ngram_fixtures import backoff_arpa, write
from tests.test_rescore import ptb_tts_slice


@pytest.fixture()
def job_set(tmp_path):
    d, text = ptb_tts_slice(tmp_path, "test", lines=1000)
    sents = [line.split() for line in ptb_lines("train", 3000)]
    arpa = write(tmp_path / "lm3.arpa", backoff_arpa(sents, order=3))
    return d, text, arpa


def run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r.output


def test_shard_ranges_are_contiguous_and_cover_every_utterance():
    for u in (0, 1, 7, 10, 101):
        for n in (1, 3, 4, 11):
            blocks = [shard_range(u, k, n) for k in range(1, n + 1)]
            assert blocks[0][0] == 0 and blocks[-1][1] == u
            assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:])), blocks
            sizes = [b - a for a, b in blocks]
            assert max(sizes) - min(sizes) <= 1, sizes
    assert parse_shard("2/5") == (2, 5)
    for bad in ("0/3", "4/3", "x", "1/0", ""):
        with pytest.raises(AdmmqError, match="K/N"):
            parse_shard(bad)


def test_merged_jobs_equal_the_unsplit_run_exactly(job_set, tmp_path):
    d, text, arpa = job_set
    common = ["--ngram", arpa, "--lm-scale", "7.5", "--wip", "0.5", "--ref", text, "--quiet"]
    whole = tmp_path / "whole"
    run("rescore", d, "-o", whole, *common)
    # jobs straight from the whole list (--job) and from split directories (nbest split)
    run("nbest", "split", d, "--nj", "3", "-o", tmp_path / "split3")
    assert sum(read_nbest(tmp_path / "split3" / str(k)).num_utterances for k in (1, 2, 3)) == 10
    for k in (1, 2, 3):
        run("rescore", d, "-o", tmp_path / f"job{k}", "--job", f"{k}/3", *common)
        run("rescore", tmp_path / "split3" / str(k), "-o", tmp_path / f"split_job{k}", *common)
    jobs = [tmp_path / f"job{k}" for k in (1, 2, 3)]
    for k, job in enumerate(jobs, 1):
        assert (job / "nbest.txt").read_text() == (tmp_path / f"split_job{k}" / "nbest.txt").read_text()
    one = json.loads(run("wer", text, whole / "text", "--json"))
    merged = json.loads(run("wer", text, *[j / "text" for j in jobs], "--json"))
    assert merged == one and one["total"]["errors"] > 0
    # the jobs' best hypotheses, concatenated in job order, are the unsplit run's file
    assert "".join((j / "text").read_text() for j in jobs) == (whole / "text").read_text()
    run("nbest", "merge", *[j / "nbest.txt" for j in jobs], "-o", tmp_path / "merged.txt")
    assert (tmp_path / "merged.txt").read_text() == (whole / "nbest.txt").read_text()
    lmwt = "".join((j / "lmwt.new").read_text() for j in jobs)
    assert lmwt == (whole / "lmwt.new").read_text()
    per_job = [json.loads((j / "summary.json").read_text())["wer"]["rescored"]["total"]["errors"] for j in jobs]
    assert sum(per_job) == one["total"]["errors"]


def test_job_errors(job_set, tmp_path):
    d, text, arpa = job_set
    r = CliRunner().invoke(cli, ["rescore", str(d), "--ngram", str(arpa), "--ref", str(text), "-o",
                                 str(tmp_path / "o"), "--job", "1/2", "--quiet"])
    assert r.exit_code == 1 and "same weights" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["rescore", str(d), "--ngram", str(arpa), "--lm-scale", "5", "--wip", "0",
                                 "-o", str(tmp_path / "o"), "--job", "1/11", "--quiet"])
    assert r.exit_code == 1 and "holds no utterance" in r.output
    nb = read_nbest(d)
    with pytest.raises(AdmmqError, match="in both"):
        concat_nbest([shard_nbest(nb, 1, 2), shard_nbest(nb, 1, 2)])
    (tmp_path / "a").write_text("u1 a b\n")
    (tmp_path / "b").write_text("u1 a c\n")
    (tmp_path / "ref").write_text("u1 a b\n")
    r = CliRunner().invoke(cli, ["wer", str(tmp_path / "ref"), str(tmp_path / "a"), str(tmp_path / "b")])
    assert r.exit_code == 1 and "in both" in r.output
