"""read_radiograph on PNG (8/16-bit, gray/RGB/RGBA), JPEG, DICOM detection and unreadable files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.io.dicom_fixtures import marker_image, write_dicom
from vcfnet.errors import InputError
from vcfnet.io.images import find_images, read_radiograph, read_radiograph_info


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


def _bomb_png(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims ``width`` x ``height`` (an IDAT of one empty row)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
    path.write_bytes(raw + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_a_one_line_error(tmp_path):
    bomb = _bomb_png(tmp_path / "bomb.png", 60000, 60000)
    assert bomb.stat().st_size < 200
    for read in (read_radiograph, read_radiograph_info):
        with pytest.raises(InputError, match=r"claims .*more pixels than"):
            read(bomb)


def test_a_dicom_header_claiming_too_many_pixels_is_refused(tmp_path):
    from vcfnet.io.radiograph import MAX_PIXELS

    path = write_dicom(tmp_path / "big.dcm", marker_image(16, 16))
    import pydicom

    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = 65535  # with its 16x16 pixel data: a lying header
    ds.save_as(path)
    assert MAX_PIXELS < 65535 * 65535
    with pytest.raises(InputError, match="65535x65535 pixels"):
        read_radiograph(path)


def test_links_to_files_outside_the_folder_are_named(tmp_path, caplog):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(outside / "x.png")
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "inside.png")
    (folder / "link.png").symlink_to(outside / "x.png")
    assert [p.name for p in find_images(folder)] == ["inside.png", "link.png"]
    assert "1 file(s)" in caplog.text and "link.png" in caplog.text
