"""A DICOM C-STORE receiver (pynetdicom): radiographs pushed by a PACS or modality become cases.

Started by ``vcfnet serve --dicom-port 11112 --ae-title VCFNET`` in background threads of the
serve process (one per association). Each instance goes through the upload's own functions
(``ingest.read_upload`` then ``ingest.store_case``): the same size, type, polyglot and pixel-count
checks, the same decoding, the same keyed patient pseudonym, and nothing identifying stored.

- Accepted SOP classes: Digital X-Ray (for presentation, for processing) and Computed
  Radiography; Secondary Capture only with ``Settings.dicom_secondary_capture`` and a DX/CR/DR
  modality. Any other SOP class is refused at association (its presentation context is
  rejected), so the sender knows before it sends anything. C-ECHO is answered (for set-up).
- Calling AE titles: when ``Settings.allowed_aes`` is set, any other calling AE title has its
  association rejected (reason: calling AE title not recognised).
- Failure statuses: 0xA900 for a dataset that does not match its SOP class (no pixel data, a SOP
  Class UID other than the negotiated one, a Secondary Capture that is not a radiograph);
  0xC000 for an instance the upload checks refuse (cannot be understood); 0xA700 for a failure of
  the platform (database, disk, the PACS account disabled): the sender may retry later, and for
  a dataset larger than ``Settings.max_dicom_bytes`` (``--dicom-max-mib``, default 64 MiB;
  checked on the received bytes before anything is decoded).
- The original Study/Series/SOP Instance UIDs go to ``PacsOrigin`` (admin-only, purgeable), the
  one link back to the hospital's images, used to send results to the original study.
- Cases are filed under the clinician account ``Settings.pacs_username`` (made with ``vcfnet
  users add pacs --role clinician --hospital ...``): its hospital's clinicians see them.
- Grouped by study: a case's study and series UIDs are keyed pseudonyms (HMAC, the pseudonym key)
  of the received ones, so the images of one study share one study UID without the original being
  stored in the case tables; the SOP Instance UID likewise, so an instance sent twice is filed once.
- Every arrival is audited (``case.receive``, ``dicom.duplicate`` or ``dicom.refused``) with the
  calling AE title and the status, never patient data.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from vcfnet.errors import ConfigError
from vcfnet.serve import ingest
from vcfnet.serve.crud import Actor, audit
from vcfnet.serve.models import Case, PacsOrigin, User
from vcfnet.serve.settings import Settings
from vcfnet.serve.storage import LocalStorage

log = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000

VERIFICATION = "1.2.840.10008.1.1"
#: Digital X-Ray for presentation, for processing; Computed Radiography
RADIOGRAPH_SOP_CLASSES: tuple[str, ...] = (
    "1.2.840.10008.5.1.4.1.1.1.1",
    "1.2.840.10008.5.1.4.1.1.1.1.1",
    "1.2.840.10008.5.1.4.1.1.1",
)
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
RADIOGRAPH_MODALITIES = frozenset({"DX", "CR", "DR"})
#: transfer syntaxes pydicom (with pylibjpeg) decodes
TRANSFER_SYNTAXES: tuple[str, ...] = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
)
#: bounds on a peer that stalls (seconds)
TIMEOUT_S = 60


def keyed_uid(key: bytes, kind: str, hospital: str, uid: str) -> str:
    """``2.25.<128-bit HMAC>``: the same received UID gives the same new one, unlinkable without
    the key."""
    message = "\x1f".join(("dicom-uid", kind, hospital, uid)).encode("utf-8")
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def sop_classes(settings: Settings) -> tuple[str, ...]:
    extra = (SECONDARY_CAPTURE,) if settings.dicom_secondary_capture else ()
    return RADIOGRAPH_SOP_CLASSES + extra


def pacs_account(db: Session, settings: Settings) -> User:
    """The active clinician account received cases are filed under; ConfigError otherwise."""
    name = settings.pacs_username
    user = db.scalar(select(User).where(User.username == name))
    hint = (
        f"make it with: vcfnet users add {name} --role clinician --hospital 'YOUR HOSPITAL' "
        "--random-password (or choose another with --pacs-user)"
    )
    if user is None:
        raise ConfigError(f"the DICOM receiver needs the account {name!r}; {hint}")
    if user.role != "clinician" or not user.hospital or not user.is_active:
        raise ConfigError(
            f"the DICOM receiver's account {name!r} must be an active clinician with a hospital "
            f"(its hospital's clinicians see the received cases); {hint}"
        )
    return user


@dataclass
class Outcome:
    status: int
    action: str
    detail: str
    case_id: int | None = None


class DicomReceiver:
    """The C-STORE SCP; ``start()`` returns the bound port (0 asks the system for a free one)."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        storage: LocalStorage,
        id_key: bytes,
        host: str = "127.0.0.1",
        port: int | None = None,
    ):
        self.settings = settings
        self.session_factory = session_factory
        self.storage = storage
        self.id_key = id_key
        self.host = host
        self.port = settings.dicom_port if port is None else port
        self._ae = None
        self._server = None

    @classmethod
    def from_state(cls, state, host: str = "127.0.0.1", port: int | None = None) -> DicomReceiver:
        """A receiver sharing an app's session factory, storage and pseudonym key."""
        return cls(state.settings, state.session_factory, state.storage, state.id_key, host, port)

    def _make_ae(self):
        from pynetdicom import AE, evt

        try:
            ae = AE(ae_title=self.settings.ae_title)
            ae.require_calling_aet = list(self.settings.allowed_aes)
        except ValueError as exc:
            raise ConfigError(f"invalid AE title: {exc}") from exc
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_S
        ae.maximum_associations = 4
        ae.add_supported_context(VERIFICATION)
        for uid in sop_classes(self.settings):
            ae.add_supported_context(uid, list(TRANSFER_SYNTAXES))
        return ae, [(evt.EVT_C_STORE, self.handle_store)]

    def start(self) -> int:
        if self._server is not None:
            raise RuntimeError("the DICOM receiver is already running")
        if self.port is None:
            raise ConfigError("no DICOM port: pass --dicom-port")
        with self.session_factory() as db:
            pacs_account(db, self.settings)
        self._ae, handlers = self._make_ae()
        try:
            self._server = self._ae.start_server(
                (self.host, self.port), block=False, evt_handlers=handlers
            )
        except OSError as exc:
            raise ConfigError(f"cannot listen for DICOM on {self.host}:{self.port}: {exc}") from exc
        self.port = self._server.server_address[1]
        log.info(
            "DICOM receiver %s listening on %s:%d (%s)",
            self.settings.ae_title,
            self.host,
            self.port,
            "calling AE titles: " + ", ".join(self.settings.allowed_aes)
            if self.settings.allowed_aes
            else "any calling AE title",
        )
        return self.port

    def stop(self) -> None:
        """Stop listening and end open associations; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
        if self._ae is not None:
            self._ae.shutdown()
            self._ae = None

    def __enter__(self) -> DicomReceiver:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -------------------------------------------------------------------------------- C-STORE

    def handle_store(self, event) -> int:
        """EVT_C_STORE: file the instance as a case; the DIMSE status."""
        requestor = event.assoc.requestor
        calling = str(requestor.ae_title).strip()
        client = f"{requestor.address}"
        with self.session_factory() as db:
            try:
                user = pacs_account(db, self.settings)
            except ConfigError:
                log.error("DICOM instance from %s refused: the PACS account is unusable", calling)
                return OUT_OF_RESOURCES
            actor = Actor(user, client)
            try:
                outcome = self._receive(db, actor, event, calling)
            except (SQLAlchemyError, OSError) as exc:
                db.rollback()
                log.error("DICOM instance from %s failed: %s", calling, type(exc).__name__)
                outcome = Outcome(OUT_OF_RESOURCES, "dicom.refused", type(exc).__name__)
            if outcome.action != "case.receive":  # store_case audits and commits a case itself
                detail = f"{outcome.detail}; status 0x{outcome.status:04X}; from AE {calling}"
                audit(db, actor, outcome.action, case_id=outcome.case_id, detail=detail)
                db.commit()
        return outcome.status

    def _receive(self, db: Session, actor: Actor, event, calling: str) -> Outcome:
        size = len(event.encoded_dataset(include_meta=False))
        if size > self.settings.max_dicom_bytes:  # checked before anything is decoded
            return Outcome(
                OUT_OF_RESOURCES,
                "dicom.refused",
                f"{size} bytes over the limit of {self.settings.max_dicom_bytes}",
            )
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
        except Exception as exc:  # pydicom raises many types for a broken dataset
            return Outcome(
                CANNOT_UNDERSTAND, "dicom.refused", f"undecodable ({type(exc).__name__})"
            )
        mismatch = self._mismatch(ds, event.context.abstract_syntax)
        if mismatch:
            return Outcome(DATASET_MISMATCH, "dicom.refused", mismatch)
        data = event.encoded_dataset(include_meta=True)
        return file_instance(
            db, self.storage, self.settings, self.id_key, actor, ds, data, f"from AE {calling}"
        )

    def _mismatch(self, ds, negotiated: str) -> str:
        """Why the dataset does not match its negotiated SOP class ('' if it does)."""
        if str(ds.get("SOPClassUID", "")) != str(negotiated):
            return "SOP Class UID differs from the negotiated one"
        if not ds.get("SOPInstanceUID"):
            return "no SOP Instance UID"
        if "PixelData" not in ds:
            return "no pixel data (not an image)"
        if str(negotiated) == SECONDARY_CAPTURE:
            modality = str(ds.get("Modality", "")).upper()
            if modality not in RADIOGRAPH_MODALITIES:
                return "Secondary Capture of a modality other than DX/CR/DR"
        return ""


def file_instance(
    db: Session,
    storage: LocalStorage,
    settings: Settings,
    id_key: bytes,
    actor: Actor,
    ds,
    data: bytes,
    source: str,
) -> Outcome:
    """File one received or imported instance (``ds`` decoded, ``data`` its Part 10 bytes) as a
    case, through the upload's checks; keyed UIDs on the case, the original ones in
    ``PacsOrigin`` only. An instance already filed is not filed again."""
    hospital = actor.user.hospital
    original = {
        "study_uid": str(ds.get("StudyInstanceUID", "")),
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "sop_class_uid": str(ds.get("SOPClassUID", "")),
    }
    uids = {
        "study_instance_uid": keyed_uid(id_key, "study", hospital, original["study_uid"]),
        "series_instance_uid": keyed_uid(id_key, "series", hospital, original["series_uid"]),
        "sop_instance_uid": keyed_uid(id_key, "instance", hospital, original["sop_instance_uid"]),
    }
    known = db.scalar(select(Case.id).where(Case.sop_instance_uid == uids["sop_instance_uid"]))
    if known is not None:
        return Outcome(SUCCESS, "dicom.duplicate", "already filed", known)
    try:
        checked, radiograph = ingest.read_upload(
            storage, settings, io.BytesIO(data), "instance.dcm"
        )
        case = ingest.store_case(
            db,
            storage,
            settings,
            id_key,
            actor,
            checked,
            radiograph,
            uids=uids,
            action="case.receive",
            detail=f"dicom; {source}",
        )
    except ingest.IngestError as exc:
        return Outcome(CANNOT_UNDERSTAND, "dicom.refused", type(exc).__name__)
    except IntegrityError:  # the same instance filed meanwhile by another association
        db.rollback()
        return Outcome(SUCCESS, "dicom.duplicate", "already filed")
    if all(original.values()):  # for results sent back to the PACS (serve.pacs_send)
        db.add(PacsOrigin(case_id=case.id, **original))
        db.commit()
    log.info("DICOM instance (%s) filed as case %d", source, case.id)
    return Outcome(SUCCESS, "case.receive", "", case.id)
