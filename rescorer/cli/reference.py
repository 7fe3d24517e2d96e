"""The command reference (``docs/commands.md``), generated from the click definitions.

Every subcommand of ``admmq`` (groups included, in :data:`ORDER` and then by name)
with its usage line, its help text and one table row per visible parameter:
the spellings, the value it takes, its default and its help.  The rendering
reads only what the commands declare (names, types, defaults, help strings),
never click's own help formatter, so it does not change with the click version.
Hidden parameters (old spellings kept for a while, :mod:`rescorer.cli.renames`) are left out.

Regenerate the file after changing a command::

    python -m rescorer.cli.reference > docs/commands.md

``tests/test_reference.py`` fails when ``docs/commands.md`` differs from
:func:`render_reference` of the installed commands.
"""

from __future__ import annotations

import inspect
import re
import sys
from typing import Iterator, List, Optional, Tuple

import click

#: the order of the reference: how a user meets the commands; others follow by name
ORDER = ("train", "import", "export", "info", "eval", "interpolate", "sensitivity", "rescore", "wer", "nbest",
         "plot", "report")

HEADER = """\
# Command reference

<!-- Generated from the click definitions by `python -m rescorer.cli.reference > docs/commands.md`;
     do not edit by hand (tests/test_reference.py fails when this file and the commands differ). -->

`admmq COMMAND -h` (or `--help`) prints the same for one command. A default written in a help text as
`[default: ...]` is worked out by the command, often from other options.
"""


def walk(group: click.Group, prefix: Tuple[str, ...] = ()) -> Iterator[Tuple[Tuple[str, ...], click.Command]]:
    """(path, command) for every command below ``group``, depth first, :data:`ORDER` first."""
    ctx = click.Context(group, info_name=" ".join(("admmq",) + prefix))
    names = list(group.list_commands(ctx))
    names.sort(key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    for name in names:
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from walk(cmd, prefix + (name,))


def plain_default(value) -> Optional[str]:
    """A default as the reference shows it; None for no default (None, click's unset marker, empty, off)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (str, int, float)):
        return None if value == "" else str(value)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value)
    return None


def value_of(param: click.Parameter) -> str:
    """What the parameter takes: its metavar, choices, a range or a kind of path; '' for a flag."""
    if isinstance(param, click.Option) and param.is_flag:
        return ""
    if param.metavar and isinstance(param, click.Option):
        return param.metavar
    t = param.type
    if isinstance(t, click.Choice):
        return "|".join(str(c) for c in t.choices)
    if isinstance(t, (click.IntRange, click.FloatRange)):
        return range_of(t)
    if isinstance(t, click.Path):
        return "FILE" if not t.dir_okay else "DIR" if not t.file_okay else "PATH"
    names = {"integer": "INT", "float": "FLOAT", "text": "TEXT", "boolean": "BOOL"}
    return names.get(t.name, t.name.upper()) if t.name in names else t.name


def range_of(t) -> str:
    """``INT ≥ 1``, ``FLOAT > 0``, ``INT in [1, 8]``, ``FLOAT in [0, 1)``."""
    kind = "INT" if isinstance(t, click.IntRange) else "FLOAT"
    if t.min is not None and t.max is not None:
        return f"{kind} in {'(' if t.min_open else '['}{t.min:g}, {t.max:g}{')' if t.max_open else ']'}"
    if t.min is not None:
        return f"{kind} {'>' if t.min_open else '≥'} {t.min:g}"
    if t.max is not None:
        return f"{kind} {'<' if t.max_open else '≤'} {t.max:g}"
    return kind


def spelling(param: click.Parameter) -> str:
    """``-o, --out`` (an option), ``--a/--no-a`` (a flag pair) or ``NAME`` (an argument)."""
    if isinstance(param, click.Argument):
        return param.metavar or param.name.upper() + ("..." if param.nargs == -1 else "")
    opts = sorted(param.opts, key=lambda o: (o.startswith("--"), o))
    s = ", ".join(opts)
    if param.secondary_opts:
        s += " / " + ", ".join(param.secondary_opts)
    return s


def default_of(param: click.Parameter) -> str:
    if isinstance(param, click.Argument):
        return ""
    if isinstance(param.show_default, str):
        return param.show_default
    if param.show_default is False or "[default:" in (param.help or ""):
        return ""
    if param.is_flag and param.secondary_opts:  # --a/--no-a: the spelling that is on by default
        return param.opts[0] if param.default is True else param.secondary_opts[0]
    return plain_default(param.default) or ""


def notes_of(param: click.Parameter) -> str:
    notes = []
    if param.required and isinstance(param, click.Option):
        notes.append("required")
    if isinstance(param, click.Argument) and param.nargs == -1:
        notes.append("one or more" if param.required else "any number")
    elif getattr(param, "multiple", False) and "repeatable" not in (param.help or ""):
        notes.append("repeatable")
    return f" ({', '.join(notes)})" if notes else ""


def one_line(text: str) -> str:
    """``text`` on one line, as Markdown text: ``*`` and ``<`` escaped (``<s>`` is not an HTML tag here)."""
    return re.sub(r"\s+", " ", text).strip().replace("*", "\\*").replace("<", "&lt;")


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def help_paragraphs(text: str) -> List[str]:
    """A command's help as Markdown: ``\\b`` paragraphs (kept as written) become code blocks."""
    out = []
    for para in re.split(r"\n\s*\n", inspect.cleandoc(text or "")):
        if para.startswith("\b"):
            out.append("```\n" + para[1:].strip("\n") + "\n```")
        elif para.strip():
            out.append(one_line(para))
    return out


def usage(path: Tuple[str, ...], cmd: click.Command) -> str:
    parts = ["admmq", *path]
    if any(isinstance(p, click.Option) for p in cmd.params):
        parts.append("[OPTIONS]")
    parts += [spelling(p) for p in cmd.params if isinstance(p, click.Argument) and not getattr(p, "hidden", False)]
    if isinstance(cmd, click.Group):
        parts.append("COMMAND")
    return " ".join(parts)


def render_command(path: Tuple[str, ...], cmd: click.Command) -> str:
    lines = [f"{'#' * min(len(path) + 1, 4)} `admmq {' '.join(path)}`", "", f"`{usage(path, cmd)}`", ""]
    for para in help_paragraphs(cmd.help):
        lines += [para, ""]
    params = [p for p in cmd.params if not getattr(p, "hidden", False)]
    if params:
        lines += ["| parameter | value | default | meaning |", "|---|---|---|---|"]
        for p in params:
            value, default = value_of(p), default_of(p)
            meaning = (one_line(getattr(p, "help", None) or "") + notes_of(p)).strip()
            lines.append(" | ".join(["", f"`{spelling(p)}`", cell(f"`{value}`") if value else "",
                                     cell(f"`{default}`") if default else "", cell(meaning), ""]).strip())
        lines.append("")
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd, info_name=" ".join(("admmq",) + path))
        subs = [n for n in cmd.list_commands(ctx) if not cmd.get_command(ctx, n).hidden]
        lines += ["Commands: " + ", ".join(f"`{n}`" for n in subs) + ".", ""]
    return "\n".join(lines)


def render_reference(group: Optional[click.Group] = None) -> str:
    """The whole of ``docs/commands.md`` for ``group`` (default: the ``admmq`` command line)."""
    if group is None:
        from rescorer.cli import cli as group
    commands = list(walk(group))
    toc = ["Commands: " + ", ".join(f"[`{' '.join(p)}`](#{anchor(p)})" for p, _ in commands) + ".", ""]
    return "\n".join([HEADER, *toc, *(render_command(p, c) for p, c in commands)]).rstrip("\n") + "\n"


def anchor(path: Tuple[str, ...]) -> str:
    """GitHub's anchor of the heading ``admmq <path>``."""
    return "admmq-" + "-".join(path)


if __name__ == "__main__":  # python -m rescorer.cli.reference > docs/commands.md
    sys.stdout.write(render_reference())
