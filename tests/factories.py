"""Tiny datasets for tests: a ``vcfnet prepare``-compatible folder with learnable crops.

Each class gets a distinct, noisy pattern so that a small model can learn it in a few steps:
acute = bright horizontal band at the top, chronic = bright frame, pathologic = dark mottled blobs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from vcfnet.data.manifest import write_dataset_info, write_manifest
from vcfnet.labels import CLASS_NAMES
from vcfnet.preprocess import CropSpec, Preprocessing, normalize_batch, stack_crops


def make_crop(label: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (size, size) crop with a class-specific pattern plus noise."""
    img = rng.normal(110, 20, (size, size))
    s = size
    if label == "acute":
        img[s // 6 : s // 3, :] += 90
    elif label == "chronic":
        img[: s // 8, :] += 80
        img[-s // 8 :, :] += 80
        img[:, : s // 8] += 80
        img[:, -s // 8 :] += 80
    else:
        for _ in range(6):
            y, x = rng.integers(s // 6, 5 * s // 6, 2)
            r = max(2, s // 10)
            img[max(0, y - r) : y + r, max(0, x - r) : x + r] -= 70
    return np.clip(img, 0, 255).astype(np.uint8)


def make_tiny_dataset(
    out: Path,
    *,
    n_per_class: int = 8,
    size: int = 48,
    sites: tuple[str, ...] = ("dev",),
    splits: tuple[str, ...] = ("train", "val", "test"),
    seed: int = 0,
) -> Path:
    """Write ``out/manifest.csv`` + ``out/crops/*.png``; one patient per crop; returns ``out``."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    (out / "crops").mkdir(parents=True, exist_ok=True)
    rows = []
    i = 0
    for site in sites:
        for split in splits:
            for label in CLASS_NAMES:
                for _ in range(n_per_class):
                    rel = f"crops/{i:05d}.png"
                    Image.fromarray(make_crop(label, size, rng)).save(out / rel)
                    rows.append(
                        {
                            "crop_path": rel,
                            "label": label,
                            "level": "L1",
                            "patient_id": f"p{i:05d}",
                            "site": site,
                            "split": split,
                            "age": 70,
                            "sex": "F",
                            "source_image": f"img{i:05d}",
                            "box_xmin": 10,
                            "box_ymin": 10,
                            "box_xmax": 60,
                            "box_ymax": 50,
                            "pixel_spacing_mm": 0.15,
                        }
                    )
                    i += 1
    write_manifest(pd.DataFrame(rows), out)
    write_dataset_info(
        {"sites": list(sites), "n": len(rows), "crop_spec": CropSpec(cache_size=size).to_dict()},
        out,
    )
    return out


def resnet18_gflop_per_image(image_size: int, *, backward: bool) -> float:
    """GFLOP of one image through torchvision's ResNet-18 with a 3-class head, counted by PyTorch's
    FlopCounterMode on a batch of one: the count the benchmarks should report."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=len(CLASS_NAMES)).eval()  # batch norm of one image
    x = torch.zeros(1, 3, image_size, image_size)
    with FlopCounterMode(display=False) as counter:
        if backward:
            model(x).sum().backward()
        else:
            with torch.no_grad():
                model(x)
    return counter.get_total_flops() / 1e9


def reference_proba(model, crops, pre: Preprocessing) -> np.ndarray:
    """Class probabilities float64 (N, C) of ``model`` on ``crops`` in plain fp32 eager PyTorch:
    resize, normalise, forward, softmax; an independent reference for the predictors."""
    import torch

    x = normalize_batch(stack_crops(list(crops), pre.image_size), pre.input)
    with torch.no_grad():
        logits = model.eval().float()(x)
    return torch.softmax(logits, dim=1).numpy().astype(np.float64)


def randomize_batchnorm(model, seed: int = 0, *, calibrate_on=None):
    """Give every BatchNorm2d of ``model`` seeded non-default statistics and affine parameters;
    in place, returns ``model`` in eval mode.

    A freshly built model has mean 0 / var 1 / weight 1 / bias 0, for which BatchNorm is almost
    the identity: folding it into the convolution, or exporting it, could drop or misuse any of
    these four tensors and every parity test would still pass.

    weight ~ U(0.5, 1.5), bias ~ N(0, 0.2); running_mean ~ N(0, 0.5), running_var ~ U(0.5, 2),
    or, with ``calibrate_on`` (a normalised input batch), the statistics of the activations that
    batch produces, as after training (random statistics blur what a random backbone localises).
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            n = bn.num_features
            bn.weight.copy_(torch.rand(n, generator=gen) + 0.5)
            bn.bias.copy_(torch.randn(n, generator=gen) * 0.2)
            bn.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
            bn.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
        if calibrate_on is not None:
            momenta = [bn.momentum for bn in bns]
            for bn in bns:
                bn.reset_running_stats()
                bn.momentum = None  # cumulative average: one batch -> its own statistics
            model.train()(calibrate_on)
            for bn, momentum in zip(bns, momenta, strict=True):
                bn.momentum = momentum
    return model.eval()
