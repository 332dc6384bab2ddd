"""The localiser's second stage at inference: a crop of the film (at its own resolution) around
each body the first stage found, and the refine network's six points mapped back to the film.

NumPy and SciPy only (the ONNX path runs without torch). A crop is an affine map
``film = centre + R(angle) * scale * (crop - (S - 1) / 2)`` sampled bilinearly (zeros outside the
film), standardised per crop so that one site's contrast does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import map_coordinates

from vcfnet.localiser.targets import Body

REFINER_KEY = "refiner"


@dataclass(frozen=True)
class RefineSpec:
    """The refine stage's input contract (saved with its weights)."""

    crop: int = 64  # crop side, pixels
    margin: float = 1.5  # crop side / the box's longer side
    width: int = 16  # network width (``vcfnet.models.refiner``)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RefineSpec:
        return cls(**{k: d[k] for k in ("crop", "margin", "width") if k in d})


@dataclass(frozen=True)
class CropFrame:
    """Where a crop lies in the film: its centre (x, y), film pixels per crop pixel, angle (rad)."""

    centre: np.ndarray  # (2,)
    scale: float
    angle: float = 0.0

    def _rot(self) -> np.ndarray:
        c, s = np.cos(self.angle), np.sin(self.angle)
        return np.array([[c, -s], [s, c]])

    def to_film(self, xy: np.ndarray, size: int) -> np.ndarray:
        """Crop (..., 2) -> film (..., 2)."""
        return self.centre + (np.asarray(xy) - (size - 1) / 2) @ (self.scale * self._rot()).T

    def to_crop(self, xy: np.ndarray, size: int) -> np.ndarray:
        """Film (..., 2) -> crop (..., 2)."""
        return (np.asarray(xy) - self.centre) @ self._rot() / self.scale + (size - 1) / 2


def frame_for_box(box: np.ndarray, spec: RefineSpec) -> CropFrame:
    """The crop frame of a box (x1, y1, x2, y2): centred on it, ``margin`` x its longer side."""
    box = np.asarray(box, float)
    side = spec.margin * max(box[2] - box[0], box[3] - box[1], 1.0)
    return CropFrame((box[:2] + box[2:]) / 2, side / spec.crop)


def sample_crop(pixels: np.ndarray, frame: CropFrame, size: int) -> np.ndarray:
    """float32 (size, size) bilinear crop of a (H, W) film, in [0, 1] for uint8 input."""
    g = np.arange(size, dtype=float)
    uv = np.stack(np.meshgrid(g, g, indexing="xy"), axis=-1)  # (S, S, 2) as (x, y)
    xy = frame.to_film(uv, size)
    out = map_coordinates(
        pixels.astype(np.float32, copy=False), [xy[..., 1], xy[..., 0]], order=1, cval=0.0
    )
    return out.astype(np.float32) / np.float32(255.0 if pixels.dtype == np.uint8 else 1.0)


def standardise(crops: np.ndarray) -> np.ndarray:
    """float (N, S, S) -> float32 (N, 1, S, S), zero mean and unit std per crop."""
    c = crops.astype(np.float32)
    mean = c.mean(axis=(1, 2), keepdims=True)
    std = c.std(axis=(1, 2), keepdims=True) + np.float32(1e-3)
    return ((c - mean) / std)[:, None]


class Refiner:
    """Run the refine network (a torch module or an ONNX Runtime session) on a film's bodies."""

    def __init__(self, spec: RefineSpec, model=None, session=None) -> None:
        self.spec, self.model, self.session = spec, model, session

    def points(self, x: np.ndarray) -> np.ndarray:
        """float32 (N, 1, S, S) -> (N, 6, 2) crop pixels."""
        if self.session is not None:
            name = self.session.get_inputs()[0].name
            return np.asarray(self.session.run(None, {name: x})[0], float)
        import torch

        with torch.inference_mode():
            return self.model(torch.from_numpy(x)).float().numpy().astype(float)

    def refine(self, pixels: np.ndarray, bodies: Sequence[Body]) -> None:
        """Replace each body's points (film pixels) by the refine network's, in place."""
        if not bodies:
            return
        size = self.spec.crop
        frames = [frame_for_box(b.box, self.spec) for b in bodies]
        crops = np.stack([sample_crop(pixels, f, size) for f in frames])
        pts = self.points(standardise(crops))
        for b, f, p in zip(bodies, frames, pts, strict=True):
            b.points = f.to_film(p, size)
