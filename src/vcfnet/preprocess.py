"""How a boxed vertebra becomes a model input (one implementation, one default per parameter).

Two specifications, each owned by the artifact it describes:

- :class:`CropSpec` (margin, cache size) belongs to the *dataset*: ``vcfnet prepare`` cuts the
  crops with it and records it in ``dataset.json``; training copies it into the checkpoint.
- :class:`InputSpec` (size, mean, std, channels) belongs to the *model*: chosen at training time
  and carried by the checkpoint and the ONNX metadata.

Pipeline for one box on a display-ready radiograph (uint8, bone bright): ``crop_box`` (box +
relative margin, clipped) -> ``resize_long_side`` (the cached crop, stored as 8-bit PNG) ->
``resize_square`` (model size; as the paper, a plain resize) -> ``normalize_batch`` (gray
replicated to the model's channels, ImageNet mean/std; ``normalize_array`` is the same in NumPy,
for onnxruntime).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
from PIL import Image

from vcfnet.errors import InputError
from vcfnet.geometry import Box, crop_box

#: relative margin added on each side of a box
DEFAULT_MARGIN = 0.1
#: long side of the cached crop, pixels
DEFAULT_CACHE_SIZE = 256
#: square model input, pixels (the paper: 224)
DEFAULT_IMAGE_SIZE = 224
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _from_dict(cls, data: dict):
    known = {f.name for f in fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in known}
    for key in ("mean", "std"):
        if key in kwargs:
            kwargs[key] = tuple(float(x) for x in kwargs[key])
    return cls(**kwargs)


@dataclass(frozen=True)
class CropSpec:
    """How a box is cut from a radiograph and cached; owned by the dataset (``dataset.json``)."""

    margin: float = DEFAULT_MARGIN
    cache_size: int = DEFAULT_CACHE_SIZE

    def to_dict(self) -> dict:
        return {"margin": self.margin, "cache_size": self.cache_size}

    @classmethod
    def from_dict(cls, data: dict) -> CropSpec:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class InputSpec:
    """The model's input; owned by the model (checkpoint and ONNX metadata)."""

    image_size: int = DEFAULT_IMAGE_SIZE
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channels: int = 3  # gray replicated to this many channels

    def to_dict(self) -> dict:
        return {
            "image_size": self.image_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "channels": self.channels,
        }

    @classmethod
    def from_dict(cls, data: dict) -> InputSpec:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class Preprocessing:
    """A model artifact's whole input contract: the dataset's CropSpec + the model's InputSpec."""

    crop: CropSpec = field(default_factory=CropSpec)
    input: InputSpec = field(default_factory=InputSpec)

    margin = property(lambda self: self.crop.margin)
    cache_size = property(lambda self: self.crop.cache_size)
    image_size = property(lambda self: self.input.image_size)
    mean = property(lambda self: self.input.mean)
    std = property(lambda self: self.input.std)
    channels = property(lambda self: self.input.channels)

    def to_dict(self) -> dict:
        return {"crop_spec": self.crop.to_dict(), "input_spec": self.input.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        """From ``to_dict`` output, or the flat layout of vcfnet <= 0.1 checkpoints."""
        if "crop_spec" in data or "input_spec" in data:
            crop, inp = data.get("crop_spec", {}), data.get("input_spec", {})
        else:
            crop = inp = data
        return cls(CropSpec.from_dict(crop), InputSpec.from_dict(inp))


def resize_long_side(crop: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 (h, w) crop so its long side is ``size``, keeping the aspect ratio."""
    h, w = crop.shape[:2]
    scale = size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    return np.asarray(Image.fromarray(crop).resize((new_w, new_h), Image.Resampling.BILINEAR))


def make_cache_crop(image: np.ndarray, box: Box, spec: CropSpec) -> np.ndarray:
    """The crop ``prepare`` stores: uint8 (h, w), long side ``spec.cache_size``."""
    return resize_long_side(
        np.ascontiguousarray(crop_box(image, box, spec.margin)), spec.cache_size
    )


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


def _mean_std(spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """float32 (1, C, 1, 1) mean and std for ``spec.channels`` channels."""
    shape = (1, spec.channels, 1, 1)
    mean = np.asarray(spec.mean[: spec.channels], dtype=np.float32).reshape(shape)
    return mean, np.asarray(spec.std[: spec.channels], dtype=np.float32).reshape(shape)


def normalize_batch(batch, spec: InputSpec):
    """uint8 (N, H, W) or (N, 1, H, W) -> float32 tensor (N, C, H, W) normalised with mean/std."""
    import torch  # torch-free callers (the ONNX path) use normalize_array

    x = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.asarray(batch))
    if x.ndim == 3:
        x = x.unsqueeze(1)
    x = x.float().div_(255.0)
    mean, std = (torch.from_numpy(a) for a in _mean_std(spec))
    return (x.expand(-1, spec.channels, -1, -1) - mean) / std


def normalize_array(batch: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``normalize_batch`` in NumPy (same float32 operations, same values), for runtimes without torch.

    uint8 (N, H, W) or (N, 1, H, W) -> float32 (N, C, H, W).
    """
    x = np.asarray(batch, dtype=np.float32) / np.float32(255.0)
    if x.ndim == 3:
        x = x[:, None]
    mean, std = _mean_std(spec)
    return (x - mean) / std
