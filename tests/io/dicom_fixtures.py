"""Small DICOM files built with pydicom for tests: windows, rescale, VOI LUT, RLE, JPEG 2000, JPEG.

All carry fake but recognisable identity strings (``FAKE_IDENTITY``) so that de-identification
tests can grep for them in a prepared dataset.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    generate_uid,
)

#: Identity strings written into every fixture; none may appear in a prepared dataset.
FAKE_IDENTITY: dict[str, str] = {
    "PatientName": "Testperson^Quirinus",
    "PatientID": "MRN-99417733",
    "PatientBirthDate": "19480213",
    "AccessionNumber": "ACC55102938",
    "InstitutionName": "St Elsewhere Spine Hospital",
}


def marker_image(
    height: int = 256, width: int = 200, *, high: int = 4000, low: int = 500
) -> np.ndarray:
    """uint16 (H, W) 'bone bright' image: low background, a bright block in the top-left corner."""
    img = np.full((height, width), low, dtype=np.uint16)
    img[: height // 4, : width // 4] = high
    return img


def base_dataset(
    *,
    patient_id: str = FAKE_IDENTITY["PatientID"],
    sex: str = "F",
    birth_date: str = FAKE_IDENTITY["PatientBirthDate"],
    study_date: str = "20230115",
    patient_age: str | None = None,
    pixel_spacing: tuple[float, float] | None = (0.15, 0.15),
    imager_spacing: tuple[float, float] | None = None,
) -> Dataset:
    """A DX-like dataset (explicit VR little endian) with identity and spacing, no pixels yet."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "DX"
    ds.PatientName = FAKE_IDENTITY["PatientName"]
    ds.PatientID = patient_id
    ds.PatientSex = sex
    ds.PatientBirthDate = birth_date
    ds.StudyDate = study_date
    ds.AccessionNumber = FAKE_IDENTITY["AccessionNumber"]
    ds.InstitutionName = FAKE_IDENTITY["InstitutionName"]
    if patient_age is not None:
        ds.PatientAge = patient_age
    if pixel_spacing is not None:
        ds.PixelSpacing = list(pixel_spacing)
    if imager_spacing is not None:
        ds.ImagerPixelSpacing = list(imager_spacing)
    return ds


def write_dicom(
    path: Path | str,
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    rescale: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
    voi_lut: np.ndarray | None = None,
    transfer_syntax: str | None = None,
    **dataset_kwargs,
) -> Path:
    """Write ``stored`` (uint8/uint16 (H, W)) as DICOM with the given display attributes.

    ``rescale`` = (slope, intercept); ``window`` = (center, width); ``voi_lut`` = uint16 LUT
    starting at stored value 0; ``transfer_syntax`` e.g. RLELossless, JPEG2000Lossless,
    JPEGBaseline8Bit (8-bit only, encoded with Pillow).
    """
    path = Path(path)
    ds = base_dataset(**dataset_kwargs)
    bits = bits_stored or (8 if stored.dtype == np.uint8 else 12)
    ds.set_pixel_data(stored, photometric_interpretation=photometric, bits_stored=bits)
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_lut is not None:
        item = Dataset()
        item.add_new("LUTDescriptor", "US", [len(voi_lut), 0, 16])
        item.add_new("LUTData", "US", [int(v) for v in voi_lut])
        ds.VOILUTSequence = Sequence([item])
    if transfer_syntax == JPEGBaseline8Bit:
        buf = io.BytesIO()
        Image.fromarray(stored.astype(np.uint8)).save(buf, format="JPEG", quality=95)
        ds.PixelData = encapsulate([buf.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    elif transfer_syntax is not None:
        ds.compress(transfer_syntax)
    ds.save_as(path, enforce_file_format=True)
    return path
