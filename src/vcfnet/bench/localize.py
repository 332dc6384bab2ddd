"""``vcfnet bench localize``: seconds per radiograph of the vertebra localiser (decode the DICOM,
letterbox, network, decode the maps, morphometry), PyTorch and ONNX Runtime, one film at a time."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from vcfnet.io.images import read_radiograph
from vcfnet.localiser.model import Localiser
from vcfnet.localiser.results import body_records
from vcfnet.synth.cohort import DEFAULT_SIZE, SynthConfig, plan_site, run_tasks
from vcfnet.synth.sites import preset_sites

TARGET_S = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="localiser LOC (default: an untrained width-16 one; speed does not depend on the weights)",
    )
    parser.add_argument("--n", type=int, default=8, help="radiographs")
    parser.add_argument("--size", default=DEFAULT_SIZE, help="radiograph WIDTHxHEIGHT")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")


def _untrained(folder: Path) -> Path:
    from vcfnet.localiser.train import LocaliserConfig, _save
    from vcfnet.models.localiser import build_localiser

    cfg = LocaliserConfig(data=[folder])
    spec = cfg.spec()
    model = build_localiser(len(spec.levels), cfg.width).eval()
    path = folder / "untrained.pt"
    _save(path, model, cfg, spec, {})
    return path


def _time(localiser: Localiser, files: list[Path]) -> tuple[list[float], float]:
    """Wall seconds per film, and CPU seconds per film (all threads of this process: on an idle
    machine the wall time is at most this, so it bounds the speed on a shared one)."""
    out = []
    localiser.predict_pixels(read_radiograph(files[0]).pixels)  # warm-up
    c0 = time.process_time()
    for path in files:
        t0 = time.perf_counter()
        radiograph = read_radiograph(path)
        bodies = localiser.predict_pixels(radiograph.pixels)
        body_records(bodies, localiser.levels, radiograph.pixel_spacing_mm)
        out.append(time.perf_counter() - t0)
    return out, (time.process_time() - c0) / len(files)


def run(args: argparse.Namespace) -> dict:
    import torch

    from vcfnet.localiser.export import export_localiser_onnx

    if args.threads:
        torch.set_num_threads(args.threads)
    n = int(args.n)
    cfg = SynthConfig(scale=1.0, size=args.size)
    sites = preset_sites("paper", 1.0)
    tasks = [plan_site(sites[i % len(sites)], i % len(sites), cfg)[i] for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run_tasks(tasks, root, 1, desc="films")
        files = sorted(root.rglob("*.dcm"))
        model = args.model or _untrained(root)
        onnx = export_localiser_onnx(model, root / "loc.onnx")
        torch_s, torch_cpu = _time(Localiser(model), files)
        onnx_s, onnx_cpu = _time(Localiser(onnx), files)
    return {
        "radiographs": len(files),
        "size": args.size,
        "model": str(args.model) if args.model else "untrained vhnet16",
        "torch_threads": torch.get_num_threads(),
        "s_per_radiograph_torch_p50": float(np.median(torch_s)),
        "s_per_radiograph_torch_mean": float(np.mean(torch_s)),
        "s_per_radiograph_onnx_p50": float(np.median(onnx_s)),
        "s_per_radiograph_onnx_mean": float(np.mean(onnx_s)),
        "cpu_s_per_radiograph_torch": torch_cpu,
        "cpu_s_per_radiograph_onnx": onnx_cpu,
        "load_average_1min": os.getloadavg()[0],
        "target_s": TARGET_S,
        "meets_target": bool(min(np.median(torch_s), np.median(onnx_s)) <= TARGET_S),
    }
