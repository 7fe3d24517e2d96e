"""docs/commands.md is generated from the click definitions, and fails here when the two drift apart."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

import click

from rescorer.cli import cli
from rescorer.cli.reference import render_reference, walk

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "commands.md"
REGENERATE = "python -m rescorer.cli.reference > docs/commands.md"


def drift(doc_text: str, group: click.Group = cli) -> str:
    """'' when ``doc_text`` is the reference of ``group``, else the start of a unified diff."""
    want = render_reference(group)
    if doc_text == want:
        return ""
    diff = difflib.unified_diff(doc_text.splitlines(), want.splitlines(), "docs/commands.md", "click", lineterm="", n=0)
    return "\n".join(list(diff)[:40])


def test_docs_commands_md_is_the_reference_of_the_commands():
    d = drift(DOC.read_text(encoding="utf-8"))
    assert not d, f"docs/commands.md is out of date; regenerate it with `{REGENERATE}`:\n{d}"


def test_every_command_and_visible_option_is_in_the_reference():
    text = render_reference()
    commands = list(walk(cli))
    names = {" ".join(p) for p, _ in commands}
    assert {"train", "rescore", "nbest convert", "nbest synth", "plot sweep", "report"} <= names
    assert len(commands) >= 19
    for path, cmd in commands:
        assert f"`admmq {' '.join(path)}`" in text
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                assert any(f"`{o}" in text or f", {o}" in text for o in p.opts), (path, p.opts)


def _with_changed_option(group: click.Group, command: str, option: click.Option, hide: str = "") -> click.Group:
    """A copy of ``group`` whose ``command`` has ``option`` added (and the parameter ``hide`` hidden)."""
    ctx = click.Context(group, info_name="admmq")
    cmds = {n: group.get_command(ctx, n) for n in group.list_commands(ctx)}
    old = cmds[command]
    params = []
    for p in old.params:
        if p.name == hide:
            p = click.Option(p.opts, hidden=True, help=p.help)
        params.append(p)
    cmds[command] = click.Command(command, params=params + [option], help=old.help, callback=old.callback)
    return click.Group("admmq", commands=cmds)


def test_a_change_to_the_commands_is_a_drift():
    doc = render_reference()
    new = _with_changed_option(cli, "eval", click.Option(["--new-thing"], type=int, default=3, help="A new knob."))
    d = drift(doc, new)
    assert "+| `--new-thing` | `INT` | `3` | A new knob. |" in d
    # a hidden option (an old spelling kept for a while) is not listed
    hidden = _with_changed_option(cli, "eval", click.Option(["--other"], hidden=True), hide="valid_path")
    lines = drift(doc, hidden).splitlines()
    assert [x for x in lines if "--valid`" in x] == ["-| `--valid` | `FILE` |  | Several LMs without --weights: tune "
                                                     "their interpolation weights by EM on this text, as 'admmq "
                                                     "interpolate --valid' does [default: equal weights, with a "
                                                     "warning]. |"]
    assert not [x for x in lines if "--other" in x]


def test_a_hand_edit_of_the_doc_is_a_drift():
    doc = render_reference()
    edited = doc.replace("| `--wip-grid` | `TEXT` | `0,0.5,1` |", "| `--wip-grid` | `TEXT` | `0,1` |")
    assert edited != doc
    assert "-| `--wip-grid` | `TEXT` | `0,1` |" in drift(edited)


def test_the_documented_regeneration_command_writes_the_doc(tmp_path):
    out = subprocess.run([sys.executable, "-m", "rescorer.cli.reference"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out == render_reference()
    assert REGENERATE in out and out.startswith("# Command reference\n")
