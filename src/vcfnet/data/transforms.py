"""Preprocessing shared by ``prepare``, ``train``, ``predict`` and ``evaluate`` (one implementation).

Pipeline for one boxed vertebra on a display-ready radiograph (uint8, bone bright):
``crop_box`` (box + relative margin, clipped) -> ``resize_long_side`` (the cached crop, stored as
8-bit PNG) -> ``resize_square`` (model size, as the paper: plain resize to 224x224) ->
``normalize_batch`` (gray replicated to 3 channels, ImageNet mean/std; ``normalize_array`` is the
same in NumPy, for onnxruntime).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
from PIL import Image

from vcfnet.errors import InputError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Preprocessing:
    """How a box becomes a model input; stored in every checkpoint and dataset.json."""

    margin: float = 0.1  # relative margin added on each side of the box
    cache_size: int = 256  # long side of the cached crop, pixels
    image_size: int = 224  # square model input, pixels
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channels: int = 3  # gray replicated to this many channels

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("mean", "std"):
            if key in kwargs:
                kwargs[key] = tuple(float(x) for x in kwargs[key])
        return cls(**kwargs)


def validate_box(box: Box, shape: tuple[int, int]) -> None:
    """Raise InputError if ``box`` (x1, y1, x2, y2) has no area or lies outside an image of ``shape`` (H, W)."""
    x1, y1, x2, y2 = box
    h, w = shape[:2]
    if not (x2 > x1 and y2 > y1):
        raise InputError(f"box {tuple(box)} has zero or negative area (need x1 < x2 and y1 < y2)")
    if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
        raise InputError(f"box {tuple(box)} lies outside the {w}x{h} image")


def expand_box(box: Box, margin: float, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Box grown by ``margin`` x its width/height on each side, rounded and clipped to ``shape`` (H, W)."""
    validate_box(box, shape)
    x1, y1, x2, y2 = (float(v) for v in box)
    h, w = shape[:2]
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    ex1 = max(0, int(np.floor(x1 - dx)))
    ey1 = max(0, int(np.floor(y1 - dy)))
    ex2 = min(w, int(np.ceil(x2 + dx)))
    ey2 = min(h, int(np.ceil(y2 + dy)))
    return ex1, ey1, ex2, ey2


def crop_box(image: np.ndarray, box: Box, margin: float = 0.1) -> np.ndarray:
    """Crop (h, w) from ``image`` (H, W) around ``box`` plus relative ``margin``; a view, not a copy."""
    x1, y1, x2, y2 = expand_box(box, margin, image.shape)
    return image[y1:y2, x1:x2]


def resize_long_side(crop: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 (h, w) crop so its long side is ``size``, keeping the aspect ratio."""
    h, w = crop.shape[:2]
    scale = size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    return np.asarray(Image.fromarray(crop).resize((new_w, new_h), Image.Resampling.BILINEAR))


def make_cache_crop(image: np.ndarray, box: Box, pre: Preprocessing) -> np.ndarray:
    """The crop ``prepare`` stores: uint8 (h, w), long side ``pre.cache_size``."""
    return resize_long_side(np.ascontiguousarray(crop_box(image, box, pre.margin)), pre.cache_size)


def to_gray_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 (h, w) from gray, gray+alpha, RGB or RGBA uint8 arrays (luminance, alpha dropped)."""
    if image.ndim == 2:
        return image.astype(np.uint8, copy=False)
    if image.ndim == 3 and image.shape[2] in (2, 4):
        image = image[..., :-1]
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0].astype(np.uint8, copy=False)
    if image.ndim == 3 and image.shape[2] == 3:
        return np.asarray(Image.fromarray(image.astype(np.uint8)).convert("L"))
    raise InputError(f"unsupported image shape {image.shape}; expected gray or RGB(A)")


def resize_square(crop: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 (h, w) crop to (size, size), as the paper (no aspect preservation)."""
    if crop.shape[:2] == (size, size):
        return crop
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BILINEAR))


def stack_crops(crops: Sequence[np.ndarray], size: int) -> np.ndarray:
    """uint8 (N, size, size) from crops of any size (gray or colour)."""
    out = np.empty((len(crops), size, size), dtype=np.uint8)
    for i, crop in enumerate(crops):
        out[i] = resize_square(to_gray_uint8(crop), size)
    return out


def _mean_std(pre: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """float32 (1, C, 1, 1) mean and std for ``pre.channels`` channels."""
    shape = (1, pre.channels, 1, 1)
    mean = np.asarray(pre.mean[: pre.channels], dtype=np.float32).reshape(shape)
    return mean, np.asarray(pre.std[: pre.channels], dtype=np.float32).reshape(shape)


def normalize_batch(batch, pre: Preprocessing):
    """uint8 (N, H, W) or (N, 1, H, W) -> float32 tensor (N, C, H, W) normalised with mean/std."""
    import torch

    x = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.asarray(batch))
    if x.ndim == 3:
        x = x.unsqueeze(1)
    x = x.float().div_(255.0)
    mean, std = (torch.from_numpy(a) for a in _mean_std(pre))
    return (x.expand(-1, pre.channels, -1, -1) - mean) / std


def normalize_array(batch: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """``normalize_batch`` in NumPy (same float32 operations, same values), for runtimes without torch.

    uint8 (N, H, W) or (N, 1, H, W) -> float32 (N, C, H, W).
    """
    x = np.asarray(batch, dtype=np.float32) / np.float32(255.0)
    if x.ndim == 3:
        x = x[:, None]
    mean, std = _mean_std(pre)
    return (x - mean) / std
