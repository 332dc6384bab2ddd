"""``vcfnet bench WHAT``: run benchmarks and print their numbers as a table or JSON."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from rich.console import Console
from rich.table import Table

from vcfnet.bench.peaks import machine_info

#: what -> module under vcfnet.bench with ``add_arguments(parser)`` and ``run(args) -> dict``
BENCHES: dict[str, str] = {
    "synth": "vcfnet.bench.synth",
    "prepare": "vcfnet.bench.prepare",
    "train": "vcfnet.bench.train",
    "predict": "vcfnet.bench.predict",
    "metrics": "vcfnet.bench.metrics",
    "serve": "vcfnet.bench.serve",
    "realism": "vcfnet.bench.realism",
    "localize": "vcfnet.bench.localize",
}


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    for what in [*BENCHES, "all"]:
        p = sub.add_parser(what, help=f"benchmark {what}")
        p.add_argument("--json", action="store_true", help="print results as JSON")
        if what in BENCHES:
            importlib.import_module(BENCHES[what]).add_arguments(p)


def _print_table(what: str, results: dict) -> None:
    table = Table(title=f"vcfnet bench {what}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in results.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    Console().print(table)


def _defaults(module) -> argparse.Namespace:
    """A benchmark's own default options (for ``bench all``)."""
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args([])


def run_bench(args: argparse.Namespace) -> int:
    names = list(BENCHES) if args.what == "all" else [args.what]
    all_results = {}
    for what in names:
        module = importlib.import_module(BENCHES[what])
        results = module.run(_defaults(module) if args.what == "all" else args)
        results["machine"] = machine_info()
        all_results[what] = results
        if not args.json:
            _print_table(what, results)
    if args.json:
        json.dump(
            all_results if args.what == "all" else all_results[args.what],
            sys.stdout,
            indent=2,
            default=str,
        )
        sys.stdout.write("\n")
    return 0
