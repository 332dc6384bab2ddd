"""Read a radiograph from DICOM, PNG or JPEG into a display-ready 8-bit array (bone bright).

``read_radiograph(path)`` picks the decoder by content (the ``DICM`` magic at byte 128) and by
extension (``.dcm``, ``.dicom`` or none -> DICOM; anything else -> Pillow, then DICOM as a last
resort). Patient identity read from DICOM stays in memory (:class:`PatientInfo`); ``prepare`` turns
it into pseudonyms before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vcfnet.errors import InputError
from vcfnet.io.radiograph import (
    MAX_PIXELS,
    Radiograph,
    RadiographInfo,
    check_pixel_count,
    scale_to_uint8,
)
from vcfnet.preprocess import to_gray_uint8

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")

_EXIF_ORIENTATION = 0x0112

#: Extensions read as DICOM (besides files with no extension).
DICOM_SUFFIXES: frozenset[str] = frozenset({".dcm", ".dicom", ".dic", ".ima"})
#: Extensions read with Pillow.
RASTER_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
#: Every extension ``find_images`` treats as a radiograph.
IMAGE_SUFFIXES: frozenset[str] = DICOM_SUFFIXES | RASTER_SUFFIXES


def has_dicom_magic(path: Path | str) -> bool:
    """True if the file has the DICOM ``DICM`` prefix after its 128-byte preamble."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def is_dicom_path(path: Path | str) -> bool:
    """Whether ``path`` should be decoded as DICOM (magic bytes, ``.dcm``-like or no extension)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in RASTER_SUFFIXES:
        return False
    return has_dicom_magic(path) or suffix in DICOM_SUFFIXES or suffix == ""


def pil_to_gray_uint8(img: Image.Image) -> np.ndarray:
    """uint8 (H, W) from any Pillow image: 8-bit modes by luminance, 16-bit/float by min-max."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return scale_to_uint8(np.asarray(img))
    if img.mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGBA" if "transparency" in img.info or img.mode == "PA" else "RGB")
    return np.ascontiguousarray(to_gray_uint8(np.asarray(img)))


def _bomb_error(path: Path, exc: Exception) -> InputError:
    """Pillow's own decompression-bomb guard fired while opening (before ours could read size)."""
    return InputError(
        f"{path}: the header claims more pixels than the {MAX_PIXELS:,} vcfnet decodes ({exc}); "
        "a radiograph is far smaller: re-export it or remove it"
    )


def read_raster(path: Path | str) -> Radiograph:
    """PNG (8/16-bit; gray, RGB, RGBA), JPEG, TIFF or BMP -> Radiograph (no patient data)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            check_pixel_count(path, img.height, img.width, getattr(img, "n_frames", 1))
            img = ImageOps.exif_transpose(img)
            pixels = pil_to_gray_uint8(img)
    except Image.DecompressionBombError as exc:  # Pillow's own guard, past ours
        raise _bomb_error(path, exc) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(
            f"{path}: cannot read image ({exc}); re-export it as PNG or DICOM, or remove it"
        ) from exc
    return Radiograph(pixels=pixels, source=path)


def read_radiograph(path: Path | str) -> Radiograph:
    """Decode a DICOM, PNG or JPEG radiograph; InputError naming the file and what to do."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found; check the --images folder")
    if not is_dicom_path(path):
        try:
            return read_raster(path)
        except InputError:
            if path.suffix.lower() in RASTER_SUFFIXES:
                raise
            # an unknown extension that Pillow cannot read: last chance, DICOM without preamble
    from vcfnet.io.dicom import read_dicom  # imported on first use: pydicom takes ~0.3 s to load

    return read_dicom(path)


def map_threads(fn: Callable[[_T], _R], items: Iterable[_T], workers: int) -> list[_R]:
    """``[fn(x) for x in items]`` on up to ``workers`` threads, in order; the first error is raised.

    For decoding images: Pillow releases the GIL while it decodes.
    """
    items = list(items)
    if workers < 2 or len(items) < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def read_radiograph_info(path: Path | str) -> RadiographInfo:
    """Shape, spacing and patient of a radiograph from its header only (fast; no pixel decoding)."""
    path = Path(path)
    if is_dicom_path(path):
        from vcfnet.io.dicom import read_dicom_info

        return read_dicom_info(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
            check_pixel_count(path, height, width, getattr(img, "n_frames", 1))
            if img.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):  # rotated by 90 degrees
                width, height = height, width
    except Image.DecompressionBombError as exc:
        raise _bomb_error(path, exc) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return read_radiograph(path).info
    return RadiographInfo(source=path, shape=(height, width))


def find_images(folder: Path | str) -> list[Path]:
    """Radiograph files under ``folder`` (recursive, sorted): known extensions, or DICOM magic."""
    folder = Path(folder)
    found = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        suffix = p.suffix.lower()
        if suffix in IMAGE_SUFFIXES or (
            suffix not in {".xml", ".csv", ".txt", ".json"} and has_dicom_magic(p)
        ):
            found.append(p)
    _warn_links_outside(folder, found)
    return found


def _warn_links_outside(folder: Path, files: list[Path]) -> None:
    """Warn about files that are links to somewhere outside ``folder`` (they are read as well)."""
    root = folder.resolve()
    outside = [p for p in files if p.is_symlink() and not p.resolve().is_relative_to(root)]
    if outside:
        log.warning(
            "%d file(s) in %s are links to files outside it and are read as well (first: %s)",
            len(outside),
            folder,
            outside[0].name,
        )
