"""Old spellings of renamed options: they keep working for one release, with one line on stderr.

:data:`RENAMED` holds, per command, each old option spelling and the new one.  A command made with
``cls=RenamingCommand`` rewrites the old spellings of its command line into the new ones before click
parses it, and prints ``admmq: --old is deprecated, use --new`` once for each old spelling used.  The
old spellings appear in no help text and no command reference; the README's changelog lists them
(``tests/test_renames.py`` checks that it lists every one).

Positional arguments that became options (``admmq export CHECKPOINT`` is now ``admmq export --lm``)
are kept as :class:`OldPositional` arguments: hidden from the usage line and the reference, and the
command says the same deprecation line when one is given (:func:`deprecated`).
"""

from __future__ import annotations

from typing import Dict, List, Optional

import click

#: command path -> {old spelling: new spelling}
RENAMED: Dict[str, Dict[str, str]] = {
    "train": {"--vocab": "--words-txt", "--eval-batch-tokens": "--batch-tokens", "--sensitivity": "--metric",
              "--precision-bits": "--widths", "--precision": "--allocation", "--bits": "--multibit-bits",
              "--nproc": "--nj", "--admm-iters": "--epochs"},
    "sensitivity": {"--text": "--valid", "--method": "--metric", "--bits": "--widths",
                    "--max-sentences": "--sensitivity-sentences"},
    "interpolate": {"--init": "--weights"},
    "rescore": {"--shard": "--job"},
    "nbest split": {"-n": "--nj", "--parts": "--nj"},
    "nbest synth": {"-j": "--nj", "--jobs": "--nj"},
    **{f"plot {c}": {"--output": "--out"} for c in ("curves", "front", "sweep")},
}

#: command path -> (old usage, new usage) of the positional forms that became options
OLD_FORMS: Dict[str, tuple] = {
    "export": ("admmq export CHECKPOINT", "admmq export --lm CHECKPOINT"),
    "info": ("admmq info LM_FILE", "admmq info --lm LM_FILE"),
    "nbest convert": ("admmq nbest convert SRC DEST", "admmq nbest convert SRC -o DEST"),
    "nbest split": ("admmq nbest split SRC OUT_DIR", "admmq nbest split SRC -o OUT_DIR"),
    "nbest merge": ("admmq nbest merge DEST SRC...", "admmq nbest merge SRC... -o DEST"),
}

#: options dropped without a new spelling: command path -> {old spelling: what to use instead}
DROPPED: Dict[str, Dict[str, str]] = {
    "import": {"--dropout": "admmq train --dropout (with --init-from)"},
}


def deprecated(old: str, new: str) -> None:
    """The one deprecation line on stderr."""
    click.echo(f"admmq: {old} is deprecated, use {new}", err=True)


def rewrite(args: List[str], renamed: Dict[str, str], takes_value: Dict[str, bool]) -> List[str]:
    """``args`` with the old spellings of ``renamed`` replaced by the new ones (``--old``, ``--old=V``, a
    short ``-xV``), one deprecation line per old spelling used.  Values of options (``takes_value``:
    option string -> whether it takes a value) and everything after ``--`` are left as they are."""
    out: List[str] = []
    said = set()
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            out += args[i:]
            break
        name, eq, value = token.partition("=") if token.startswith("--") else (token, "", "")
        old = name if name in renamed else None
        if old is None and len(token) > 2 and token[0] == "-" and token[1] != "-" and token[:2] in renamed:
            old, name, eq, value = token[:2], token[:2], "=", token[2:]  # -j4
        if old is not None:
            if old not in said:
                deprecated(old, renamed[old])
                said.add(old)
            name = renamed[old]
            token = f"{name}={value}" if eq else name
        out.append(token)
        i += 1
        if not eq and takes_value.get(name) and i < len(args):
            out.append(args[i])  # the option's value, never rewritten
            i += 1
    return out


def command_path(ctx: click.Context) -> str:
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(reversed(names))


class RenamingCommand(click.Command):
    """A command that still accepts the old spellings of :data:`RENAMED` (looked up by its path)."""

    def parse_args(self, ctx: click.Context, args: List[str]) -> List[str]:
        renamed = RENAMED.get(command_path(ctx))
        if renamed:
            takes_value = {o: not (p.is_flag or p.count) for p in self.params if isinstance(p, click.Option)
                           for o in p.opts + p.secondary_opts}
            args = rewrite(list(args), renamed, takes_value)
        return super().parse_args(ctx, args)


class OldPositional(click.Argument):
    """A positional argument kept only for its old form: optional, and in no usage line or reference."""

    hidden = True

    def __init__(self, decls, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(decls, **kwargs)

    def get_usage_pieces(self, ctx: click.Context) -> List[str]:
        return []


def old_form(path: str, value: Optional[object]) -> None:
    """Say the deprecation line of the old positional form of ``path`` when ``value`` was given."""
    if value:
        deprecated(f"'{OLD_FORMS[path][0]}'", f"'{OLD_FORMS[path][1]}'")


def new_or_old_form(path: str, new: Optional[str], old: Optional[str], option: str) -> str:
    """The value of ``option`` (``new``) or of the old positional form of ``path`` (``old``, said to be
    deprecated), whichever was given; a usage error when both or neither were."""
    old_form(path, old)
    if new and old:
        raise click.UsageError(f"give it once, as {option}")
    if not (new or old):
        raise click.UsageError(f"missing option '{option}'")
    return new or old


def dropped(path: str, option: str, value: Optional[object]) -> None:
    """Say the deprecation line of a dropped option when it was given."""
    if value is not None:
        deprecated(option, DROPPED[path][option])
