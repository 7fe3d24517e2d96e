"""``python -m rescorer`` runs the ``admmq`` command line."""

from rescorer.cli import main

main()
