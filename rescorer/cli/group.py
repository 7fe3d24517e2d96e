"""The ``admmq`` click group: one-line errors for the user's mistakes, shared context settings.

:class:`AdmmqGroup` turns an :class:`~rescorer.errors.AdmmqError` raised by a
command into ``admmq: error: <file>:<line>: <what>`` with exit status 1, and
Ctrl-C into ``admmq: interrupted`` (130).  The command modules (``cmd_*.py``)
add their commands to :data:`cli`; :mod:`rescorer.cli` imports them all.
"""

from __future__ import annotations

import click

from rescorer import __version__
from rescorer.errors import AdmmqError
from rescorer.cli.renames import RenamingCommand

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100, "show_default": True}


class UserError(click.ClickException):
    exit_code = 1

    def format_message(self) -> str:
        return self.message

    def show(self, file=None) -> None:
        click.echo(f"admmq: error: {self.format_message()}", err=True, file=file)


class CommandGroup(click.Group):
    """A group of commands (``nbest``, ``plot``) whose commands accept the old spellings of renamed options."""

    command_class = RenamingCommand


class AdmmqGroup(click.Group):
    """A click group that turns :class:`AdmmqError` (and Ctrl-C) into a one-line message; its commands
    accept the old spellings of renamed options (:mod:`rescorer.cli.renames`), and so do its groups'."""

    command_class = RenamingCommand
    group_class = CommandGroup

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AdmmqError as exc:
            raise UserError(str(exc)) from None
        except MemoryError:
            raise UserError("out of memory; lower --batch-tokens or the batch size") from None
        except KeyboardInterrupt:
            click.echo("admmq: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=AdmmqGroup, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="admmq")
def cli() -> None:
    """admmq: low-bit (ADMM-quantized) LSTM language models for ASR n-best rescoring.

    Train LSTM LMs in full precision or quantized to 1-3 bits, export them
    bit-packed, interpolate them with n-gram LMs and rescore Kaldi n-best lists.
    """
