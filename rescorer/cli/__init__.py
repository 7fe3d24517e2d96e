"""The ``admmq`` command line: a thin click adapter over the library, the top layer.

Each subcommand lives in its own module here and calls one library
function; nothing in the library imports this package.  Errors the user
caused (:class:`rescorer.errors.AdmmqError`) are printed as one line,
``admmq: error: <file>:<line>: <what>``, with exit status 1; click's own
usage errors exit with 2.
"""

from __future__ import annotations

import sys

from rescorer.cli.group import cli


def _register() -> None:
    from rescorer.cli import cmd_eval, cmd_train  # noqa: F401  (each module adds its command to ``cli``)
    from rescorer.cli import cmd_export, cmd_import, cmd_info  # noqa: F401
    from rescorer.cli import cmd_interpolate  # noqa: F401
    from rescorer.cli import cmd_nbest, cmd_rescore, cmd_wer  # noqa: F401
    from rescorer.cli import cmd_plot  # noqa: F401
    from rescorer.cli import cmd_report  # noqa: F401
    from rescorer.cli import cmd_sensitivity  # noqa: F401


_register()


def main(argv=None) -> None:
    """Console entry point (``admmq``)."""
    cli.main(args=argv, prog_name="admmq")


if __name__ == "__main__":  # python -m rescorer.cli
    main(sys.argv[1:])
