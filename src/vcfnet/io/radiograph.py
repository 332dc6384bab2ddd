"""A decoded radiograph (display-ready uint8 pixels, bone bright) and what its header says; the
patient identity read from DICOM stays in memory here and is pseudonymised by its users."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vcfnet.errors import InputError


@dataclass(frozen=True)
class PatientInfo:
    """Raw patient identity from the file; in memory only, never written out as is."""

    patient_id: str = ""
    sex: str = ""  # 'F' | 'M' | ''
    age: float | None = None  # years


@dataclass(frozen=True)
class Radiograph:
    """A decoded radiograph: ``pixels`` uint8 (H, W), display-ready, bone bright."""

    pixels: np.ndarray
    source: Path
    pixel_spacing_mm: float | None = None  # row spacing
    patient: PatientInfo = field(default_factory=PatientInfo)

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[0], self.pixels.shape[1]

    @property
    def info(self) -> RadiographInfo:
        return RadiographInfo(self.source, self.shape, self.pixel_spacing_mm, self.patient)


@dataclass(frozen=True)
class RadiographInfo:
    """What a radiograph's header says, without decoding pixels: shape (H, W), spacing, patient."""

    source: Path
    shape: tuple[int, int]
    pixel_spacing_mm: float | None = None
    patient: PatientInfo = field(default_factory=PatientInfo)


def scale_to_uint8(arr: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Linearly map ``arr`` from [lo, hi] (default: its min and max) to uint8 (H, W), clipping."""
    arr = np.asarray(arr, dtype=np.float64)
    lo = float(np.min(arr)) if lo is None else float(lo)
    hi = float(np.max(arr)) if hi is None else float(hi)
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    out = (arr - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


#: the most pixels vcfnet decodes in one radiograph (a 43 x 43 cm detector at 0.05 mm has 74 M);
#: a header claiming more is refused before any decoding (decompression bombs)
MAX_PIXELS = 80_000_000


def check_pixel_count(path: Path, height: int, width: int, frames: int = 1) -> None:
    """InputError when a header claims more than ``MAX_PIXELS`` pixels (or none)."""
    if height < 1 or width < 1:
        raise InputError(
            f"{path}: the header says the image is {width}x{height} pixels; re-export it"
        )
    if height * width * max(frames, 1) > MAX_PIXELS:
        raise InputError(
            f"{path}: the header claims {width}x{height} pixels (x{max(frames, 1)} frames), more "
            f"pixels than the {MAX_PIXELS:,} vcfnet decodes; a radiograph is far smaller: "
            "re-export it or remove it"
        )
