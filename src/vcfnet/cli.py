"""The ``vcfnet`` command: one subcommand per pipeline stage.

Each command lives in its concept's module, which provides ``add_<name>_arguments(parser)`` and
``run_<name>(args) -> int`` (``-`` in the name becomes ``_``). Modules are imported only for the
command that runs, so ``vcfnet --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from vcfnet import __version__
from vcfnet.errors import VcfnetError

log = logging.getLogger("vcfnet")

#: name -> (module, one-line help), in pipeline order.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": (
        "vcfnet.synth.cohort",
        "generate a synthetic multicenter cohort (DICOM + LabelImg XML)",
    ),
    "prepare": (
        "vcfnet.data.prepare",
        "turn radiographs + boxes into a de-identified, patient-split crop dataset",
    ),
    "train": ("vcfnet.train", "train the ResNet-18 classifier on a prepared dataset"),
    "evaluate": (
        "vcfnet.evaluate",
        "predict on prepared datasets and write the Table 2 / Figure 5 report",
    ),
    "metrics": (
        "vcfnet.evaluate",
        "the evaluation report from a predictions.csv (no model needed)",
    ),
    "compare": (
        "vcfnet.evaluate",
        "paired comparison of two models' predictions (DeLong, McNemar)",
    ),
    "predict": (
        "vcfnet.predict",
        "classify boxed vertebrae on radiographs or crops, with heatmaps",
    ),
    "export": ("vcfnet.predict", "export a trained model to ONNX"),
    "synth-readers": (
        "vcfnet.readers",
        "simulate radiologists' reads (trainee, competent, expert)",
    ),
    "readers": ("vcfnet.readers", "reader study: Table 3, Figure 6 and MRMC (Obuchowski-Rockette)"),
    "demo": ("vcfnet.demo", "run the whole multicenter study end to end on synthetic data"),
    "bench": ("vcfnet.bench", "benchmarks: prepare, synth, train, predict, metrics"),
    "serve": ("vcfnet.serve.commands", "the web platform: upload, analyse, second reads"),
    "users": ("vcfnet.serve.commands", "manage the web platform's accounts"),
}


def _func_name(command: str) -> str:
    return command.replace("-", "_")


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``selected``'s module is imported to add its options."""
    parser = argparse.ArgumentParser(
        prog="vcfnet",
        description="Classify acute, chronic and pathologic vertebral compression fractures "
        "on lateral lumbar radiographs (Xu et al., Front. Endocrinol. 2023).",
    )
    parser.add_argument("--version", action="version", version=f"vcfnet {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(
            name, help=help_text, description=help_text[0].upper() + help_text[1:] + "."
        )
        if name == selected:
            mod = importlib.import_module(module)
            getattr(mod, f"add_{_func_name(name)}_arguments")(p)
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
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(getattr(module, f"run_{_func_name(args.command)}")(args) or 0)
    except VcfnetError as exc:
        print(f"vcfnet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vcfnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
