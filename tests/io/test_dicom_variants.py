"""DICOM variants: multi-frame, colour (RGB, YBR_FULL, YBR_FULL_422), MONOCHROME1 without a window,
unusable VOI LUTs, signed pixels, and files written by tools other than pydicom.

Expected pixels are computed here from the raw values (or the raw Pixel Data bytes) with the
standard's formulas, not with vcfnet's or pydicom's display functions:

* grey from colour: ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (equal to the Y of YBR_FULL);
* window: PS3.3 C.11.2.1.2.1 linear function, output range mapped to 0..255;
* no window: the image's min-max mapped to 0..255; MONOCHROME1 then inverted.

The third-party files ship inside pydicom's wheel (``pydicom/data/test_files``; its README says "I
believe there is no restriction on using any of these files", GDCM files under GDCM's BSD licence)
and are opened with ``download=False``: no network.
"""

from __future__ import annotations

import logging

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.io.dicom_fixtures import marker_image, write_dicom
from vcfnet.io.images import read_radiograph

#: SC_rgb*.dcm test pattern (pydicom test data): the colour of each 10-row band, top to bottom.
SC_RGB_BANDS = np.array(
    [
        [255, 0, 0],
        [255, 128, 128],
        [0, 255, 0],
        [128, 255, 128],
        [0, 0, 255],
        [128, 128, 255],
        [0, 0, 0],
        [64, 64, 64],
        [192, 192, 192],
        [255, 255, 255],
    ]
)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of uint8 RGB (..., 3) as float."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _minmax_uint8(values: np.ndarray) -> np.ndarray:
    v = values.astype(np.float64)
    return np.rint((v - v.min()) / (v.max() - v.min()) * 255).astype(np.uint8)


def _window_uint8(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (VOI LUT Function LINEAR), output 0..255."""
    y = (values.astype(np.float64) - (center - 0.5)) / (width - 1) + 0.5
    return np.rint(np.clip(y, 0, 1) * 255).astype(np.uint8)


def _pydicom_file(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:  # a wheel without test data would be a broken install, not an optional tool
        pytest.fail(f"{name} not found in pydicom's bundled test files (pydicom/data/test_files)")
    return path


def _assert_close(actual: np.ndarray, expected: np.ndarray, atol: int) -> None:
    assert actual.dtype == np.uint8
    assert actual.shape == expected.shape
    diff = np.abs(actual.astype(int) - expected.astype(int))
    assert diff.max() <= atol, f"max |difference| {diff.max()} > {atol}"


# --- multi-frame: display_pixels documents "the first frame" -------------------------------------


def test_multiframe_grayscale_shows_the_first_frame(tmp_path):
    first = marker_image()
    second = (4095 - marker_image(high=3000)).astype(np.uint16)  # inverted, different range
    path = write_dicom(tmp_path / "mf.dcm", np.stack([first, second]))
    assert int(pydicom.dcmread(path).NumberOfFrames) == 2
    px = read_radiograph(path).pixels
    assert px.shape == first.shape
    np.testing.assert_array_equal(px, _minmax_uint8(first))  # min-max of frame 0 alone


def test_multiframe_rgb_rle_written_by_gdcm_shows_the_first_frame():
    # SC_rgb_rle_2frame.dcm: GDCM-encoded RLE; frame 0 = the colour bars, frame 1 = their inverse
    path = _pydicom_file("SC_rgb_rle_2frame.dcm")
    px = read_radiograph(path).pixels
    assert px.shape == (100, 100)
    expected = np.rint(_luma(SC_RGB_BANDS))  # 76, 166, 150, 203, 29, 142, 0, 64, 192, 255
    _assert_close(px[5::10, 50], expected, atol=1)


# --- colour -------------------------------------------------------------------------------------


def _random_rgb(seed: int = 0, shape: tuple[int, int] = (24, 32)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3)).astype(np.uint8)


def test_rgb_is_bt601_luminance(tmp_path):
    rgb = _random_rgb()
    px = read_radiograph(write_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB")).pixels
    _assert_close(px, np.rint(_luma(rgb)), atol=1)


def test_ybr_full_is_its_luma_plane(tmp_path):
    rgb = _random_rgb(1).astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = _luma(rgb)  # PS3.3 C.7.6.3.1.2 YBR_FULL
    cb = -0.1687 * r - 0.3313 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.4187 * g - 0.0813 * b + 128
    ybr = np.clip(np.rint(np.stack([y, cb, cr], axis=-1)), 0, 255).astype(np.uint8)
    px = read_radiograph(write_dicom(tmp_path / "ybr.dcm", ybr, photometric="YBR_FULL")).pixels
    # YBR -> RGB -> luma returns Y up to rounding; the raw Cb/Cr shown as grey would be far off
    _assert_close(px, ybr[..., 0], atol=2)


def test_ybr_full_422_written_by_dcmtk_is_its_luma_plane():
    # YBR_FULL_422 uncompressed (ImplementationVersionName OFFIS_DCMTK_362): per pixel pair the
    # bytes are Y1 Y2 Cb Cr (PS3.5 8.2.1), so the luma plane is read straight from Pixel Data.
    path = _pydicom_file("SC_ybr_full_422_uncompressed.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    raw = np.frombuffer(ds.PixelData, np.uint8)
    luma = raw.reshape(ds.Rows, ds.Columns // 2, 4)[..., :2].reshape(ds.Rows, ds.Columns)
    _assert_close(read_radiograph(path).pixels, luma, atol=2)


def test_rgb_jpeg_written_by_dcmtk_gives_the_colour_bar_luminance():
    # dcmcjpeg +eb +cr (baseline, RGB without colour transform), ImplementationVersionName
    # OFFIS_DCMTK_361; lossy, so a small tolerance around the exact bar colours' luma
    path = _pydicom_file("SC_rgb_dcmtk_+eb+cr.dcm")
    assert "DCMTK" in str(pydicom.dcmread(path).file_meta.ImplementationVersionName)
    px = read_radiograph(path).pixels
    assert px.shape == (100, 100)
    _assert_close(px[5::10, 50], np.rint(_luma(SC_RGB_BANDS)), atol=2)


# --- MONOCHROME1 without a window -----------------------------------------------------------------


def test_monochrome1_without_window_is_minmax_then_inverted(tmp_path):
    stored = np.random.default_rng(2).integers(100, 4000, (40, 30)).astype(np.uint16)
    path = write_dicom(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1")
    px = read_radiograph(path).pixels
    np.testing.assert_array_equal(px, 255 - _minmax_uint8(stored))
    assert px[stored == stored.min()].min() == 255  # lowest stored value = most attenuating


# --- unusable VOI LUT: fall back to the window, else min-max, with a warning ---------------------


def _add_voi_lut(path, descriptor: list[int], data: list[int]) -> None:
    ds = pydicom.dcmread(path)
    item = Dataset()
    item.add_new("LUTDescriptor", "US", descriptor)
    item.add_new("LUTData", "US", data)
    ds.VOILUTSequence = Sequence([item])
    ds.save_as(path)


@pytest.mark.parametrize(
    ("descriptor", "data"),
    [
        ([4096, 0, 16], [0, 1000, 4095]),  # LUT Data shorter than its descriptor says
        ([4, 0, 0], [0, 1, 2, 3]),  # 0 bits per entry
        ([4, 0, 40], [0, 1, 2, 3]),  # 40 bits per entry
    ],
    ids=["short-data", "zero-bits", "forty-bits"],
)
@pytest.mark.parametrize("window", [(1000, 2001), None], ids=["window", "no-window"])
def test_unusable_voi_lut_falls_back(tmp_path, caplog, descriptor, data, window):
    stored = np.random.default_rng(3).integers(0, 4096, (32, 24)).astype(np.uint16)
    path = write_dicom(tmp_path / "lut.dcm", stored, window=window)
    _add_voi_lut(path, descriptor, data)
    with caplog.at_level(logging.WARNING, logger="vcfnet.io.dicom"):
        px = read_radiograph(path).pixels
    expected = _minmax_uint8(stored) if window is None else _window_uint8(stored, *window)
    _assert_close(px, expected, atol=1)
    assert "ignoring unusable VOI LUT" in caplog.text


# --- signed pixels (PixelRepresentation 1) ---------------------------------------------------------


def _signed_image() -> np.ndarray:
    img = np.random.default_rng(4).integers(-1500, 1500, (32, 24)).astype(np.int16)
    img[:4, :4] = 2000  # bone marker, top-left
    img[-4:, -4:] = -2000
    return img


@pytest.mark.parametrize("bits_stored", [16, 12])
def test_signed_without_rescale_is_minmax_of_signed_values(tmp_path, bits_stored):
    stored = _signed_image()
    path = write_dicom(tmp_path / "s.dcm", stored, bits_stored=bits_stored)
    assert pydicom.dcmread(path).PixelRepresentation == 1
    px = read_radiograph(path).pixels
    # read as unsigned, -2000 would be the brightest value; signed, it is the darkest
    np.testing.assert_array_equal(px, _minmax_uint8(stored))
    assert px[0, 0] == 255 and px[-1, -1] == 0


def test_signed_with_rescale_and_window(tmp_path):
    stored = _signed_image()
    slope, intercept, center, width = 0.5, -300.0, -200.0, 1200.0
    path = write_dicom(
        tmp_path / "sr.dcm",
        stored,
        bits_stored=16,
        rescale=(slope, intercept),
        window=(center, width),
    )
    px = read_radiograph(path).pixels
    _assert_close(px, _window_uint8(stored * slope + intercept, center, width), atol=1)
    assert (px == 0).any() and (px == 255).any()  # both ends of the window reached


def test_signed_with_rescale_no_window(tmp_path):
    stored = _signed_image()
    path = write_dicom(tmp_path / "sr.dcm", stored, bits_stored=16, rescale=(-1.0, 50.0))
    px = read_radiograph(path).pixels
    # a negative slope flips the image: the stored maximum becomes the darkest
    np.testing.assert_array_equal(px, _minmax_uint8(stored * -1.0 + 50.0))
    assert px[0, 0] == 0 and px[-1, -1] == 255


# --- files written by other tools (dicom3tools, DCMTK) ---------------------------------------------


@pytest.mark.parametrize(
    ("name", "dtype"),
    [("MR_small.dcm", "<i2"), ("MR_small_bigendian.dcm", ">i2"), ("MR_small_implicit.dcm", "<i2")],
)
def test_mr_small_window_from_raw_bytes(name, dtype):
    # MR_small: dicom3tools (DCTOOL100); the big-endian and implicit-VR copies: DCMTK 3.6.3.
    # Signed 16-bit, Window 600/1600, no rescale.
    ds = pydicom.dcmread(_pydicom_file(name))
    assert (ds.PixelRepresentation, ds.WindowCenter, ds.WindowWidth) == (1, 600, 1600)
    raw = np.frombuffer(ds.PixelData, dtype).reshape(64, 64)
    px = read_radiograph(_pydicom_file(name)).pixels
    _assert_close(px, _window_uint8(raw, 600, 1600), atol=1)


def test_ct_small_rescaled_signed_from_raw_bytes():
    # CT_small.dcm: dicom3tools, signed 16-bit, RescaleIntercept -1024, no window -> min-max of HU
    path = _pydicom_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    assert (ds.PixelRepresentation, float(ds.RescaleIntercept)) == (1, -1024.0)
    hu = np.frombuffer(ds.PixelData, "<i2").reshape(128, 128) * float(ds.RescaleSlope) - 1024
    px = read_radiograph(path).pixels
    np.testing.assert_array_equal(px, _minmax_uint8(hu))
    assert px.shape == (128, 128)
