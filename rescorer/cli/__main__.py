"""``python -m rescorer.cli`` (and ``torchrun -m rescorer.cli``) runs the ``admmq`` command line."""

from rescorer.cli import main

main()
