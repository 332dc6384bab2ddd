"""``vcfnet bench synth``: radiographs/s of the synthetic generator at 1 worker and at N."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from vcfnet.synth.cohort import DEFAULT_SIZE, SynthConfig, plan_site, run_tasks
from vcfnet.synth.sites import preset_sites


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=8, help="radiographs per measurement")
    parser.add_argument("--size", default=DEFAULT_SIZE, help="WIDTHxHEIGHT")
    parser.add_argument("--workers", type=int, default=0, help="parallel workers (0 = all cores)")


def run(args: argparse.Namespace) -> dict:
    """Radiographs/s (render + DICOM + XML) at 1 worker and at N workers, side by side."""
    n = int(getattr(args, "n", 8))
    workers = int(getattr(args, "workers", 0)) or (os.cpu_count() or 1)
    cfg = SynthConfig(scale=1.0, size=getattr(args, "size", DEFAULT_SIZE))
    sites = preset_sites("paper", 1.0)
    tasks = []
    for i in range(2 * n):  # all site profiles in turn
        site = sites[i % len(sites)]
        tasks.append(plan_site(site, i % len(sites), cfg)[i])
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        run_tasks(tasks[:n], Path(tmp), 1, desc="1 worker")
        t1, c1 = time.perf_counter(), time.process_time()
        run_tasks(tasks[n:], Path(tmp), workers, desc=f"{workers} workers")
        t2 = time.perf_counter()
    single, multi = n / (t1 - t0), n / (t2 - t1)
    return {
        "radiographs": n,
        "workers": workers,
        "s_per_radiograph_1_worker": (t1 - t0) / n,
        "cpu_s_per_radiograph_1_worker": (c1 - c0) / n,
        "radiographs_per_s_1_worker": single,
        "radiographs_per_s_n_workers": multi,
        "speedup": multi / single,
    }
