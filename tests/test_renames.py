"""Old spellings of renamed options and arguments (rescorer/cli/renames.py): each still works, with
one deprecation line on stderr, and the README's changelog lists every one."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from rescorer.cli import cli
from rescorer.cli.renames import DROPPED, OLD_FORMS, RENAMED, rewrite
from rescorer.pack.checkpoint import read_checkpoint
from tests.packed_models import make_quantized_checkpoint
from tests.test_import_rnnmodel import example_model  # noqa: F401 (a fixture)
from tests.test_rescore import ptb_tts_slice

README = Path(__file__).resolve().parent.parent / "README.md"


def command(path: str):
    """(command, its parent context) of ``admmq <path>``."""
    ctx = click.Context(cli, info_name="admmq")
    cmd = cli
    for name in path.split():
        cmd = cmd.get_command(ctx, name)
        ctx = click.Context(cmd, info_name=name, parent=ctx)
    return cmd, ctx.parent


def value_for(param: click.Parameter, tmp: Path) -> str:
    """A value the parameter accepts: an existing file or directory for a path, a choice, a number."""
    t = param.type
    if isinstance(t, click.Path):
        return str(tmp / "dir") if not t.file_okay else str(tmp / "file")
    if isinstance(t, click.Choice):
        return str(t.choices[0])
    if isinstance(t, (click.IntRange, click.FloatRange)):
        return str(max(t.min or 0, 1) if t.max is None else t.max)
    if param.name in ("widths", "metric"):
        return {"widths": "1,2", "metric": "hessian"}[param.name]
    return "2" if t.name in ("integer", "float") else "1,1"


@pytest.mark.parametrize("path,old", [(p, o) for p, renames in RENAMED.items() for o in renames])
def test_an_old_spelling_sets_what_the_new_one_sets_and_says_so_once(path, old, tmp_path, capsys):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("1\n")
    new = RENAMED[path][old]
    cmd, parent = command(path)
    target = next(p for p in cmd.params if new in getattr(p, "opts", ()))
    assert old not in [o for p in cmd.params if not getattr(p, "hidden", False) for o in p.opts], (path, old)
    required = []
    for p in cmd.params:
        if p.required and p is not target and not getattr(p, "hidden", False):
            required += ([p.opts[0]] if isinstance(p, click.Option) else []) + [value_for(p, tmp_path)]
    value = [] if target.is_flag else [value_for(target, tmp_path)]

    def params(args):
        with cmd.make_context(path.split()[-1], list(args), parent=parent) as ctx:
            return ctx.params

    want = params([new, *value, *required])
    assert capsys.readouterr().err == ""
    assert params([old, *value, old, *value, *required]) == want  # given twice: said once
    assert capsys.readouterr().err == f"admmq: {old} is deprecated, use {new}\n"
    if value and old.startswith("--"):
        assert params([f"{old}={value[0]}", *required]) == want
    elif value:
        assert params([f"{old}{value[0]}", *required]) == want  # -j4


def test_rewrite_leaves_values_and_what_follows_double_dash_alone(capsys):
    takes = {"--title": True, "--nj": True, "--quiet": False}
    args = ["--title", "--parts", "-n", "3", "--quiet", "--", "--parts"]
    assert rewrite(args, {"--parts": "--nj", "-n": "--nj"}, takes) == ["--title", "--parts", "--nj", "3", "--quiet",
                                                                        "--", "--parts"]
    assert capsys.readouterr().err == "admmq: -n is deprecated, use --nj\n"


def run(*args):
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        runner = CliRunner()  # click >= 8.2 keeps stderr apart
    return runner.invoke(cli, [str(a) for a in args])


def test_old_positional_forms_work_and_say_the_new_form(tmp_path):
    ckpt = tmp_path / "c.pt"
    make_quantized_checkpoint(ckpt, ["a", "b", "c", "</s>", "<unk>"], "ternary", "node", dim=8)
    new, old = run("info", "--lm", ckpt, "--json"), run("info", ckpt, "--json")
    assert new.exit_code == old.exit_code == 0, old.output
    assert old.stdout == new.stdout
    assert old.stderr == "admmq: 'admmq info LM_FILE' is deprecated, use 'admmq info --lm LM_FILE'\n"
    old = run("export", ckpt, "-o", tmp_path / "old.admmq", "--quiet")
    new = run("export", "--lm", ckpt, "-o", tmp_path / "new.admmq", "--quiet")
    assert old.exit_code == new.exit_code == 0, old.output
    assert (tmp_path / "old.admmq").read_bytes() == (tmp_path / "new.admmq").read_bytes()
    assert old.stderr.count("deprecated") == 1
    r = run("info", ckpt, "--lm", ckpt)
    assert r.exit_code == 2 and "give it once, as --lm" in r.output

    d, _ = ptb_tts_slice(tmp_path, "test", lines=300)
    assert run("nbest", "convert", d, tmp_path / "old.txt").exit_code == 0
    assert run("nbest", "convert", d, "-o", tmp_path / "new.txt").exit_code == 0
    assert (tmp_path / "old.txt").read_bytes() == (tmp_path / "new.txt").read_bytes()
    r = run("nbest", "split", tmp_path / "new.txt", tmp_path / "parts", "-n", "2")
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == ["admmq: -n is deprecated, use --nj", "admmq: 'admmq nbest split SRC OUT_DIR' "
                                     "is deprecated, use 'admmq nbest split SRC -o OUT_DIR'"]
    parts = [tmp_path / "parts" / str(k) for k in (1, 2)]
    r = run("nbest", "merge", tmp_path / "merged.txt", *parts, "--to", "file")
    assert r.exit_code == 0, r.output
    assert "'admmq nbest merge DEST SRC...' is deprecated" in r.stderr
    assert (tmp_path / "merged.txt").read_bytes() == (tmp_path / "new.txt").read_bytes()
    # the new form without -o is not taken for the old one: the first source is never overwritten
    r = run("nbest", "merge", tmp_path / "merged.txt", *parts)
    assert r.exit_code == 2 and "missing option '-o/--out'" in r.output
    assert (tmp_path / "merged.txt").read_bytes() == (tmp_path / "new.txt").read_bytes()


def test_a_dropped_option_still_works_with_its_line(example_model, tmp_path):
    _model, _word2idx, d = example_model
    r = run("import", d / "model.pt", "--vocab", d / "vocab.txt", "-o", tmp_path / "x.pt", "--dropout", "0.2", "-q")
    assert r.exit_code == 0, r.output
    assert r.stderr == "admmq: --dropout is deprecated, use admmq train --dropout (with --init-from)\n"
    assert read_checkpoint(tmp_path / "x.pt")["model_config"]["dropout"] == 0.2


def test_the_readme_changelog_lists_every_rename():
    text = README.read_text()
    log = text[text.index("## Changelog"):]
    rows = [ln for ln in log.splitlines() if ln.startswith("|")]
    missing = []
    for path, renames in RENAMED.items():
        for old, new in renames.items():
            if not any(f"`{old}`" in r and f"`{new}`" in r and path.split()[-1] in r for r in rows):
                missing.append(f"{path} {old} -> {new}")
    for path, (old, new) in OLD_FORMS.items():
        if not any(f"`{old[len('admmq '):]}`" in r and f"`{new[len('admmq '):]}`" in r for r in rows):
            missing.append(f"{old} -> {new}")
    for path, dropped in DROPPED.items():
        for old in dropped:
            if not any(f"`{old}`" in r and path in r for r in rows):
                missing.append(f"{path} {old} (dropped)")
    assert not missing, "README changelog lacks: " + "; ".join(missing)
    assert not re.search(r"\bissue\b", log)
