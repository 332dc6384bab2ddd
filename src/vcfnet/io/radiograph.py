"""A decoded radiograph (display-ready uint8 pixels, bone bright) and what its header says; the
patient identity read from DICOM stays in memory here and is pseudonymised by its users."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


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
