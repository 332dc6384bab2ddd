"""Results back to the PACS: the retry queue (``PacsOutbox``) and its sender thread.

A signed report (``enqueue_report``, in the signing transaction) and, when the admin turns it on,
each analysis (``enqueue_analysis``) of a case that came from the PACS (it has a ``PacsOrigin``)
add a row to the queue. The sender (``PacsSender``, a thread of the serve process) sends due rows
by STOW-RS and marks them sent; a failure keeps the row pending with its error and the next try
after ``Settings.pacs_retry_seconds`` doubling per attempt (at most an hour). Rows live in the
database, so nothing is lost when the PACS or the platform restarts. A row that can never be sent
(the mapping was purged, the report is gone, the PACS refused it with a 4xx) is marked failed;
the admin can queue it again.

What is sent is built at send time, into the ORIGINAL study:
- the SR (TID 1500, ``export.structured_report``) with the boxes as regions on the original SOP
  Instance, the classes as coded findings, the probabilities as measurements and the model as the
  device observer. The original instance's patient and study attributes come from the PACS itself
  (WADO-RS metadata), used in memory only; the platform keeps the UIDs, nothing else.
- the heatmap as an RGB Secondary Capture in a series of its own, with a burnt-in banner and
  series description "research software — not for diagnosis".
UIDs of both are derived (``export.derived_uid``), so a resend makes the same instances.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import threading

import numpy as np
from pydicom import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from vcfnet.serve import export
from vcfnet.serve.crud import Actor, audit
from vcfnet.serve.models import Analysis, Case, PacsOrigin, PacsOutbox, ReadRequest, utcnow
from vcfnet.serve.pacs import describe, get_endpoint, make_client
from vcfnet.serve.storage import LocalStorage

log = logging.getLogger(__name__)

LABEL = "research software \u2014 not for diagnosis"
BANNER = "RESEARCH SOFTWARE - NOT FOR DIAGNOSIS"
MAX_BACKOFF_S = 3600.0
#: attributes highdicom copies from the referenced image (type 2: empty when the PACS lacks them)
STUDY_ATTRIBUTES = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)


class PermanentSendError(RuntimeError):
    """A queued result that can never be sent as it is (no retry)."""


def _wanted(db: Session, case_id: int, flag: str) -> bool:
    endpoint = get_endpoint(db)
    if endpoint is None or not getattr(endpoint, flag):
        return False
    return db.get(PacsOrigin, case_id) is not None


def enqueue_report(db: Session, read: ReadRequest) -> PacsOutbox | None:
    """Queue the SR (and heatmap) of a just signed read or addendum; None if not wanted."""
    if not _wanted(db, read.case_id, "send_on_sign"):
        return None
    item = PacsOutbox(case_id=read.case_id, read_id=read.id)
    db.add(item)
    return item


def enqueue_analysis(db: Session, analysis: Analysis) -> PacsOutbox | None:
    """Queue an analysis's heatmap (the SR waits for the radiologist's signature)."""
    if not _wanted(db, analysis.case_id, "send_after_analysis"):
        return None
    item = PacsOutbox(case_id=analysis.case_id, analysis_id=analysis.id)
    db.add(item)
    return item


def requeue(db: Session, item: PacsOutbox) -> None:
    item.state, item.next_attempt_at, item.last_error = "pending", utcnow(), ""


# --------------------------------------------------------------------------------- building


def reference_dataset(wado, origin: PacsOrigin) -> Dataset:
    """The original instance's attributes (no pixels), from the PACS's WADO-RS metadata."""
    metadata = wado.retrieve_instance_metadata(
        origin.study_uid, origin.series_uid, origin.sop_instance_uid
    )
    ds = Dataset.from_json(metadata, bulk_data_uri_handler=lambda *_: b"")
    for name in STUDY_ATTRIBUTES:
        if name not in ds:
            setattr(ds, name, "")
    ds.SOPClassUID, ds.SOPInstanceUID = origin.sop_class_uid, origin.sop_instance_uid
    return ds


def labelled(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H + banner, W, 3): a black banner with ``BANNER`` burnt in on top."""
    from PIL import Image, ImageDraw, ImageFont

    width = rgb.shape[1]
    size = max(10, min(48, width // 28))
    banner = Image.new("RGB", (width, size * 2), (0, 0, 0))
    ImageDraw.Draw(banner).text(
        (size // 2, size // 2), BANNER, fill=(255, 255, 0), font=ImageFont.load_default(size)
    )
    return np.concatenate([np.asarray(banner, dtype=np.uint8), rgb[..., :3]], axis=0)


def heatmap_capture(ref: Dataset, case_uid: str, analysis: Analysis, rgb: np.ndarray) -> Dataset:
    """The heatmap as an RGB Secondary Capture in the reference image's study."""
    import highdicom as hd

    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ref,
        pixel_array=np.ascontiguousarray(labelled(rgb)),
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=export.derived_uid(case_uid, "heatmap-series"),
        series_number=901,
        sop_instance_uid=export.derived_uid(case_uid, "heatmap", analysis.id),
        instance_number=analysis.id,
        manufacturer=export.MANUFACTURER,
        patient_orientation=("A", "F"),
    )
    sc.PatientOrientation = ""
    sc.SpecificCharacterSet = "ISO_IR 192"
    sc.SeriesDescription = f"vcfnet heatmap, {LABEL}"
    sc.ImageComments = (
        f"Grad-CAM of {analysis.model_name} {analysis.model_version}: where the model looked. "
        f"{LABEL}."
    )
    sc.BurnedInAnnotation = "YES"
    return sc


def payload(db: Session, storage: LocalStorage, wado, item: PacsOutbox) -> list[Dataset]:
    """The instances of one queued result (SR and/or heatmap Secondary Capture)."""
    from PIL import Image

    origin = db.get(PacsOrigin, item.case_id)
    if origin is None:
        raise PermanentSendError("the link to the original image was purged")
    ref = reference_dataset(wado, origin)
    case_uid = db.get(Case, item.case_id).sop_instance_uid
    datasets: list[Dataset] = []
    analysis = db.get(Analysis, item.analysis_id) if item.analysis_id else None
    if item.read_id is not None:
        read = db.get(ReadRequest, item.read_id)
        signed = export.signed_read(read, include_ai=True) if read is not None else None
        if signed is None:
            raise PermanentSendError("the report is not signed")
        datasets.append(export.structured_report(signed, ref))
        analysis = signed.analysis
    if analysis is not None and analysis.heatmap_key:
        with Image.open(io.BytesIO(storage.read_bytes(analysis.heatmap_key))) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        datasets.append(heatmap_capture(ref, case_uid, analysis, rgb))
    if not datasets:
        raise PermanentSendError("nothing to send (no report, no heatmap)")
    return datasets


# ---------------------------------------------------------------------------------- sending


def _store(stow, datasets: list[Dataset]) -> None:
    response = stow.store_instances(datasets)
    failed = response.get("FailedSOPSequence") if response is not None else None
    if failed:
        reason = failed[0].get("FailureReason", "")
        raise PermanentSendError(f"the PACS refused {len(failed)} instance(s) (reason {reason})")


def send_one(db: Session, storage: LocalStorage, id_key: bytes, item: PacsOutbox, retry_s: float):
    """Try to send ``item``; update its state (the caller commits)."""
    item.attempts += 1
    try:
        endpoint = get_endpoint(db)
        if endpoint is None:
            raise PermanentSendError("no PACS is configured")
        datasets = payload(db, storage, make_client(endpoint, id_key, "wado"), item)
        _store(make_client(endpoint, id_key, "stow"), datasets)
    except PermanentSendError as exc:
        item.state, item.last_error = "failed", str(exc)[:255]
    except Exception as exc:  # requests, dicomweb-client, highdicom raise many types
        status = getattr(getattr(exc, "response", None), "status_code", None) or 0
        item.last_error = describe(exc)[:255]
        if 400 <= status < 500 and status not in (408, 429):
            item.state = "failed"
        else:
            delay = min(retry_s * 2 ** (item.attempts - 1), MAX_BACKOFF_S)
            item.next_attempt_at = utcnow() + dt.timedelta(seconds=delay)
    else:
        item.state, item.sent_at, item.last_error = "sent", utcnow(), ""
    if item.state != "pending":  # retries show on the admin's PACS page, not in the audit
        detail = f"item {item.id}, attempt {item.attempts}"
        audit(db, Actor(None, "pacs-sender"), f"pacs.send.{item.state}", item.case_id, detail)
    log.info("PACS outbox item %d: %s (attempt %d)", item.id, item.state, item.attempts)


def send_due(session_factory, storage: LocalStorage, id_key: bytes, retry_s: float) -> int:
    """Send every pending item that is due; the number tried."""
    with session_factory() as db:
        ids = db.scalars(
            select(PacsOutbox.id)
            .where(PacsOutbox.state == "pending", PacsOutbox.next_attempt_at <= utcnow())
            .order_by(PacsOutbox.id)
        ).all()
    for item_id in ids:
        with session_factory() as db:
            item = db.get(PacsOutbox, item_id)
            if item is None or item.state != "pending":
                continue
            send_one(db, storage, id_key, item, retry_s)
            db.commit()
    return len(ids)


class PacsSender:
    """The background thread sending the queue every ``poll_s`` seconds; ``stop()`` joins it."""

    def __init__(self, state, poll_s: float = 2.0):
        self.state = state
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PacsSender:
        self._thread = threading.Thread(target=self._run, name="vcfnet-pacs-sender", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        state = self.state
        while not self._stop.is_set():
            try:
                send_due(
                    state.session_factory,
                    state.storage,
                    state.id_key,
                    state.settings.pacs_retry_seconds,
                )
            except Exception as exc:  # the database may be briefly unavailable: try again
                log.error("PACS sender: %s", type(exc).__name__)
            self._stop.wait(self.poll_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def __enter__(self) -> PacsSender:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
