"""`python -m gyre` runs the CLI (used to start server processes with the same interpreter)."""

from gyre.cli.main import main

main()
