"""The synthetic radiograph as a DICOM Part 10 file, stored as the site's profile says (DX/CR,
MONOCHROME1/2, bit depth, rescale, RLE or JPEG 2000), with a fake patient identity."""

from __future__ import annotations

import io
import logging

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

from vcfnet.synth.tasks import ImageTask


def dicom_bytes(task: ImageTask, image: np.ndarray) -> bytes:
    """The radiograph as a DICOM Part 10 file (DX/CR For Presentation, the site's storage choices)."""
    p = task.profile
    maxv = (1 << p.bits_stored) - 1
    stored = np.round(image * maxv).astype(np.uint16)
    if p.photometric == "MONOCHROME1":
        stored = (maxv - stored).astype(np.uint16)
    sop_class = (
        ComputedRadiographyImageStorage
        if p.modality == "CR"
        else DigitalXRayImageStorageForPresentation
    )
    uid = lambda what: generate_uid(entropy_srcs=[*task.uid_entropy, what])  # noqa: E731
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid("sop")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid("study"), uid("series")
    ds.Modality = p.modality
    ds.PatientName = task.patient_name
    ds.PatientID = task.patient_id
    ds.PatientBirthDate = task.birth_date
    ds.PatientSex = task.sex
    ds.PatientAge = f"{task.age:03d}Y"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = task.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = (
        f"{9 + task.index % 9:02d}{task.index % 60:02d}00"
    )
    ds.AccessionNumber = f"A{task.site[:2]}{int(task.patient_id[2:]) % 10**7:07d}"
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = str(task.index + 1), 1, 1
    ds.InstitutionName = p.institution
    ds.Manufacturer = p.manufacturer
    ds.ReferringPhysicianName = ""
    ds.BodyPartExamined = "LSPINE"
    ds.ViewPosition = "LL"
    ds.PatientOrientation = ["P", "F"]
    ds.StudyDescription = "LUMBAR SPINE LAT"
    if p.modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ImageType = ["DERIVED", "PRIMARY"]
    else:
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
    spacing = p.field_height_mm / task.shape[0]
    ds.PixelSpacing = [f"{spacing:.4f}", f"{spacing:.4f}"]
    ds.ImagerPixelSpacing = [f"{spacing * p.magnification:.4f}", f"{spacing * p.magnification:.4f}"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = p.photometric
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, p.bits_stored, p.bits_stored - 1
    ds.PixelRepresentation = 0
    if p.rescale_slope != 1.0 or p.rescale_intercept != 0.0:
        ds.RescaleSlope, ds.RescaleIntercept = f"{p.rescale_slope:g}", f"{p.rescale_intercept:g}"
        ds.RescaleType = "US"
    ds.WindowCenter = f"{p.rescale_slope * maxv / 2 + p.rescale_intercept:g}"
    ds.WindowWidth = f"{p.rescale_slope * maxv:g}"
    ds.BurnedInAnnotation = "NO"
    ds.PixelData = stored.tobytes()
    if p.transfer_syntax == "rle":
        ds.compress(RLELossless, stored, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    elif p.transfer_syntax == "jpeg2000":
        logging.getLogger("openjpeg").setLevel(logging.WARNING)
        ds.compress(JPEG2000Lossless, stored, generate_instance_uid=False)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
