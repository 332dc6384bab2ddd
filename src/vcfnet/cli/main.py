"""The ``vcfnet`` command: one subcommand per pipeline stage.

``COMMANDS`` names, for each command, the adapter module under ``vcfnet.cli`` and its two
functions: ``add(parser)`` declares the options, ``run(args) -> int`` resolves the command's config,
calls the library and prints. Only the module of the command that runs is imported, so
``vcfnet --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from vcfnet import __version__
from vcfnet.errors import VcfnetError

log = logging.getLogger("vcfnet")


@dataclass(frozen=True)
class Command:
    """A subcommand: its adapter module, the functions adding its options and running it."""

    module: str
    add: str
    run: str
    help: str


#: name -> command, in pipeline order
COMMANDS: dict[str, Command] = {
    "synth": Command(
        "vcfnet.cli.synth",
        "add_synth_arguments",
        "run_synth",
        "generate a synthetic multicenter cohort (DICOM + LabelImg XML)",
    ),
    "prepare": Command(
        "vcfnet.cli.prepare",
        "add_prepare_arguments",
        "run_prepare",
        "turn radiographs + boxes into a de-identified, patient-split crop dataset",
    ),
    "train": Command(
        "vcfnet.cli.train",
        "add_train_arguments",
        "run_train",
        "train the ResNet-18 classifier on a prepared dataset",
    ),
    "evaluate": Command(
        "vcfnet.cli.evaluate",
        "add_evaluate_arguments",
        "run_evaluate",
        "predict on prepared datasets and write the Table 2 / Figure 5 report",
    ),
    "metrics": Command(
        "vcfnet.cli.evaluate",
        "add_metrics_arguments",
        "run_metrics",
        "the evaluation report from a predictions.csv (no model needed)",
    ),
    "compare": Command(
        "vcfnet.cli.evaluate",
        "add_compare_arguments",
        "run_compare",
        "paired comparison of two models' predictions (DeLong, McNemar)",
    ),
    "predict": Command(
        "vcfnet.cli.predict",
        "add_predict_arguments",
        "run_predict",
        "classify boxed vertebrae on radiographs or crops, with heatmaps",
    ),
    "export": Command(
        "vcfnet.cli.predict",
        "add_export_arguments",
        "run_export",
        "export a trained model to ONNX (fp32 or int8)",
    ),
    "morphometry": Command(
        "vcfnet.cli.morphometry",
        "add_morphometry_arguments",
        "run_morphometry",
        "vertebral heights, ratios, Genant grade and shape from six-point JSON files",
    ),
    "train-localiser": Command(
        "vcfnet.cli.localise",
        "add_train_localiser_arguments",
        "run_train_localiser",
        "train the vertebra localiser (boxes, levels, six points) on annotated films",
    ),
    "localize": Command(
        "vcfnet.cli.localise",
        "add_localize_arguments",
        "run_localize",
        "find each vertebral body: box, level, six points, Genant grade, XML, overlay",
    ),
    "evaluate-localiser": Command(
        "vcfnet.cli.localise",
        "add_evaluate_localiser_arguments",
        "run_evaluate_localiser",
        "localiser recall, level accuracy, point error and Genant kappa per site",
    ),
    "export-localiser": Command(
        "vcfnet.cli.localise",
        "add_export_localiser_arguments",
        "run_export_localiser",
        "export a trained localiser to ONNX",
    ),
    "synth-readers": Command(
        "vcfnet.cli.readers",
        "add_synth_readers_arguments",
        "run_synth_readers",
        "simulate radiologists' reads (trainee, competent, expert)",
    ),
    "readers": Command(
        "vcfnet.cli.readers",
        "add_readers_arguments",
        "run_readers",
        "reader study: Table 3, Figure 6 and MRMC (Obuchowski-Rockette)",
    ),
    "demo": Command(
        "vcfnet.cli.demo",
        "add_demo_arguments",
        "run_demo",
        "run the whole multicenter study end to end on synthetic data",
    ),
    "serve": Command(
        "vcfnet.cli.serve",
        "add_serve_arguments",
        "run_serve",
        "the web platform: upload, analyse, second reads",
    ),
    "users": Command(
        "vcfnet.cli.serve", "add_users_arguments", "run_users", "manage the web platform's accounts"
    ),
    "bench": Command(
        "vcfnet.cli.bench",
        "add_bench_arguments",
        "run_bench",
        "benchmarks: prepare, synth, train, predict, metrics",
    ),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``selected``'s adapter is imported to add its options."""
    parser = argparse.ArgumentParser(
        prog="vcfnet",
        description="Classify acute, chronic and pathologic vertebral compression fractures "
        "on lateral lumbar radiographs (Xu et al., Front. Endocrinol. 2023).",
    )
    parser.add_argument("--version", action="version", version=f"vcfnet {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        p = sub.add_parser(
            name, help=command.help, description=command.help[0].upper() + command.help[1:] + "."
        )
        if name == selected:
            getattr(importlib.import_module(command.module), command.add)(p)
    return parser


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 0 else logging.INFO)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(selected if selected in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    setup_logging(args.verbose, args.quiet)
    command = COMMANDS[args.command]
    try:
        return int(getattr(importlib.import_module(command.module), command.run)(args) or 0)
    except VcfnetError as exc:
        print(f"vcfnet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vcfnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
