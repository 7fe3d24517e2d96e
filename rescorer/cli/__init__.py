"""The ``admmq`` command line: a thin click adapter over the library.

Each subcommand lives in its own module here and calls one library
function.  Errors the user caused (:class:`rescorer.errors.AdmmqError`) are
printed as one line, ``admmq: error: <file>:<line>: <what>``, with exit
status 1; click's own usage errors exit with 2.
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import AdmmqError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100, "show_default": True}


class UserError(click.ClickException):
    exit_code = 1

    def format_message(self) -> str:
        return self.message

    def show(self, file=None) -> None:
        click.echo(f"admmq: error: {self.format_message()}", err=True, file=file)


class AdmmqGroup(click.Group):
    """A click group that turns :class:`AdmmqError` (and Ctrl-C) into a one-line message."""

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


def _register() -> None:
    from . import cmd_eval, cmd_train  # noqa: F401  (each module adds its command to ``cli``)
    from . import cmd_export, cmd_import, cmd_info  # noqa: F401
    from . import cmd_interpolate  # noqa: F401
    from . import cmd_nbest, cmd_rescore, cmd_wer  # noqa: F401
    from . import cmd_plot  # noqa: F401
    from . import cmd_report  # noqa: F401
    from . import cmd_sensitivity  # noqa: F401


_register()


def main(argv=None) -> None:
    """Console entry point (``admmq``)."""
    cli.main(args=argv, prog_name="admmq")


if __name__ == "__main__":  # python -m rescorer.cli
    main(sys.argv[1:])
