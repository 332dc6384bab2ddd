"""A short measurement of this machine's training speed: what a time budget is planned from.

``measure_train_throughput`` runs a few of the loop's own training steps (``train_one_epoch``:
augmentation, normalisation, forward, backward, Adam) of a fresh ResNet-18 on random crops, with
the precision ``auto`` resolves to on this CPU (bf16 where oneDNN has native bf16 kernels, else
fp32). It leaves torch's global random state as it found it. Batches of 16 by default: at 8 an
AVX2-only fp32 CPU trains ~3-5x slower per image than at the loop's 32 (measured under
``ONEDNN_MAX_CPU_ISA=AVX2``), which would make a budget choose needlessly low rungs.
"""

from __future__ import annotations

import time

import pandas as pd
import torch

from vcfnet.data.augment import Augmentation
from vcfnet.data.dataset import CropTensors
from vcfnet.device import resolve_device, resolve_precision
from vcfnet.labels import CLASS_NAMES
from vcfnet.models.classifier import build_model
from vcfnet.preprocess import InputSpec
from vcfnet.training.distributed import Dist
from vcfnet.training.steps import train_one_epoch


def measure_train_throughput(
    image_size: int,
    *,
    batch_size: int = 16,
    steps: int = 2,
    warmup: int = 1,
    precision: str = "auto",
    device: str = "auto",
) -> float:
    """Training images/s at ``image_size`` px, timed over ``steps`` batches after ``warmup``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        dev = resolve_device(device)
        prec = resolve_precision(precision, dev)
        model = build_model(len(CLASS_NAMES), weights="none").to(
            dev, memory_format=prec.memory_format
        )
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
        n = batch_size * (steps + warmup)
        data = CropTensors(
            images=torch.randint(0, 256, (n, image_size, image_size), dtype=torch.uint8),
            labels=torch.arange(n) % len(CLASS_NAMES),
            rows=pd.DataFrame(index=range(n)),
        )
        batches = list(torch.arange(n).split(batch_size))

        def run(part: list[torch.Tensor]) -> None:
            train_one_epoch(
                model,
                optimizer,
                data,
                part,
                pre=InputSpec(image_size=image_size),
                aug=Augmentation(hflip=True, vflip=True, rotation_degrees=15.0),
                generator=torch.Generator().manual_seed(0),
                loss_weight=None,
                device=dev,
                precision=prec,
                scaler=None,
                dist=Dist(),
                progress=False,
            )

        run(batches[:warmup])
        t0 = time.perf_counter()
        run(batches[warmup:])
        return batch_size * steps / max(time.perf_counter() - t0, 1e-9)
