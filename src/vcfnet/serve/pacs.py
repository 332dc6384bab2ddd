"""The hospital PACS over DICOMweb (dicomweb-client): the endpoint, search, import.

- The admin configures one endpoint (``PacsEndpoint``): QIDO-RS, WADO-RS and STOW-RS URLs (WADO
  and STOW default to the QIDO one), and auth (none, HTTP basic, bearer token). The password or
  token is stored encrypted (Fernet, key derived from the pseudonym key, which never is in the
  database); pages show only whether one is set, and nothing here logs it.
- A clinician searches by accession number or study date. The terms go to the PACS only: they are
  not stored, not audited (the audit says how many studies matched) and not logged (the HTTP
  libraries' debug logs, which print URLs, are held at WARNING; errors are reported by type and
  status, never by their message, which may hold the URL).
- Importing a study retrieves its radiograph instances (WADO-RS, one at a time, at most
  ``MAX_IMPORT`` instances) and files each through ``dicom_receiver.file_instance``: the upload's
  checks and de-identification, keyed UIDs on the case, the original UIDs in ``PacsOrigin`` only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import logging
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from vcfnet.errors import VcfnetError
from vcfnet.serve.crud import Actor, ConflictError, InvalidInputError, audit
from vcfnet.serve.dicom_receiver import RADIOGRAPH_SOP_CLASSES, SECONDARY_CAPTURE, file_instance
from vcfnet.serve.models import PACS_AUTH, PacsEndpoint, PacsOrigin, utcnow
from vcfnet.serve.settings import Settings
from vcfnet.serve.storage import LocalStorage

log = logging.getLogger(__name__)

MAX_IMPORT = 50  # instances per imported study
MAX_RESULTS = 50  # studies per search
TIMEOUT_S = 20
#: QIDO-RS study attributes shown in search results (no patient name, ID or birth date)
STUDY_FIELDS = ("StudyInstanceUID", "StudyDate", "AccessionNumber", "StudyDescription")


class PacsError(VcfnetError):
    """The PACS could not be reached or refused the request; the message names no URL or term."""


def describe(exc: Exception) -> str:
    """An error in one line without its message (requests' messages hold the URL)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "")


def quiet_http_logs() -> None:
    """urllib3 logs each URL (with the query: the search terms) at DEBUG; keep it at WARNING."""
    for name in ("urllib3", "urllib3.connectionpool", "dicomweb_client"):
        logging.getLogger(name).setLevel(logging.WARNING)


# ------------------------------------------------------------------------------- the endpoint


def _fernet(id_key: bytes):
    from cryptography.fernet import Fernet

    key = hmac.new(id_key, b"vcfnet pacs endpoint secret", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_secret(id_key: bytes, secret: str) -> str:
    return _fernet(id_key).encrypt(secret.encode("utf-8")).decode("ascii") if secret else ""


def decrypt_secret(id_key: bytes, token: str) -> str:
    from cryptography.fernet import InvalidToken

    if not token:
        return ""
    try:
        return _fernet(id_key).decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise PacsError(
            "the PACS password cannot be decrypted (the pseudonym key changed); enter it again "
            "on the PACS page"
        ) from exc


@dataclass(frozen=True)
class EndpointForm:
    qido_url: str
    wado_url: str = ""
    stow_url: str = ""
    auth: str = "none"
    username: str = ""
    secret: str | None = None  # None or "": keep the stored one
    send_on_sign: bool = True
    send_after_analysis: bool = False


def _check_url(name: str, url: str) -> str:
    url = url.strip().rstrip("/")
    if url and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc):
        raise InvalidInputError(f"the {name} URL must start with http:// or https://")
    return url


def get_endpoint(db: Session) -> PacsEndpoint | None:
    return db.scalar(select(PacsEndpoint).order_by(PacsEndpoint.id).limit(1))


def require_endpoint(db: Session) -> PacsEndpoint:
    endpoint = get_endpoint(db)
    if endpoint is None:
        raise ConflictError("no PACS is configured; an admin sets it up on the PACS page")
    return endpoint


def save_endpoint(db: Session, actor: Actor, id_key: bytes, form: EndpointForm) -> PacsEndpoint:
    """Create or update the endpoint (audited without URLs or secrets)."""
    qido = _check_url("QIDO-RS", form.qido_url)
    if not qido:
        raise InvalidInputError("give the PACS's DICOMweb (QIDO-RS) URL")
    if form.auth not in PACS_AUTH:
        raise InvalidInputError(f"auth must be one of {', '.join(PACS_AUTH)}")
    endpoint = get_endpoint(db) or PacsEndpoint(qido_url=qido)
    endpoint.qido_url = qido
    endpoint.wado_url = _check_url("WADO-RS", form.wado_url)
    endpoint.stow_url = _check_url("STOW-RS", form.stow_url)
    endpoint.auth, endpoint.username = form.auth, form.username.strip()[:128]
    if form.secret:
        endpoint.secret = encrypt_secret(id_key, form.secret)
    if form.auth == "none":
        endpoint.secret, endpoint.username = "", ""
    endpoint.send_on_sign = form.send_on_sign
    endpoint.send_after_analysis = form.send_after_analysis
    endpoint.updated_at = utcnow()
    db.add(endpoint)
    audit(db, actor, "pacs.endpoint.save", detail=f"auth {form.auth}")
    return endpoint


def make_client(endpoint: PacsEndpoint, id_key: bytes, service: str = "qido"):
    """A ``DICOMwebClient`` for ``service`` (qido | wado | stow), with the endpoint's auth."""
    import requests
    from dicomweb_client.api import DICOMwebClient

    quiet_http_logs()
    url = {"qido": endpoint.qido_url, "wado": endpoint.wado_url, "stow": endpoint.stow_url}
    session = requests.Session()
    secret = decrypt_secret(id_key, endpoint.secret)
    if endpoint.auth == "basic":
        session.auth = (endpoint.username, secret)
    elif endpoint.auth == "bearer":
        session.headers["Authorization"] = f"Bearer {secret}"
    client = DICOMwebClient(
        url=url[service] or endpoint.qido_url, session=session, timeout=TIMEOUT_S
    )
    client.set_http_retry_params(retry=False)  # the send queue retries; a search fails fast
    return client


# ------------------------------------------------------------------------------------- search


@dataclass(frozen=True)
class StudyHit:
    study_uid: str
    date: str
    accession: str
    description: str


def _value(item: dict, tag: str) -> str:
    values = item.get(tag, {}).get("Value") or [""]
    return str(values[0])


def search_studies(
    endpoint: PacsEndpoint, id_key: bytes, accession: str = "", date: str = ""
) -> list[StudyHit]:
    """Studies with this accession number and/or study date (YYYYMMDD or YYYY-MM-DD)."""
    accession, date = accession.strip(), date.strip().replace("-", "")
    if not accession and not date:
        raise InvalidInputError("give an accession number or a study date")
    if date and not (len(date) == 8 and date.isdigit()):
        raise InvalidInputError("the study date must be YYYY-MM-DD")
    filters = {k: v for k, v in (("AccessionNumber", accession), ("StudyDate", date)) if v}
    try:
        found = make_client(endpoint, id_key).search_for_studies(
            search_filters=filters, fields=list(STUDY_FIELDS), limit=MAX_RESULTS
        )
    except Exception as exc:  # requests and dicomweb-client raise many types
        raise PacsError(f"the PACS search failed: {describe(exc)}; try again later") from None
    tags = {"uid": "0020000D", "date": "00080020", "acc": "00080050", "desc": "00081030"}
    return [
        StudyHit(
            _value(item, tags["uid"]),
            _value(item, tags["date"]),
            _value(item, tags["acc"]),
            _value(item, tags["desc"]),
        )
        for item in found
        if _value(item, tags["uid"])
    ]


# ------------------------------------------------------------------------------------- import


@dataclass
class ImportResult:
    case_ids: list[int] = field(default_factory=list)
    duplicates: int = 0
    refused: int = 0
    skipped: int = 0  # not a radiograph (SR, other modalities)


def _instances(client, study_uid: str) -> list[tuple[str, str, str]]:
    """(series, instance, SOP class) of the study's instances (QIDO-RS)."""
    found = client.search_for_instances(study_instance_uid=study_uid, limit=MAX_IMPORT + 1)
    return [(_value(i, "0020000E"), _value(i, "00080018"), _value(i, "00080016")) for i in found]


def import_study(
    db: Session,
    storage: LocalStorage,
    settings: Settings,
    id_key: bytes,
    actor: Actor,
    study_uid: str,
) -> ImportResult:
    """Retrieve the radiographs of one study and file each as a case (``file_instance``)."""
    endpoint = require_endpoint(db)
    if not study_uid or len(study_uid) > 64 or not set(study_uid) <= set("0123456789."):
        raise InvalidInputError("choose a study from the search results")
    accepted = set(RADIOGRAPH_SOP_CLASSES)
    if settings.dicom_secondary_capture:
        accepted.add(SECONDARY_CAPTURE)
    result = ImportResult()
    try:
        qido = make_client(endpoint, id_key, "qido")
        wado = make_client(endpoint, id_key, "wado")
        instances = _instances(qido, study_uid)
        if len(instances) > MAX_IMPORT:
            raise InvalidInputError(f"the study has more than {MAX_IMPORT} instances; ask an admin")
        for series_uid, sop_uid, sop_class in instances:
            if sop_class not in accepted:
                result.skipped += 1
                continue
            ds = wado.retrieve_instance(study_uid, series_uid, sop_uid)
            _file(db, storage, settings, id_key, actor, ds, result)
    except (InvalidInputError, ConflictError, SQLAlchemyError):
        raise
    except Exception as exc:  # requests and dicomweb-client raise many types
        raise PacsError(f"the PACS import failed: {describe(exc)}; try again later") from None
    detail = (
        f"{len(result.case_ids)} filed, {result.duplicates} already filed, "
        f"{result.refused} refused, {result.skipped} skipped"
    )
    audit(db, actor, "pacs.import", detail=detail)
    db.commit()
    return result


def _file(db, storage, settings, id_key, actor, ds, result: ImportResult) -> None:
    if "PixelData" not in ds:
        result.skipped += 1
        return
    ds.preamble = b"\x00" * 128  # re-encoded here: nothing of the PACS's preamble is kept
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    outcome = file_instance(
        db, storage, settings, id_key, actor, ds, buffer.getvalue(), "DICOMweb import"
    )
    if outcome.action == "case.receive":
        result.case_ids.append(outcome.case_id)
    elif outcome.action == "dicom.duplicate":
        result.duplicates += 1
    else:
        result.refused += 1


# ------------------------------------------------------------------------------ the mapping


def count_origins(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(PacsOrigin)) or 0


def purge_origins(db: Session, actor: Actor) -> int:
    """Delete every case -> original UID link (results can no longer be sent back)."""
    removed = db.execute(delete(PacsOrigin)).rowcount or 0
    audit(db, actor, "pacs.origins.purge", detail=f"{removed} removed")
    return removed
