"""read_radiograph on PNG (8/16-bit, gray/RGB/RGBA), JPEG, DICOM detection and unreadable files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from tests.io.dicom_fixtures import marker_image, write_dicom
from vcfnet.errors import InputError
from vcfnet.io.images import find_images, read_radiograph


def _marker8(h: int = 64, w: int = 48) -> np.ndarray:
    img = np.full((h, w), 30, dtype=np.uint8)
    img[: h // 4, : w // 4] = 230
    return img


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P"])
def test_png_8bit_modes(tmp_path, mode):
    path = tmp_path / f"x_{mode}.png"
    Image.fromarray(_marker8()).convert(mode).save(path)
    rad = read_radiograph(path)
    assert rad.pixels.dtype == np.uint8 and rad.pixels.shape == (64, 48)
    assert abs(int(rad.pixels[2, 2]) - 230) <= 2 and abs(int(rad.pixels[-2, -2]) - 30) <= 2
    assert rad.pixel_spacing_mm is None and rad.patient.patient_id == ""


def test_png_16bit_minmax(tmp_path):
    img = marker_image(64, 48, high=40000, low=1000)
    path = tmp_path / "x16.png"
    Image.fromarray(img).save(path)
    assert Image.open(path).mode.startswith("I")
    px = read_radiograph(path).pixels
    assert px[2, 2] == 255 and px[-2, -2] == 0


def test_jpeg(tmp_path):
    path = tmp_path / "x.jpg"
    Image.fromarray(_marker8()).save(path, quality=95)
    px = read_radiograph(path).pixels
    assert px[2, 2] > 200 and px[-2, -2] < 60


def test_dicom_detected_without_extension_and_by_magic(tmp_path):
    src = write_dicom(tmp_path / "a.dcm", marker_image(64, 48))
    shutil.copy(src, tmp_path / "IM0001")
    shutil.copy(src, tmp_path / "scan.img")
    for name in ("IM0001", "scan.img"):
        assert read_radiograph(tmp_path / name).pixels[2, 2] == 255
    assert [p.name for p in find_images(tmp_path)] == ["IM0001", "a.dcm", "scan.img"]


def test_unreadable_png(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(InputError, match=r"broken\.png"):
        read_radiograph(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_radiograph(tmp_path / "nope.png")
