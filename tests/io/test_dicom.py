"""DICOM display pipeline, compressed syntaxes, metadata and corrupt files."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, RLELossless

from tests.io.dicom_fixtures import FAKE_IDENTITY, marker_image, write_dicom
from vcfnet.errors import InputError
from vcfnet.io.dicom import parse_age
from vcfnet.io.images import read_radiograph


def _corner_is_bright(pixels: np.ndarray) -> None:
    h, w = pixels.shape
    assert pixels.dtype == np.uint8
    assert pixels[h // 8, w // 8] > 200, "bone marker (top-left) should be bright"
    assert pixels[-h // 8, -w // 8] < 60, "background (bottom-right) should be dark"


def test_monochrome2_minmax(tmp_path):
    rad = read_radiograph(write_dicom(tmp_path / "a.dcm", marker_image()))
    _corner_is_bright(rad.pixels)
    assert rad.pixels.max() == 255 and rad.pixels.min() == 0
    assert rad.shape == (256, 200)


def test_monochrome1_with_window_is_inverted(tmp_path):
    stored = (4095 - marker_image()).astype(np.uint16)  # MONOCHROME1: bone = low stored value
    path = write_dicom(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1", window=(2000, 4000))
    _corner_is_bright(read_radiograph(path).pixels)


def test_window_center_width_applied(tmp_path):
    # window 0..1000 saturates the 4000-valued marker and puts the 500 background mid-grey
    path = write_dicom(tmp_path / "w.dcm", marker_image(), window=(500, 1000))
    px = read_radiograph(path).pixels
    assert px[10, 10] == 255
    assert 120 <= px[-10, -10] <= 135


def test_rescaled_16bit(tmp_path):
    # stored = (value - intercept) / slope; window given in rescaled units
    stored = marker_image(high=3500, low=0)
    path = write_dicom(
        tmp_path / "r.dcm", stored, bits_stored=16, rescale=(2.0, -1000.0), window=(0, 2000)
    )
    px = read_radiograph(path).pixels
    # background: 0*2-1000 = -1000 -> window [-1000, 1000] lower edge -> 0; marker 6000 -> 255
    assert px[-5, -5] == 0
    assert px[5, 5] == 255


def test_voi_lut_sequence_wins_over_window(tmp_path):
    lut = np.where(np.arange(4096) >= 1000, 4095, 0).astype(np.uint16)  # a hard threshold
    path = write_dicom(tmp_path / "lut.dcm", marker_image(low=900), voi_lut=lut, window=(900, 10))
    px = read_radiograph(path).pixels
    assert px[5, 5] == 255 and px[-5, -5] == 0


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_compressed_lossless_equals_uncompressed(tmp_path, syntax):
    img = marker_image()
    img[100:140, 50:90] = np.arange(40 * 40, dtype=np.uint16).reshape(40, 40)
    plain = read_radiograph(write_dicom(tmp_path / "plain.dcm", img)).pixels
    packed = read_radiograph(
        write_dicom(tmp_path / "packed.dcm", img, transfer_syntax=syntax)
    ).pixels
    np.testing.assert_array_equal(plain, packed)


def test_jpeg_baseline(tmp_path):
    img = (marker_image() // 16).astype(np.uint8)
    px = read_radiograph(
        write_dicom(tmp_path / "j.dcm", img, transfer_syntax=JPEGBaseline8Bit)
    ).pixels
    _corner_is_bright(px)


def test_metadata_spacing_and_patient(tmp_path):
    rad = read_radiograph(
        write_dicom(tmp_path / "a.dcm", marker_image(), pixel_spacing=(0.2, 0.25))
    )
    assert rad.pixel_spacing_mm == pytest.approx(0.2)
    assert rad.patient.patient_id == FAKE_IDENTITY["PatientID"]
    assert rad.patient.sex == "F"
    assert rad.patient.age == pytest.approx(74.92, abs=0.01)  # 1948-02-13 -> 2023-01-15
    rad = read_radiograph(
        write_dicom(
            tmp_path / "b",
            marker_image(),
            pixel_spacing=None,
            imager_spacing=(0.139, 0.139),
            patient_age="081Y",
            sex="O",
        )
    )
    assert rad.pixel_spacing_mm == pytest.approx(0.139)
    assert rad.patient.age == 81 and rad.patient.sex == ""
    rad = read_radiograph(write_dicom(tmp_path / "c.dcm", marker_image(), pixel_spacing=None))
    assert rad.pixel_spacing_mm is None


def test_parse_age():
    assert parse_age("070Y") == 70
    assert parse_age("006M") == 0.5
    assert parse_age("", "19500101", "20000101") == pytest.approx(50.0, abs=0.01)
    assert parse_age(None, "garbage", "20000101") is None


def test_truncated_dicom_is_input_error(tmp_path):
    path = write_dicom(tmp_path / "t.dcm", marker_image())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"t\.dcm"):
        read_radiograph(path)


def test_garbage_dcm_is_input_error(tmp_path):
    path = tmp_path / "junk.dcm"
    path.write_bytes(b"this is not dicom at all" * 10)
    with pytest.raises(InputError, match=r"junk\.dcm"):
        read_radiograph(path)


def test_dicom_without_pixels_is_input_error(tmp_path):
    path = write_dicom(tmp_path / "np.dcm", marker_image())
    import pydicom

    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(InputError, match="no pixel data"):
        read_radiograph(path)


def test_corrupt_compressed_dicom_is_one_quiet_line(tmp_path, caplog):
    """A damaged JPEG 2000 stream: no decoder tracebacks logged, one line naming the file."""
    import logging

    from pydicom.uid import JPEG2000Lossless

    path = write_dicom(tmp_path / "c.dcm", marker_image(64, 64), transfer_syntax=JPEG2000Lossless)
    data = bytearray(path.read_bytes())
    data[-300:-250] = b"\xff" * 50
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.DEBUG), pytest.raises(InputError) as err:
        read_radiograph(path)
    assert len(str(err.value).splitlines()) == 1 and str(path) in str(err.value)
    noisy = [r for r in caplog.records if r.name.startswith("pydicom") and r.exc_info]
    assert not noisy, f"{len(noisy)} decoder traceback(s) logged"


def test_quiet_decoding_on_one_thread_leaves_other_threads_and_later_logging_heard(caplog):
    """prepare and the platform decode on several threads: while one thread decodes (its pydicom
    records held back), another's are logged; two overlapping decodes leave logging on (a
    process-wide level, saved and restored by each thread, once stayed at CRITICAL)."""
    import logging
    import threading

    from vcfnet.io.dicom import _quiet_decoders

    def hold(entered: threading.Event, leave: threading.Event) -> threading.Thread:
        def run() -> None:
            with _quiet_decoders():
                logging.getLogger("pydicom").warning("held back")
                entered.set()
                leave.wait(10)

        thread = threading.Thread(target=run)
        thread.start()
        entered.wait(10)
        return thread

    with caplog.at_level(logging.WARNING, logger="pydicom"):
        a_in, a_out, b_in, b_out = (threading.Event() for _ in range(4))
        a = hold(a_in, a_out)
        b = hold(b_in, b_out)  # enters while a decodes
        logging.getLogger("pydicom").warning("other thread")
        a_out.set()
        a.join()  # a leaves first
        b_out.set()
        b.join()
        logging.getLogger("pydicom").warning("after")
        logging.getLogger("pydicom.pixels.utils").warning("child after")
    heard = [r.getMessage() for r in caplog.records]
    assert heard == ["other thread", "after", "child after"]
