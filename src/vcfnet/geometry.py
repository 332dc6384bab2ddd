"""Boxes on a radiograph: validate, expand by a relative margin, clip, crop.

One implementation shared by the classifier's crops, the Grad-CAM placement and (later) the
localiser. A box is ``(x1, y1, x2, y2)`` in pixels, x to the right and y down.
"""

from __future__ import annotations

import numpy as np

from vcfnet.errors import InputError

Box = tuple[float, float, float, float]


#: how far (fraction of the image side) a box may reach beyond the image; LabelImg clips its own
#: boxes, so more than this is an XML paired with the wrong or a resized image
OUTSIDE_TOLERANCE = 0.02


def validate_box(box: Box, shape: tuple[int, int]) -> None:
    """Raise InputError unless ``box`` has finite coordinates, an area, and lies on an image of
    ``shape`` (H, W), reaching beyond it by at most ``OUTSIDE_TOLERANCE`` of a side."""
    x1, y1, x2, y2 = box
    h, w = shape[:2]
    if not all(np.isfinite(v) for v in box):
        raise InputError(f"box {tuple(box)} has a coordinate that is not a finite number")
    if not (x2 > x1 and y2 > y1):
        raise InputError(f"box {tuple(box)} has zero or negative area (need x1 < x2 and y1 < y2)")
    if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
        raise InputError(f"box {tuple(box)} lies outside the {w}x{h} image")
    tx, ty = OUTSIDE_TOLERANCE * w, OUTSIDE_TOLERANCE * h
    if x1 < -tx or y1 < -ty or x2 > w + tx or y2 > h + ty:
        raise InputError(
            f"box {tuple(box)} reaches beyond the {w}x{h} image (more than "
            f"{OUTSIDE_TOLERANCE:.0%} of a side): is the XML paired with the right, unresized image?"
        )


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


def crop_box(image: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """Crop (h, w) from ``image`` (H, W) around ``box`` plus relative ``margin``; a view, not a copy."""
    x1, y1, x2, y2 = expand_box(box, margin, image.shape)
    return image[y1:y2, x1:x2]
