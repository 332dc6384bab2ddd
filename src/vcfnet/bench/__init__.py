"""Benchmarks (``vcfnet bench WHAT``), one module each with ``add_arguments(parser)`` and
``run(args) -> dict`` of plain numbers; ratios are measured side by side in one run."""
