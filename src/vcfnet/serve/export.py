"""Signed reports out of the platform: DICOM SR (TID 1500, highdicom) and PDF (fpdf2).

The platform keeps a PNG of a case's display pixels, not the uploaded DICOM. The SR references
the case's de-identified Secondary Capture instead: built here from that PNG with the new UIDs
made at ingest (``Case.*_instance_uid``), the keyed pseudonym as Patient ID and Name, and nothing
else of the patient but sex and age (the study date is the upload's date: the real one is not
kept). ``GET /cases/{id}/image.dcm`` serves it, so a viewer gets the
image the SR's regions are drawn on.

The SR (Comprehensive SR, TID 1500 Measurement Report) holds, per box: the box as an image region
(SCOORD POLYLINE, a closed rectangle in pixel coordinates of the Secondary Capture), its level as a
finding site, the radiologist's class as the group's coded finding (TID 1501 "Finding") and,
when the reader may see them, the model's probabilities as measurements. A level the radiologist
classified without a box is a measurement group without a region. The radiologist is the person
observer and the model (name, version, weights hash) the device observer. Addenda update the
classes of the levels they name. The report's free text is in the PDF (TID 1500 has no place for
it).

UIDs of the SR are derived from the case's SOP Instance UID and the read's latest signed version,
so the same report downloads as the same instance; an addendum makes a new one.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from vcfnet.labels import CLASS_NAMES
from vcfnet.serve.models import Analysis, Case, ReadRequest, Report, User

if TYPE_CHECKING:
    import highdicom as hd
    from fpdf import FPDF

MANUFACTURER = "vcfnet (research software)"
NOTICE = "Research software, not a medical device."
#: A private coding scheme (DICOM PS3.16 section 8: designators starting with "99").
SCHEME = "99VCFNET"
CLASS_CODES: dict[str, Code] = {
    "acute": Code("acute-vcf", SCHEME, "Acute vertebral compression fracture"),
    "chronic": Code("chronic-vcf", SCHEME, "Chronic vertebral compression fracture"),
    "pathologic": Code("pathologic-vcf", SCHEME, "Pathologic vertebral compression fracture"),
    "normal": codes.SCT.Normal,
}
PROBABILITY_CODES: dict[str, Code] = {
    name: Code(f"p-{name}", SCHEME, f"Probability of {name} fracture (model)")
    for name in CLASS_NAMES
}
LEVEL_SITES: dict[str, Code] = {
    "T11": codes.SCT.T11Vertebra,
    "T12": codes.SCT.T12Vertebra,
    "L1": codes.SCT.L1Vertebra,
    "L2": codes.SCT.L2Vertebra,
    "L3": codes.SCT.L3Vertebra,
    "L4": codes.SCT.L4Vertebra,
    "L5": codes.SCT.L5Vertebra,
    "S1": codes.SCT.Sacrum,  # the first sacral vertebra has no code in pydicom's dictionary
}
PROCEDURE = Code("113704", "DCM", "Projection X-Ray")


@dataclass(frozen=True)
class SignedRead:
    """What an exported report shows: the read, its signed versions, the analysis (or None)."""

    case: Case
    read: ReadRequest
    reports: list[Report]
    analysis: Analysis | None  # the latest analysis before signing, if the reader may see it

    @property
    def findings(self) -> dict[str, str]:
        """level -> class: the report's, updated by each addendum that names a level."""
        merged: dict[str, str] = {}
        for report in self.reports:
            merged.update(report.findings or {})
        return merged

    @property
    def signer(self) -> User:
        return self.reports[0].author

    @property
    def latest(self) -> Report:
        return self.reports[-1]


def signed_read(read: ReadRequest, include_ai: bool) -> SignedRead | None:
    """The signed versions of ``read`` and the analysis made before its first signature."""
    reports = [r for r in read.reports if r.signed_at is not None]
    if not reports:
        return None
    analysis = None
    if include_ai:
        before = [a for a in read.case.analyses if a.created_at <= reports[0].signed_at]
        analysis = before[-1] if before else None
    return SignedRead(read.case, read, reports, analysis)


#: Namespace of the name-based (version 5) UUIDs of derived UIDs.
UID_NAMESPACE = uuid.UUID("5f0c8a52-61a5-4c1e-9d8e-9b7b2f6f3c11")


def derived_uid(*parts: object) -> str:
    """A UID made from ``parts``: ``2.25.`` and a name-based UUID (ISO/IEC 9834-8), so the same
    parts give the same UID and others (with overwhelming probability) another."""
    name = "\x1f".join(str(p) for p in parts)
    return f"2.25.{uuid.uuid5(UID_NAMESPACE, name).int}"


def person_name(user: User) -> str:
    """A DICOM PN value of a user's display name (or user name): one component, the family name
    (``^`` ends it: the name is not split into parts it may not have)."""
    return single_name(user.display_name or user.username)


def single_name(name: str) -> str:
    for char in "\\=^":
        name = name.replace(char, " ")
    return name.strip()[:63] + "^"


def display_name(user: User) -> str:
    return user.display_name or user.username


def _dicom_age(age: float | None) -> str | None:
    return f"{int(age):03d}Y" if age is not None and 0 <= age < 1000 else None


# ------------------------------------------------------------------------- secondary capture


def secondary_capture(case: Case, pixels: np.ndarray) -> Dataset:
    """The case's de-identified Secondary Capture image (8-bit display pixels, new UIDs)."""
    import highdicom as hd

    created = case.created_at
    sc = hd.sc.SCImage(
        pixel_array=np.ascontiguousarray(pixels, dtype=np.uint8),
        photometric_interpretation="MONOCHROME2",
        bits_allocated=8,
        coordinate_system="PATIENT",
        study_instance_uid=case.study_instance_uid,
        series_instance_uid=case.series_instance_uid,
        series_number=1,
        sop_instance_uid=case.sop_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        patient_id=case.patient_pseudonym,
        patient_name=single_name(case.patient_pseudonym),
        patient_sex=case.sex if case.sex in ("F", "M", "O") else None,
        study_date=created.date(),
        study_time=created.time(),
        pixel_spacing=(
            (case.pixel_spacing_mm, case.pixel_spacing_mm) if case.pixel_spacing_mm else None
        ),
        patient_orientation=("A", "F"),  # required by highdicom; emptied below
    )
    sc.PatientOrientation = ""  # not known after de-identification (type 2: empty is allowed)
    sc.Modality = "OT"
    if (age := _dicom_age(case.age)) is not None:
        sc.PatientAge = age
    sc.SeriesDescription = "de-identified radiograph (vcfnet)"
    sc.ContentDate, sc.ContentTime = created.strftime("%Y%m%d"), created.strftime("%H%M%S")
    sc.PatientIdentityRemoved = "YES"
    sc.DeidentificationMethod = "vcfnet ingest: keyed pseudonym, new UIDs, sex/age kept"
    return sc


# ------------------------------------------------------------------------------ structured report


def _rectangle(box: tuple[float, float, float, float]) -> np.ndarray:
    """A closed POLYLINE of a box: (column, row) of its corners, first point repeated."""
    x1, y1, x2, y2 = box
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]], dtype=np.float32)


def _observation_context(
    signed: SignedRead,
) -> tuple[hd.sr.ObservationContext, hd.sr.AlgorithmIdentification | None]:
    """The SR's observers (the signing radiologist; the model as device, if the reader may see
    it) and the model's algorithm identification for its measurements (or None)."""
    import highdicom as hd

    analysis = signed.analysis
    person = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=person_name(signed.signer),
            login_name=signed.signer.username[:64],
        ),
    )
    device = algorithm = None
    if analysis is not None:
        device = hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=derived_uid("vcfnet-model", analysis.model_hash),
                name=analysis.model_name[:64],
                manufacturer_name=MANUFACTURER,
                model_name=f"{analysis.model_name} {analysis.model_version}"[:64],
                serial_number=analysis.model_hash[:64],
            ),
        )
        algorithm = hd.sr.AlgorithmIdentification(
            name=analysis.model_name[:64],
            version=analysis.model_version[:64],
            parameters=[
                f"weights sha256 {analysis.model_hash}",
                f"runtime {analysis.model_runtime}",
            ],
        )
    context = hd.sr.ObservationContext(
        observer_person_context=person, observer_device_context=device
    )
    return context, algorithm


def _report_boxes(signed: SignedRead) -> list[tuple[str, tuple, dict | None]]:
    """(level, box, probabilities or None) per box: the boxes the model saw (with their
    probabilities), else the case's current boxes."""
    if signed.analysis is not None:
        return [
            (f.level, (f.x1, f.y1, f.x2, f.y2), f.probabilities) for f in signed.analysis.findings
        ]
    return [(b.level, b.coords, None) for b in signed.case.boxes]


def _finding(signed: SignedRead, level: str) -> Code | None:
    """The radiologist's class of ``level``: the group's coded finding (TID 1501 "Finding")."""
    findings = signed.findings
    return CLASS_CODES[findings[level]] if level in findings else None


def _tracking(signed: SignedRead, level: str, index: int) -> hd.sr.TrackingIdentifier:
    import highdicom as hd

    return hd.sr.TrackingIdentifier(
        uid=derived_uid(signed.case.sop_instance_uid, "box", index, level),
        identifier=f"{level} vertebra (box {index + 1})",
    )


def _box_group(
    signed: SignedRead,
    index: int,
    box_entry: tuple,
    source: hd.sr.SourceImageForRegion,
    algorithm: hd.sr.AlgorithmIdentification | None,
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    """The measurement group of one box: its region on the image, level, class and (if any) the
    model's probabilities."""
    import highdicom as hd

    level, box, probabilities = box_entry
    measurements = [
        hd.sr.Measurement(
            name=PROBABILITY_CODES[name],
            value=float(probabilities[name]),
            unit=codes.UCUM.NoUnits,
            algorithm_id=algorithm,
        )
        for name in CLASS_NAMES
        if probabilities and name in probabilities
    ]
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking(signed, level, index),
        referenced_region=hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=_rectangle(box),
            source_image=source,
        ),
        finding_sites=[hd.sr.FindingSite(LEVEL_SITES[level])] if level in LEVEL_SITES else None,
        finding_type=_finding(signed, level),
        measurements=measurements or None,
    )


def _measurement_groups(
    signed: SignedRead, sc: Dataset, algorithm: hd.sr.AlgorithmIdentification | None
) -> list:
    """One group per box, one per level classified without a box; one empty group if neither."""
    import highdicom as hd

    source = hd.sr.SourceImageForRegion(
        referenced_sop_class_uid=sc.SOPClassUID,
        referenced_sop_instance_uid=sc.SOPInstanceUID,
    )
    boxes = _report_boxes(signed)
    groups: list = [
        _box_group(signed, index, entry, source, algorithm) for index, entry in enumerate(boxes)
    ]
    boxed = {level for level, _, _ in boxes}
    for index, level in enumerate(lvl for lvl in signed.findings if lvl not in boxed):
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=_tracking(signed, level, len(boxes) + index),
                finding_type=_finding(signed, level),
                finding_sites=[hd.sr.FindingSite(LEVEL_SITES[level])],
            )
        )
    if not groups:  # a report with text only: one group without findings keeps TID 1500 valid
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=derived_uid(signed.case.sop_instance_uid, "report", signed.read.id),
                    identifier="report without findings per vertebra",
                ),
            )
        )
    return groups


def structured_report(signed: SignedRead, sc: Dataset) -> Dataset:
    """A Comprehensive SR (TID 1500) of a signed read whose regions lie on the image ``sc``: the
    case's de-identified Secondary Capture (a download), or the original instance's metadata
    (the SR sent to the PACS, ``serve.pacs_send``); the SR joins that image's study and patient."""
    import highdicom as hd

    case = signed.case
    context, algorithm = _observation_context(signed)
    content = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=PROCEDURE,
        imaging_measurements=_measurement_groups(signed, sc, algorithm),
    )
    latest = signed.latest
    signed_at: dt.datetime = latest.signed_at
    sr = hd.sr.ComprehensiveSR(
        evidence=[sc],
        content=content[0],
        series_instance_uid=derived_uid(case.sop_instance_uid, "sr-series"),
        series_number=2,
        sop_instance_uid=derived_uid(case.sop_instance_uid, "sr", signed.read.id, latest.version),
        instance_number=latest.version,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=True,
        is_verified=True,
        verifying_observer_name=person_name(latest.author),
        verifying_organization=(latest.author.hospital or "vcfnet")[:64],
        series_description="vcfnet second read",
        content_date=signed_at.date(),
        content_time=signed_at.time(),
    )
    return sr


def dicom_bytes(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def report_sr_bytes(signed: SignedRead, pixels: np.ndarray) -> bytes:
    return dicom_bytes(structured_report(signed, secondary_capture(signed.case, pixels)))


def latest_signed_read(reads: Sequence[ReadRequest]) -> ReadRequest | None:
    """The read whose report was signed last (``reads`` already filtered for visibility)."""
    signed = [r for r in reads if any(rep.signed_at for rep in r.reports)]
    return max(
        signed,
        key=lambda r: max(rep.signed_at for rep in r.reports if rep.signed_at),
        default=None,
    )


# ------------------------------------------------------------------------------------------ PDF


def _latin1(text: str) -> str:
    """Text the PDF's core fonts can show (Latin-1; other characters become '?')."""
    text = text.replace("\u2014", "-").replace("\u2013", "-").replace("\u2019", "'")
    text = text.replace("\r\n", "\n").replace("\t", "    ")
    return text.encode("latin-1", "replace").decode("latin-1")


def _pdf_line(pdf: FPDF, text: str, size: float = 10, style: str = "", height: float = 5) -> None:
    """One paragraph of Helvetica text across the page."""
    pdf.set_font("Helvetica", style, size)
    pdf.multi_cell(0, height, _latin1(text), new_x="LMARGIN", new_y="NEXT")


def _pdf_case(pdf: FPDF, signed: SignedRead) -> None:
    """The title, the notice and the case: pseudonym, image, upload, read request, note."""
    case, read = signed.case, signed.read
    _pdf_line(pdf, "Second read of a lateral spine radiograph", size=16, style="B", height=8)
    pdf.set_text_color(160, 0, 0)
    _pdf_line(pdf, NOTICE + " Not for diagnosis or treatment decisions.", style="B")
    pdf.set_text_color(0, 0, 0)
    pdf.ln(2)
    _pdf_line(pdf, f"Case {case.id} - patient pseudonym {case.patient_pseudonym}")
    _pdf_line(
        pdf,
        f"Image {case.width} x {case.height} px ({case.source_format}), uploaded "
        f"{case.created_at:%Y-%m-%d %H:%M} UTC; read request {read.id}",
    )
    if read.note:
        _pdf_line(pdf, f"Clinician's note: {read.note}")


def _pdf_signed_versions(pdf: FPDF, signed: SignedRead) -> None:
    """Each signed version: classes per level, text, signer and time."""
    for report in signed.reports:
        pdf.ln(3)
        kind = "Addendum" if report.kind == "addendum" else "Report"
        _pdf_line(pdf, f"{kind} v{report.version}", size=12, style="B", height=6)
        if report.findings:
            _pdf_line(pdf, "Findings per vertebra:", style="B")
            for level, name in report.findings.items():
                _pdf_line(pdf, f"    {level}: {name}")
        if report.text.strip():
            _pdf_line(pdf, report.text)
        _pdf_line(
            pdf,
            f"Signed by {display_name(report.author)} on {report.signed_at:%Y-%m-%d %H:%M} UTC",
            style="I",
        )


def _pdf_model_result(pdf: FPDF, analysis: Analysis) -> None:
    """The model's identity and its table: probabilities, predicted class and box per level."""
    pdf.ln(3)
    _pdf_line(pdf, "Model result", size=12, style="B", height=6)
    _pdf_line(
        pdf,
        f"{analysis.model_name} {analysis.model_version} ({analysis.model_runtime}), "
        f"weights sha256 {analysis.model_hash}; analysed {analysis.created_at:%Y-%m-%d %H:%M} UTC",
        size=8,
        height=4,
    )
    pdf.set_font("Helvetica", "", 9)
    header = ("Level", *(f"p({name})" for name in CLASS_NAMES), "Predicted", "Box (px)")
    with pdf.table(col_widths=(12, 18, 18, 18, 20, 40), text_align="LEFT") as table:
        table.row(header)
        for f in analysis.findings:
            table.row(
                (
                    f.level,
                    *(f"{float(f.probabilities.get(name, 0.0)):.3f}" for name in CLASS_NAMES),
                    f.predicted,
                    f"{f.x1:.0f},{f.y1:.0f} - {f.x2:.0f},{f.y2:.0f}",
                )
            )


def _pdf_heatmap(pdf: FPDF, heatmap_png: bytes) -> None:
    """The Grad-CAM heatmap, at most 170 mm wide and 120 mm high."""
    from PIL import Image

    pdf.ln(3)
    _pdf_line(pdf, "Grad-CAM heatmap of the model (where it looked, not a diagnosis):", size=9)
    with Image.open(io.BytesIO(heatmap_png)) as image:
        image.load()
        width_mm = min(170.0, 120.0 * image.width / max(image.height, 1))
        pdf.image(image.convert("RGB"), w=width_mm)


def report_pdf_bytes(signed: SignedRead, heatmap_png: bytes | None) -> bytes:
    """A PDF of a signed read: notice, case pseudonym, each signed version (classes per level,
    text, signer and time), the model's result table and the heatmap (if the reader may see it)."""
    from fpdf import FPDF

    case, analysis = signed.case, signed.analysis
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_title(f"vcfnet second-read report, case {case.id}")
    pdf.set_author("vcfnet")
    pdf.set_creator(MANUFACTURER)
    pdf.set_creation_date(signed.latest.signed_at.replace(tzinfo=dt.UTC))
    pdf.add_page()
    _pdf_case(pdf, signed)
    _pdf_signed_versions(pdf, signed)
    if analysis is not None:
        _pdf_model_result(pdf, analysis)
        if heatmap_png:
            _pdf_heatmap(pdf, heatmap_png)
    return bytes(pdf.output())
