"""The ``admmq`` click group: one-line errors for the user's mistakes, shared context settings.

:class:`AdmmqGroup` turns an :class:`~rescorer.errors.AdmmqError` raised by a
command into ``admmq: error: <file>:<line>: <what>`` with exit status 1, and
Ctrl-C into ``admmq: interrupted`` (130).  The command modules (``cmd_*.py``)
add their commands to :data:`cli`; :mod:`rescorer.cli` imports them all.
"""

from __future__ import annotations

import importlib

import click

from rescorer import __version__
from rescorer.errors import AdmmqError
from rescorer.cli.renames import RenamingCommand

_FAST_EXIT = False


def allow_fast_exit() -> None:
    """Called by a command that has closed all its outputs: the ``admmq`` process may end without the
    interpreter's teardown (:func:`rescorer.cli.main`; in-process callers such as tests are unaffected)."""
    global _FAST_EXIT
    _FAST_EXIT = True


def fast_exit_allowed() -> bool:
    return _FAST_EXIT


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


#: command name -> the module that defines it (imported on first use: start-up stays short)
COMMAND_MODULES = {
    "train": "cmd_train", "eval": "cmd_eval", "import": "cmd_import", "export": "cmd_export", "info": "cmd_info",
    "interpolate": "cmd_interpolate", "sensitivity": "cmd_sensitivity", "rescore": "cmd_rescore",
    "nbest": "cmd_nbest", "wer": "cmd_wer", "report": "cmd_report", "plot": "cmd_plot",
}


class AdmmqGroup(click.Group):
    """A click group that turns :class:`AdmmqError` (and Ctrl-C) into a one-line message, and imports
    a command's module (:data:`COMMAND_MODULES`) when the command is looked up; its commands accept the old
    spellings of renamed options (:mod:`rescorer.cli.renames`), and so do its groups'."""

    command_class = RenamingCommand
    group_class = CommandGroup

    def list_commands(self, ctx: click.Context):
        return sorted(set(super().list_commands(ctx)) | set(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, name: str):
        if name not in self.commands and name in COMMAND_MODULES:
            importlib.import_module(f"rescorer.cli.{COMMAND_MODULES[name]}")
        return super().get_command(ctx, name)

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
