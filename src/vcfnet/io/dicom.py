"""DICOM radiographs: decode (uncompressed, RLE, JPEG, JPEG 2000) and apply the display pipeline.

The grayscale pipeline follows the standard's order (PS3.4 N.2): modality LUT (RescaleSlope /
Intercept or a Modality LUT Sequence) -> VOI LUT (a VOI LUT Sequence, else the first Window Center
/ Width, else the image's min-max) -> MONOCHROME1 inverted, so bone is bright in the uint8 result.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import threading
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing

from vcfnet.errors import InputError
from vcfnet.io.radiograph import (
    PatientInfo,
    Radiograph,
    RadiographInfo,
    check_pixel_count,
    scale_to_uint8,
)
from vcfnet.preprocess import to_gray_uint8

log = logging.getLogger(__name__)

_AGE_RE = re.compile(r"^\s*(\d{1,3})\s*([DWMY]?)\s*$", re.IGNORECASE)
_AGE_UNIT_YEARS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0, "": 1.0}


def _dcmread(path: Path, **kwargs) -> Dataset:
    try:
        return pydicom.dcmread(path, force=True, **kwargs)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{path}: not a readable DICOM file ({exc}); re-export it from PACS"
        ) from exc


def read_dicom_info(path: Path | str) -> RadiographInfo:
    """Shape, spacing and patient from the DICOM header (pixel data not read)."""
    path = Path(path)
    ds = _dcmread(path, stop_before_pixels=True)
    shape = _checked_shape(path, ds)
    return RadiographInfo(path, shape, pixel_spacing_mm(ds), patient_info(ds))


def _checked_shape(path: Path, ds: Dataset) -> tuple[int, int]:
    """(Rows, Columns) from the header; InputError if missing or past ``MAX_PIXELS``."""
    try:
        shape = (int(ds.Rows), int(ds.Columns))
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: DICOM header lacks Rows/Columns; re-export the image") from exc
    check_pixel_count(path, *shape, frames)
    return shape


def read_dicom(path: Path | str) -> Radiograph:
    """Decode a DICOM file into a display-ready Radiograph; InputError if corrupt or without pixels."""
    path = Path(path)
    ds = _dcmread(path)
    if "PixelData" not in ds:
        raise InputError(
            f"{path}: DICOM file has no pixel data (truncated, or not an image such as a report); "
            "re-export the image from PACS or remove it"
        )
    _checked_shape(path, ds)
    try:
        with _quiet_decoders():
            pixels = display_pixels(ds)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc
    except Exception as exc:  # decoders (pylibjpeg, RLE, numpy reshape) raise many types
        reason = (str(exc).strip().splitlines() or [""])[0].rstrip(":")
        raise InputError(
            f"{path}: cannot decode DICOM pixel data ({type(exc).__name__}: {reason}); the file "
            "is corrupt or truncated, or its transfer syntax is unsupported; re-export it "
            "uncompressed"
        ) from exc
    return Radiograph(
        pixels=pixels, source=path, pixel_spacing_mm=pixel_spacing_mm(ds), patient=patient_info(ds)
    )


class _DecodingThreadFilter(logging.Filter):
    """Drops pydicom's records logged by a thread inside :func:`_quiet_decoders`; other threads'
    records pass (a per-thread flag: setting the logger's level is process-wide, and two threads
    decoding at once restored each other's level, leaving pydicom silenced for good)."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.local, "depth", 0)


_DECODING = _DecodingThreadFilter()


@contextlib.contextmanager
def _quiet_decoders():
    """pydicom logs each failing decoder plugin with its traceback before raising; vcfnet reports
    the failure itself in one line, so this thread's pydicom records are held back while pixels
    decode."""
    names = [n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] == "pydicom"]
    for logger in map(logging.getLogger, ["pydicom", *names]):
        if _DECODING not in logger.filters:  # filters do not apply to children's records
            logger.addFilter(_DECODING)
    _DECODING.local.depth = getattr(_DECODING.local, "depth", 0) + 1
    try:
        yield
    finally:
        _DECODING.local.depth -= 1


def display_pixels(ds: Dataset) -> np.ndarray:
    """uint8 (H, W), bone bright, of the first frame of ``ds`` (modality LUT -> VOI -> MONO1 invert)."""
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if frames > 1:
        arr = arr[0]
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if samples > 1 or arr.ndim == 3:
        # colour (pydicom returns RGB for YBR): luminance; no modality/VOI LUT for colour images
        rgb = arr if arr.dtype == np.uint8 else scale_to_uint8(arr)
        return np.ascontiguousarray(to_gray_uint8(rgb))
    if arr.ndim != 2:
        raise InputError(f"unexpected pixel array shape {arr.shape}; expected a 2-D radiograph")
    values = apply_modality_lut(arr, ds)
    pixels = _apply_voi_to_uint8(values, ds)
    if photometric == "MONOCHROME1":
        pixels = 255 - pixels
    return np.ascontiguousarray(pixels)


def _apply_voi_to_uint8(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """VOI LUT Sequence, else first window, else min-max; the VOI output range mapped to 0..255."""
    voi_seq = ds.get("VOILUTSequence")
    if voi_seq and voi_seq[0].get("LUTDescriptor") and voi_seq[0].get("LUTData") is not None:
        try:
            desc = [int(v) for v in voi_seq[0].LUTDescriptor]
            n_entries, first_map = desc[0] or 2**16, desc[1]
            lut = apply_voi(np.arange(first_map, first_map + n_entries, dtype=np.int64), ds)
            out = apply_voi(np.rint(values).astype(np.int64), ds)
            return scale_to_uint8(out, float(lut.min()), float(lut.max()))
        except (NotImplementedError, ValueError, AttributeError, TypeError, IndexError) as exc:
            # IndexError: LUT Data shorter than its descriptor says
            log.warning("ignoring unusable VOI LUT Sequence (%s); trying window/min-max", exc)
    if ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                out = apply_windowing(values, ds)
                lo, hi = apply_windowing(np.array([-np.inf, np.inf]), ds)
            return scale_to_uint8(out, float(lo), float(hi))
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            log.warning("ignoring unusable window (%s); using the image's min-max", exc)
    return scale_to_uint8(values)


def pixel_spacing_mm(ds: Dataset) -> float | None:
    """Row spacing in mm from PixelSpacing, else ImagerPixelSpacing; None if absent or invalid."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        try:
            spacing = float(
                value[0] if isinstance(value, list | tuple | pydicom.multival.MultiValue) else value
            )
        except (TypeError, ValueError, IndexError):
            continue
        if np.isfinite(spacing) and spacing > 0:
            return spacing
    return None


def _dicom_date(value) -> dt.date | None:
    text = str(value or "").strip()[:8]
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date() if len(text) == 8 else None
    except ValueError:
        return None


def parse_age(patient_age: str | None, birth_date=None, study_date=None) -> float | None:
    """Age in years from PatientAge (``070Y``, ``006M``, ...), else from birth and study dates."""
    match = _AGE_RE.match(str(patient_age or ""))
    if match:
        return round(int(match.group(1)) * _AGE_UNIT_YEARS[match.group(2).upper()], 2)
    born, seen = _dicom_date(birth_date), _dicom_date(study_date)
    if born and seen and seen >= born:
        return round((seen - born).days / 365.25, 2)
    return None


def patient_info(ds: Dataset) -> PatientInfo:
    """Raw PatientID, sex ('F' | 'M' | '') and age (years) of a DICOM dataset."""
    sex = str(ds.get("PatientSex", "") or "").strip().upper()[:1]
    study_date = next(
        (
            ds.get(k)
            for k in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
            if ds.get(k)
        ),
        None,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        age = parse_age(ds.get("PatientAge"), ds.get("PatientBirthDate"), study_date)
    return PatientInfo(
        patient_id=str(ds.get("PatientID", "") or "").strip(),
        sex=sex if sex in ("F", "M") else "",
        age=age,
    )
