"""``python -m kataribe`` runs the CLI."""

from kataribe.cli import main

main()
