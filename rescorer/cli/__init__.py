"""The ``admmq`` command line: a thin click adapter over the library, the top layer.

Each subcommand lives in its own module here and calls one library
function; nothing in the library imports this package.  A command's module is
imported when the command is used (:class:`rescorer.cli.group.AdmmqGroup`), so
``admmq rescore`` does not import the training code.  Errors the user
caused (:class:`rescorer.errors.AdmmqError`) are printed as one line,
``admmq: error: <file>:<line>: <what>``, with exit status 1; click's own
usage errors exit with 2.
"""

from __future__ import annotations

import gc
import os
import sys

from rescorer.cli import group
from rescorer.cli.group import cli


def main(argv=None) -> None:
    """Console entry point (``admmq``).

    The objects made while importing (torch's, mostly) are frozen out of the garbage
    collector's reach (faster collections).  A command that finished with all its outputs
    closed may ask to skip the interpreter's teardown (:func:`rescorer.cli.group.allow_fast_exit`):
    freeing every object one by one took about a second after ``admmq rescore``.
    """
    gc.freeze()
    try:
        cli.main(args=argv, prog_name="admmq")
    except SystemExit as exc:
        if exc.code in (0, None) and group.fast_exit_allowed():
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        raise


if __name__ == "__main__":  # python -m rescorer.cli
    main(sys.argv[1:])
