"""Training data held in memory: every crop of a split decoded once into a uint8 tensor.

``load_split`` reads the manifest rows of one split, decodes the PNGs once (threads: PIL releases
the GIL) and resizes them to the model size with the shared ``stack_crops``. ``EpochBatches`` then
yields index batches per epoch — shuffled or class-balanced, sharded over DDP ranks like
``DistributedSampler`` — whose order depends only on (seed, epoch), so a resumed run sees exactly
the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from vcfnet.data.manifest import read_manifest
from vcfnet.errors import InputError
from vcfnet.io.images import map_threads
from vcfnet.labels import CLASS_NAMES
from vcfnet.preprocess import stack_crops, to_gray_uint8


@dataclass
class CropTensors:
    """One split in memory: ``images`` uint8 (N, S, S), ``labels`` int64 (N,), and its manifest rows."""

    images: torch.Tensor
    labels: torch.Tensor
    rows: pd.DataFrame

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self, num_classes: int = len(CLASS_NAMES)) -> list[int]:
        return torch.bincount(self.labels, minlength=num_classes).tolist()


def _decode_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return to_gray_uint8(np.asarray(im))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read crop {path}: {exc}; re-run 'vcfnet prepare'") from exc


def decode_crops(paths: Sequence[Path], image_size: int, workers: int = 2) -> np.ndarray:
    """uint8 (N, image_size, image_size): decode PNGs (``workers`` threads) and resize each to square."""
    out = np.empty((len(paths), image_size, image_size), dtype=np.uint8)

    def load(i: int) -> None:
        out[i] = stack_crops([_decode_png(paths[i])], image_size)[0]

    map_threads(load, range(len(paths)), workers)
    return out


def label_indices(labels: Sequence[str], class_names: Sequence[str] = CLASS_NAMES) -> np.ndarray:
    """int64 class indices of label strings; InputError naming unknown labels."""
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({str(lab) for lab in labels} - set(index))
    if unknown:
        raise InputError(
            f"unknown label(s) {', '.join(unknown)}; expected {', '.join(class_names)}"
        )
    return np.array([index[str(lab)] for lab in labels], dtype=np.int64)


def load_split(
    dataset_dir: Path | str,
    split: str,
    image_size: int,
    *,
    workers: int = 2,
    manifest: pd.DataFrame | None = None,
) -> CropTensors:
    """Crops of ``split`` as a uint8 tensor (N, image_size, image_size) with int64 labels."""
    dataset_dir = Path(dataset_dir)
    df = read_manifest(dataset_dir) if manifest is None else manifest
    rows = df[df["split"] == split].reset_index(drop=True)
    images = decode_crops([dataset_dir / p for p in rows["crop_path"]], image_size, workers)
    labels = label_indices(rows["label"])
    return CropTensors(torch.from_numpy(images), torch.from_numpy(labels), rows)


def balanced_weights(labels: torch.Tensor, num_classes: int = len(CLASS_NAMES)) -> torch.Tensor:
    """Per-class weights (C,) inversely proportional to class frequency, mean 1 over present classes."""
    counts = torch.bincount(labels, minlength=num_classes).double()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), 0.0)
    present = counts > 0
    return (weights / weights[present].mean()).float()


@dataclass
class EpochBatches:
    """Index batches of one rank for an epoch; the order depends only on (seed, epoch).

    ``batch_size`` is per rank. Like ``DistributedSampler`` the permutation is shared by all ranks
    and padded (by wrapping around) to a multiple of ``world_size``; rank r takes every r-th index.
    ``balanced`` draws N indices with replacement, each class equally likely. A final batch of a
    single sample is dropped (batch norm needs two).
    """

    labels: torch.Tensor
    batch_size: int
    seed: int = 0
    shuffle: bool = True
    balanced: bool = False
    rank: int = 0
    world_size: int = 1

    def indices(self, epoch: int) -> torch.Tensor:
        n = int(self.labels.shape[0])
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        if self.balanced:
            per_sample = balanced_weights(self.labels)[self.labels].double()
            order = torch.multinomial(per_sample, n, replacement=True, generator=g)
        elif self.shuffle:
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        total = -(-n // self.world_size) * self.world_size
        if total > n:
            order = torch.cat([order, order[: total - n]])
        return order[self.rank :: self.world_size]

    def batches(self, epoch: int) -> list[torch.Tensor]:
        idx = self.indices(epoch)
        chunks = list(torch.split(idx, self.batch_size))
        if chunks and len(chunks[-1]) < 2 and len(chunks) > 1:
            chunks.pop()
        return chunks

    def __len__(self) -> int:
        return len(self.batches(0))

    def state_dict(self) -> dict:
        return {"seed": self.seed, "balanced": self.balanced, "world_size": self.world_size}


def iter_eval_batches(
    n: int, batch_size: int, rank: int = 0, world_size: int = 1
) -> Iterator[torch.Tensor]:
    """Index batches of this rank's contiguous-stride shard of ``range(n)`` (no padding, no shuffle)."""
    idx = torch.arange(rank, n, world_size)
    yield from torch.split(idx, batch_size)
