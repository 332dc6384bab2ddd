"""The vertebra localiser: a small encoder-decoder CNN with CenterNet-style heads at stride 4.

Input: (N, 1, H, W) float, the whole film letterboxed to the model's input size (e.g. 320x256).
Output: (N, C, H/4, W/4) raw maps, channels in ``vcfnet.localiser.targets.head_channels`` order
(centre heatmap, centre offset, level logits, six points and box relative to the centre, one
heatmap and offset per point type), decoded by ``vcfnet.localiser.targets.decode``.

Why this and not Keypoint R-CNN: docs/localisation.md.
"""

from __future__ import annotations

import torch
from torch import nn

from vcfnet.localiser.targets import head_channels

LOCALISE_TASK = "localise-vertebrae"
ARCH_PREFIX = "vhnet"
STRIDE = 4
#: input pixels per regression unit (about a lumbar body's height at 320 rows)
REG_SCALE = 16.0


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class VertebraHeatmapNet(nn.Module):
    """Encoder (strides 2..32, dilated context at the bottom) + FPN-style decoder to stride 4."""

    def __init__(self, n_levels: int = 8, width: int = 16) -> None:
        super().__init__()
        w = width
        self.n_levels = n_levels
        self.enc1 = _block(1, w, stride=2)  # /2
        self.enc2 = _block(w, 2 * w, stride=2)  # /4
        self.enc3 = _block(2 * w, 4 * w, stride=2)  # /8
        self.enc4 = _block(4 * w, 6 * w, stride=2)  # /16
        self.enc5 = nn.Sequential(
            _block(6 * w, 8 * w, stride=2), _block(8 * w, 8 * w, dilation=2)
        )  # /32, wide context for the level
        self.lat5 = nn.Conv2d(8 * w, 4 * w, 1)
        self.lat4 = nn.Conv2d(6 * w, 4 * w, 1)
        self.lat3 = nn.Conv2d(4 * w, 4 * w, 1)
        self.lat2 = nn.Conv2d(2 * w, 4 * w, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.fuse = _block(4 * w, 2 * w)
        n_out = sum(head_channels(n_levels).values())
        self.head = nn.Sequential(
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(2 * w, n_out, 1)
        )
        with torch.no_grad():  # heatmap logits start at a low prior (CenterNet's -2.19)
            bias = self.head[-1].bias
            bias[0] = -2.19
            c = head_channels(n_levels)
            start = sum(list(c.values())[:5])
            bias[start : start + 6] = -2.19

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        e5 = self.enc5(e4)
        p = self.up(self.lat5(e5)) + self.lat4(e4)
        p = self.up(p) + self.lat3(e3)
        p = self.up(p) + self.lat2(e2)
        return self.head(self.fuse(p))


def arch_name(width: int) -> str:
    return f"{ARCH_PREFIX}{width}"


def build_localiser(n_levels: int, width: int) -> VertebraHeatmapNet:
    return VertebraHeatmapNet(n_levels=n_levels, width=width)


#: the widths a checkpoint may name (``vhnet12`` .. ``vhnet32``)
WIDTHS: tuple[int, ...] = (8, 12, 16, 24, 32)
