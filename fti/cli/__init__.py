"""The `fti` command: one module per command group (`main` parses and dispatches)."""

from fti.cli.main import main

__all__ = ["main"]
