"""The ``vcfnet`` command line: ``main`` and one thin adapter module per command."""

from vcfnet.cli.main import main

__all__ = ["main"]
