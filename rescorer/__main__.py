"""``python -m rescorer`` runs the ``admmq`` command line."""

from .cli import main

main()
