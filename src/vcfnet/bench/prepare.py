"""``vcfnet bench prepare``: radiographs/s of ``prepare`` on generated PNGs, 1 worker vs N."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vcfnet.data.config import PrepareConfig
from vcfnet.data.jobs import resolve_workers
from vcfnet.data.prepare import prepare_dataset
from vcfnet.io.voc import write_voc
from vcfnet.labels import CLASS_NAMES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n-images", type=int, default=40, help="PNG radiographs to generate")
    parser.add_argument("--height", type=int, default=1280)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--boxes", type=int, default=3, help="boxes per radiograph")
    parser.add_argument(
        "--workers", type=int, default=0, help="parallel run's workers (0 = all cores)"
    )


def write_bench_inputs(
    root: Path, n_images: int, height: int, width: int, boxes: int, seed: int = 0
) -> tuple[Path, Path, Path]:
    """Synthetic 8-bit PNG radiographs (smooth background + noise), LabelImg XML and patients CSV."""
    rng = np.random.default_rng(seed)
    images, xml = root / "images", root / "xml"
    images.mkdir(parents=True, exist_ok=True)
    xx = np.arange(width)[None, :]
    base = 60 + 80 * np.exp(-(((xx - width / 2) / (width / 4)) ** 2))
    for i in range(n_images):
        img = np.clip(base + rng.normal(0, 12, (height, width)), 0, 255).astype(np.uint8)
        name = f"rad{i:04d}.png"
        Image.fromarray(img).save(images / name)
        bh, bw = height // 10, width // 6
        objs = []
        for b in range(boxes):
            y1 = height // 5 + b * (bh + 20)
            objs.append(
                (
                    CLASS_NAMES[(i + b) % 3].capitalize() + f"-L{b + 1}",
                    (width / 3, y1, width / 3 + bw, y1 + bh),
                )
            )
        write_voc(xml / f"rad{i:04d}.xml", name, width, height, objs)
    patients = root / "patients.csv"
    patients.write_text(
        "image,patient_id\n" + "".join(f"rad{i:04d}.png,P{i // 2}\n" for i in range(n_images))
    )
    return images, xml, patients


def run(args: argparse.Namespace) -> dict:
    """Radiographs/s of prepare on generated PNGs, 1 worker vs N workers, side by side."""
    workers = resolve_workers(getattr(args, "workers", 0))
    n = args.n_images
    with tempfile.TemporaryDirectory(prefix="vcfnet-bench-prepare-") as tmp:
        root = Path(tmp)
        images, xml, patients = write_bench_inputs(root, n, args.height, args.width, args.boxes)
        rates = {}
        for label, w in (("serial", 1), ("parallel", workers)):
            cfg = PrepareConfig(
                images=images,
                annotations=xml,
                patients=patients,
                out=root / f"out-{label}",
                workers=w,
                id_key="bench-key-not-secret",
            )
            start = time.perf_counter()
            prepare_dataset(cfg)
            rates[label] = n / (time.perf_counter() - start)
    return {
        "images": n,
        "image_size": f"{args.height}x{args.width}",
        "workers": workers,
        "radiographs_per_s_1_worker": rates["serial"],
        f"radiographs_per_s_{workers}_workers": rates["parallel"],
        "speedup": rates["parallel"] / rates["serial"],
    }
