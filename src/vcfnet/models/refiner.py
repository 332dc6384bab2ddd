"""The localiser's second stage: a small CNN that places the six morphometry points of one
vertebral body in a crop of the film around it, to sub-pixel precision.

Input: (N, 1, S, S) float, one standardised crop per body (``vcfnet.localiser.refine``).
Output: (N, 6, 2) float, the (x, y) of the six points in crop pixels (``(0, 0)`` the centre of the
top-left crop pixel): one heatmap per point at stride 2, read by a soft-argmax (integral
regression), so the coordinates are differentiable and not bound to the heatmap's grid.
"""

from __future__ import annotations

import torch
from torch import nn

from vcfnet.models.localiser import _block

REFINE_TASK = "refine-vertebra-points"
ARCH_PREFIX = "prnet"
#: the widths a refiner may have
WIDTHS: tuple[int, ...] = (8, 12, 16, 24)


class PointRefineNet(nn.Module):
    """Encoder (strides 1..8, dilated context) + top-down decoder to stride 2 + soft-argmax."""

    def __init__(self, n_points: int = 6, width: int = 16) -> None:
        super().__init__()
        w = width
        self.n_points = n_points
        self.enc1 = _block(1, w)  # /1
        self.enc2 = _block(w, 2 * w, stride=2)  # /2
        self.enc3 = _block(2 * w, 4 * w, stride=2)  # /4
        self.enc4 = nn.Sequential(
            _block(4 * w, 6 * w, stride=2), _block(6 * w, 6 * w, dilation=2)
        )  # /8, sees the whole body
        self.lat4 = nn.Conv2d(6 * w, 2 * w, 1)
        self.lat3 = nn.Conv2d(4 * w, 2 * w, 1)
        self.lat2 = nn.Conv2d(2 * w, 2 * w, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.head = nn.Sequential(_block(2 * w, 2 * w), nn.Conv2d(2 * w, n_points, 1))

    def heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, S, S) -> (N, 6, S/2, S/2) logits."""
        e2 = self.enc2(self.enc1(x))
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        p = self.up(self.lat4(e4)) + self.lat3(e3)
        p = self.up(p) + self.lat2(e2)
        return self.head(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.heatmaps(x).float()
        n, k, h, w = logits.shape
        prob = torch.softmax(logits.reshape(n, k, h * w), dim=-1).reshape(n, k, h, w)
        # cell (i, j) of the stride-2 grid covers crop pixels 2i, 2i+1: its centre is 2i + 0.5
        xs = torch.arange(w, dtype=prob.dtype, device=prob.device) * 2 + 0.5
        ys = torch.arange(h, dtype=prob.dtype, device=prob.device) * 2 + 0.5
        px = (prob.sum(dim=2) * xs).sum(dim=-1)
        py = (prob.sum(dim=3) * ys).sum(dim=-1)
        return torch.stack([px, py], dim=-1)


def arch_name(width: int) -> str:
    return f"{ARCH_PREFIX}{width}"


def build_refiner(width: int) -> PointRefineNet:
    return PointRefineNet(n_points=6, width=width)
