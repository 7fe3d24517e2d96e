"""The commands shown in README.md and docs/ run as written, on tiny fixtures.

Every ``sh`` code block of the documentation carries a marker on the line before it:

* ``<!-- runnable -->``: every line is an ``admmq`` command (a trailing ``# comment`` and one
  ``> FILE`` redirection of its output allowed); the test runs them through click's CliRunner, in
  document order, in one working directory that holds the files the documentation names
  (:func:`doc_workdir`: slices of the real PTB text, Kaldi ``text`` files and ``words.txt``, real
  ptb-tts n-best lists, a back-off 4-gram, a PyTorch ``RNNModel`` state dict to import);
* ``<!-- not run: REASON -->``: a command that needs what a test cannot have (Kaldi, a GPU, the whole
  recipe, a benchmark); the reason says where it is tested instead, when it is.

The documents run in :data:`DOCS` order, each using what the earlier ones made (``exp/std`` from
training.md, ``exp/nbest_dir`` from formats.md, ...), so a reader following the documentation in that
order could type them too. Syntax summaries with ``[optional]`` parts go in ``text`` blocks, not ``sh``.
"""

from __future__ import annotations

import gzip
import re
import shlex
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch
from click.testing import CliRunner

from rescorer.cli import cli
from tests.conftest import NBEST_DIR, ptb_lines
from tests.ngram_fixtures import backoff_arpa
from tests.test_import_rnnmodel import RNNModel, dictionary

ROOT = Path(__file__).resolve().parents[1]
# the order a reader would follow; each document may use what the ones before it made
DOCS = ["README.md", "docs/training.md", "docs/formats.md", "docs/ngram-lms.md", "docs/rescoring.md",
        "docs/scoring.md", "docs/mixed-precision.md", "docs/logs-and-figures.md", "docs/kaldi.md"]
MARKER = re.compile(r"<!--\s*(runnable|not run:\s*\S.*?)\s*-->")


def documents() -> List[Path]:
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def sh_blocks(path: Path) -> List[Tuple[int, str, List[str]]]:
    """(line number, marker or '', lines) of every ```sh block of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            j = i + 1
            while lines[j].strip() != "```":
                j += 1
            m = MARKER.search(lines[i - 1]) if i else None
            out.append((i + 1, m.group(1) if m else "", lines[i + 1:j]))
            i = j
        i += 1
    return out


def commands(block: List[str]) -> List[str]:
    """The block's commands: continuation lines joined, blank lines dropped."""
    text = "\n".join(block).replace("\\\n", " ")
    return [c.strip() for c in text.splitlines() if c.strip()]


def parse(command: str) -> Tuple[List[str], str]:
    """``admmq ARGS [> FILE] [# comment]`` -> (ARGS, FILE or '')."""
    words = shlex.split(command, comments=True)
    assert words and words[0] == "admmq", f"not an admmq command: {command!r}"
    out = ""
    if ">" in words:
        k = words.index(">")
        assert k == len(words) - 2, f"only one '> FILE' at the end is supported: {command!r}"
        out = words[k + 1]
        words = words[:k]
    return words[1:], out


def test_every_sh_block_is_marked_and_runnable_blocks_hold_admmq_commands():
    unmarked, bad = [], []
    runnable_docs = set()
    for doc in documents():
        for line, marker, block in sh_blocks(doc):
            name = f"{doc.relative_to(ROOT)}:{line}"
            if not marker:
                unmarked.append(name)
            elif marker == "runnable":
                runnable_docs.add(str(doc.relative_to(ROOT)))
                for c in commands(block):
                    try:
                        parse(c)
                    except AssertionError as exc:
                        bad.append(f"{name}: {exc}")
    assert not unmarked, "```sh blocks without <!-- runnable --> or <!-- not run: REASON -->: " + ", ".join(unmarked)
    assert not bad, "\n".join(bad)
    assert runnable_docs == set(DOCS), f"documents with runnable blocks must be in DOCS: {sorted(runnable_docs)}"


def test_the_block_reader_sees_markers_and_rejects_other_commands(tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text("<!-- runnable -->\n```sh\nadmmq eval --lm a \\\n  --text b  # c\nadmmq info --lm x > y.json\n```\n\n"
                   "<!-- not run: needs Kaldi -->\n```sh\nlattice-to-nbest\n```\n```sh\nadmmq wer a b\n```\n")
    blocks = sh_blocks(doc)
    assert [(b[0], b[1]) for b in blocks] == [(2, "runnable"), (9, "not run: needs Kaldi"), (12, "")]
    assert [parse(c) for c in commands(blocks[0][2])] == [(["eval", "--lm", "a", "--text", "b"], ""),
                                                          (["info", "--lm", "x"], "y.json")]
    with pytest.raises(AssertionError, match="not an admmq command"):
        parse("lattice-to-nbest ark:- ark:-")


# ---------------------------------------------------------------- the files the documentation names

def _kaldi_text(path: Path, utts: Dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{u} {w}\n" for u, w in utts.items()), encoding="utf-8")


def _nbest_subset(split: str, per_voice: int, hyps: int, out: Path, refs: Path, utt2subset: Path) -> None:
    """The first ``per_voice`` utterances of each voice of ptb-tts ``split``, ``hyps`` best each, as a
    single n-best file, with their references and subsets."""
    def read(name):
        with gzip.open(NBEST_DIR / split / f"{name}.gz", "rt", encoding="utf-8") as fh:
            return [ln.rstrip("\n") for ln in fh if ln.strip()]

    subsets = dict(ln.split() for ln in read("utt2subset"))
    keep = [u for voice in sorted(set(subsets.values())) for u in [u for u in subsets if subsets[u] == voice][:per_voice]]
    costs = {name: dict(ln.split(None, 1) for ln in read(name)) for name in ("acwt", "lmwt.nolm", "lmwt.withlm")}
    words = dict((ln.split(None, 1) + [""])[:2] for ln in read("words_text"))
    lines = ["# admmq-nbest costs: acwt lmwt.nolm lmwt.withlm"]
    for u in keep:
        for n in range(1, hyps + 1):
            k = f"{u}-{n}"
            if k in words:
                lines.append(" ".join([k] + [costs[c][k].strip() for c in ("acwt", "lmwt.nolm", "lmwt.withlm")]
                                      + ([words[k].strip()] if words[k].strip() else [])))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    texts = dict((ln.split(None, 1) + [""])[:2] for ln in read("text"))
    _kaldi_text(refs, {u: texts[u] for u in keep})
    utt2subset.write_text("".join(f"{u} {subsets[u]}\n" for u in keep), encoding="utf-8")


@pytest.fixture(scope="module")
def doc_workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("docs")
    train, valid, test = ptb_lines("train", 30), ptb_lines("valid", 10), ptb_lines("test", 10)
    for name, lines in (("train", train), ("valid", valid), ("test", test)):
        (d / f"ptb.{name}.txt").write_text("".join(lines), encoding="utf-8")
    # Kaldi data: training text, dev/test references of the n-best lists, the decoder's words.txt
    _kaldi_text(d / "data/train/text", {f"train_{i:04d}": s.strip() for i, s in enumerate(train)})
    _nbest_subset("dev", 3, 10, d / "dev_nbest.txt", d / "data/dev/text", d / "data/dev/utt2subset")
    _nbest_subset("test", 3, 10, d / "nbest.txt", d / "data/test/text", d / "data/test/utt2subset")
    words = sorted({w for f in ("data/train/text", "data/dev/text") for ln in (d / f).read_text().splitlines()
                    for w in ln.split()[1:]} - {"<unk>"})
    (d / "data/lang").mkdir(parents=True)
    (d / "data/lang/words.txt").write_text("".join(f"{w} {i}\n" for i, w in enumerate(
        ["<eps>", "<unk>"] + words + ["#0", "<s>", "</s>"])), encoding="utf-8")
    (d / "4gram.arpa").write_text(backoff_arpa([s.split() for s in train + valid], 4), encoding="utf-8")
    # a PyTorch word_language_model RNNModel to import: its state dict and its vocabulary (idx2word)
    idx2word, _ = dictionary(train + valid + test, lambda ws: ws + ["<eos>"])
    torch.manual_seed(0)
    torch.save(RNNModel(len(idx2word), 16, 16, 1).state_dict(), d / "model_state.pt")
    (d / "vocab.txt").write_text("".join(w + "\n" for w in idx2word), encoding="utf-8")
    return d


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS)
def test_the_documented_commands_run_as_written(doc, doc_workdir, monkeypatch, one_torch_thread):
    monkeypatch.chdir(doc_workdir)
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2: keep stderr out of what '> FILE' writes
    except TypeError:
        runner = CliRunner()
    ran = 0
    for line, marker, block in sh_blocks(ROOT / doc):
        if marker != "runnable":
            continue
        for command in commands(block):
            args, out = parse(command)
            res = runner.invoke(cli, args)
            assert res.exit_code == 0, f"{doc}:{line}: `{command}` exited {res.exit_code}:\n{res.output}" + (
                f"\n{res.exc_info}" if res.exception and not isinstance(res.exception, SystemExit) else "")
            if out:
                (doc_workdir / out).write_text(res.stdout, encoding="utf-8")
            ran += 1
    assert ran >= 1

