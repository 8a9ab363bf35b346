"""``python -m engramdb`` runs the command line."""

from .cli import main

main()
