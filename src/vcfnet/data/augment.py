"""Batched augmentation on tensors: random horizontal flip, vertical flip and rotation.

The paper enlarges its training set with horizontal flips, vertical flips and rotations by random
angles. Here the whole batch is augmented at once on tensors (no PIL, no per-pixel Python), with
randomness drawn only from a passed ``torch.Generator`` so runs are reproducible and resumable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augmentation:
    """Which augmentations are on; each flip has probability 0.5, angles are uniform in ±degrees."""

    hflip: bool = True
    vflip: bool = True
    rotation_degrees: float = 15.0

    @property
    def enabled(self) -> bool:
        return self.hflip or self.vflip or self.rotation_degrees > 0


def rotate_batch(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image of float ``x`` (N, C, H, W) by ``degrees`` (N,) about its centre; corners fill 0."""
    rad = degrees.to(torch.float32) * (math.pi / 180.0)
    cos, sin = torch.cos(rad), torch.sin(rad)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augment_batch(
    images: torch.Tensor, aug: Augmentation, generator: torch.Generator
) -> torch.Tensor:
    """Augment a batch (N, H, W) or (N, C, H, W), uint8 or float; returns the same shape and dtype.

    Random numbers are drawn in a fixed order (hflip, vflip, angles) whatever is switched on, so a
    given generator state always yields the same augmentation of a given sample.
    """
    x = images
    n = x.shape[0]
    hflip_draw = torch.rand(n, generator=generator) < 0.5
    vflip_draw = torch.rand(n, generator=generator) < 0.5
    angles = torch.empty(n).uniform_(-1.0, 1.0, generator=generator) * float(aug.rotation_degrees)
    if aug.hflip:
        x = torch.where(hflip_draw.view(-1, *([1] * (x.ndim - 1))), x.flip(-1), x)
    if aug.vflip:
        x = torch.where(vflip_draw.view(-1, *([1] * (x.ndim - 1))), x.flip(-2), x)
    if aug.rotation_degrees > 0:
        squeeze = x.ndim == 3
        xf = (x.unsqueeze(1) if squeeze else x).float()
        xf = rotate_batch(xf, angles)
        if squeeze:
            xf = xf.squeeze(1)
        x = (
            xf.round_().clamp_(0, 255).to(images.dtype)
            if not images.is_floating_point()
            else xf.to(images.dtype)
        )
    return x
