"""Figures of a synthetic cohort: prepared-style crops per class and site beside the real samples."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vcfnet.io.images import read_radiograph
from vcfnet.labels import CLASS_NAMES
from vcfnet.preprocess import CropSpec, make_cache_crop, resize_square, to_gray_uint8


def cohort_crops(
    cohort: Path | str, site: str, label: str, n: int, *, spec: CropSpec | None = None
) -> list[np.ndarray]:
    """Up to ``n`` crops (uint8 (h, w)) of ``label`` vertebrae at ``site``, cut as ``prepare`` cuts them."""
    spec = spec or CropSpec()
    site_dir = Path(cohort) / site
    with open(site_dir / "truth.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"] == label][:n]
    crops = []
    for r in rows:
        image = read_radiograph(site_dir / "images" / f"{r['image']}.dcm").pixels
        box = tuple(float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
        crops.append(make_cache_crop(image, box, spec))
    return crops


def real_crops(samples: Path | str, label: str, n: int) -> list[np.ndarray]:
    """Up to ``n`` real crops of ``label`` from an ImageFolder of PNGs (Acute/, Chronic/, ...)."""
    from PIL import Image

    files = sorted((Path(samples) / label.capitalize()).glob("*.png"))[:n]
    return [to_gray_uint8(np.asarray(Image.open(f))) for f in files]


def crop_grid(
    rows: Sequence[tuple[str, Sequence[np.ndarray]]],
    path: Path | str,
    *,
    tile: int = 96,
    title: str = "",
) -> Path:
    """Save a grid PNG: one labelled row of square tiles per (name, crops)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_cols = max(1, max(len(c) for _, c in rows))
    fig, axes = plt.subplots(
        len(rows),
        n_cols,
        figsize=(n_cols * tile / 72, len(rows) * tile / 72),
        dpi=72,
        squeeze=False,
    )
    for i, (name, crops) in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(crops):
                ax.imshow(resize_square(crops[j], tile), cmap="gray", vmin=0, vmax=255)
            if j == 0:
                ax.set_ylabel(name, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout(pad=0.2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return path


def class_figure(
    cohort: Path | str,
    samples: Path | str | None,
    path: Path | str,
    *,
    site: str = "SITE1",
    n: int = 5,
) -> Path:
    """Real (if ``samples``) and synthetic crops, one row per class and source."""
    rows = []
    for label in CLASS_NAMES:
        if samples is not None:
            rows.append((f"real {label}", real_crops(samples, label, n)))
        rows.append((f"synth {label}", cohort_crops(cohort, site, label, n)))
    return crop_grid(rows, path, title=f"Crops per class: real samples vs synthetic {site}")


def site_figure(cohort: Path | str, sites: Sequence[str], path: Path | str, *, n: int = 6) -> Path:
    """Acute/chronic/pathologic crops per site: the imaging domain shift at a glance."""
    rows = []
    for site in sites:
        crops = []
        for label in CLASS_NAMES:
            crops.extend(cohort_crops(cohort, site, label, n // 3))
        rows.append((site, crops))
    return crop_grid(
        rows, path, title="Synthetic crops per site (acute, chronic, pathologic pairs)"
    )
