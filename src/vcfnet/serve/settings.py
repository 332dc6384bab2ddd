"""The platform's settings: one dataclass, filled from the command line (``vcfnet serve``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Everything ``create_app`` needs; paths are resolved against the working folder."""

    data_dir: Path = Path("vcfnet-data")
    db_url: str | None = None  # default: sqlite:///<data_dir>/vcfnet.db
    model_path: Path | None = None  # RUN_DIR, .pt or .onnx; None: analysis unavailable
    localiser_path: Path | None = None  # vertebra localiser (Suggest boxes); None: no button
    model_backend: str = "auto"  # auto (fastest single crop at load) | torch | onnx | onnx-int8
    max_upload_bytes: int = 64 * MIB
    max_pixels: int = 60_000_000  # width x height, checked from the header before decoding
    keep_originals: bool = False  # keep the uploaded file (it holds patient data) beside the case
    secure_cookies: bool = False  # set behind TLS: cookies get the Secure flag
    session_hours: float = 12.0
    login_max_failures: int = 5  # failed logins per user name or client address ...
    login_window_minutes: float = 15.0  # ... within this window before 429
    id_key: str | None = None  # pseudonym key; None: $VCFNET_ID_KEY, else the per-user key file
    argon2_profile: str = "RFC_9106_LOW_MEMORY"  # argon2.profiles name; tests use CHEAPEST
    # DICOM C-STORE receiver (``serve.dicom_receiver``); off unless a port is given
    dicom_port: int | None = None
    ae_title: str = "VCFNET"  # the receiver's own AE title
    allowed_aes: tuple[str, ...] = ()  # calling AE titles let in; empty: any
    pacs_username: str = "pacs"  # the clinician account received images are filed under
    dicom_secondary_capture: bool = False  # also accept Secondary Capture images
    max_dicom_bytes: int = 64 * MIB  # a larger C-STORE dataset is refused (0xA700)
    # results sent to the PACS (``serve.pacs_send``): first retry after this, doubling, <= 1 h
    pacs_retry_seconds: float = 30.0
    # reader studies: folders under which researchers may import a prepared dataset by its path
    study_import_dirs: tuple[Path, ...] = ()
    # background jobs (``serve.jobs``): worker threads per serve process, how long a request
    # waits for its analysis before answering "queued", when a running job counts as dead
    job_workers: int = 2
    job_wait_s: float = 120.0
    job_stale_after_s: float = 600.0
    # where case files live: None = the data folder; "s3://bucket/prefix" (``serve.storage_s3``)
    storage_url: str | None = None

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(Path(self.data_dir) / 'vcfnet.db').resolve()}"

    @property
    def cookie_name(self) -> str:
        # "__Host-" makes browsers refuse the cookie unless Secure, path=/ and no Domain
        return "__Host-vcfnet-session" if self.secure_cookies else "vcfnet-session"
