"""``vcfnet bench WHAT``: benchmarks reported as ratios measured side by side in one run.

Each benchmark lives beside the code it measures as ``add_bench_<what>_arguments(parser)``
(optional) and ``bench_<what>(args) -> dict`` returning plain numbers; this module prints them as
a table or JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

#: matmul size for the arithmetic peak (large enough to be compute-bound, ~0.1 s in fp32)
_PEAK_N = 2048


def peak_gflop_s(dtype: str, repeats: int = 8) -> float:
    """This CPU's arithmetic peak in GFLOP/s (GOP/s for int8): the best of ``repeats`` square
    matmuls in ``dtype`` ("fp32", "bf16" or "int8") through PyTorch's oneDNN/MKL kernels, on the
    threads PyTorch uses (NaN where the build has no such kernel). Convolution layers of a ResNet
    cannot run faster than this."""
    import time

    import torch

    n = _PEAK_N
    if dtype == "int8":
        a = torch.randint(-128, 128, (n, n), dtype=torch.int8)
        matmul = torch._int_mm  # int8 x int8 -> int32, VNNI where the CPU has it
    else:
        a = torch.randn(n, n, dtype={"fp32": torch.float32, "bf16": torch.bfloat16}[dtype])
        matmul = torch.matmul
    b = a.clone()
    try:
        matmul(a, b)  # warm-up
    except (RuntimeError, NotImplementedError):  # a build without that kernel: no peak to report
        return float("nan")
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def model_gflop(model, image_size: int, *, backward: bool) -> float:
    """GFLOP per image of ``model`` (convolutions and matmuls, as counted by PyTorch's
    ``FlopCounterMode``) for a forward pass, or forward + backward when ``backward``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(2, 3, image_size, image_size)
    with FlopCounterMode(display=False) as counter:
        if backward:
            model(x).sum().backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                model(x)
    return counter.get_total_flops() / 2 / 1e9


#: what -> module holding bench_<what>
BENCHES: dict[str, str] = {
    "synth": "vcfnet.synth.cohort",
    "prepare": "vcfnet.data.prepare",
    "train": "vcfnet.train",
    "predict": "vcfnet.predict",
    "metrics": "vcfnet.evaluate",
}


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    for what, module in [*BENCHES.items(), ("all", "")]:
        p = sub.add_parser(what, help=f"benchmark {what}")
        p.add_argument("--json", action="store_true", help="print results as JSON")
        if module:
            mod = importlib.import_module(module)
            adder = getattr(mod, f"add_bench_{what}_arguments", None)
            if adder is not None:
                adder(p)


def _print_table(what: str, results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"vcfnet bench {what}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in results.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    Console().print(table)


def run_bench(args: argparse.Namespace) -> int:
    names = list(BENCHES) if args.what == "all" else [args.what]
    all_results = {}
    for what in names:
        mod = importlib.import_module(BENCHES[what])
        if args.what == "all":
            # defaults of that benchmark's own options
            p = argparse.ArgumentParser()
            adder = getattr(mod, f"add_bench_{what}_arguments", None)
            if adder is not None:
                adder(p)
            bench_args = p.parse_args([])
            bench_args.json = args.json
        else:
            bench_args = args
        results = getattr(mod, f"bench_{what}")(bench_args)
        all_results[what] = results
        if not args.json:
            _print_table(what, results)
    if args.json:
        json.dump(
            all_results if args.what == "all" else all_results[args.what], sys.stdout, indent=2
        )
        sys.stdout.write("\n")
    return 0
