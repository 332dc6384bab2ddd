"""A throw-away Orthanc PACS for the platform's tests (Debian's ``orthanc`` and
``orthanc-dicomweb`` packages).

``OrthancServer.start`` writes a JSON configuration into a new temporary folder (storage and
index there, HTTP and DICOM on free loopback ports, the DICOMweb plugin, HTTP basic auth, vcfnet's
AE registered as a modality) and runs ``Orthanc`` on it; ``stop`` ends it (the folder is kept until
``cleanup``, so a restart finds its studies again).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import requests

ORTHANC = "/usr/sbin/Orthanc"
PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc")
USER, PASSWORD = "vcfnet", "orthanc-test-password"
AE_TITLE = "ORTHANC"


def find_orthanc() -> str | None:
    return shutil.which("Orthanc") or (ORTHANC if Path(ORTHANC).exists() else None)


def find_dicomweb_plugin() -> Path | None:
    for folder in PLUGIN_DIRS:
        found = sorted(Path(folder).glob("libOrthancDicomWeb.so*")) if Path(folder).is_dir() else []
        if found:
            return found[0]
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OrthancError(RuntimeError):
    pass


class OrthancServer:
    def __init__(self, binary: str, plugin: Path, vcfnet_ae: str, vcfnet_port: int):
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="vcfnet-orthanc-"))
        self.http_port, self.dicom_port = free_port(), free_port()
        self.config = self.root / "orthanc.json"
        self.log = self.root / "orthanc.log"
        self.config.write_text(
            json.dumps(
                {
                    "Name": "vcfnet-test",
                    "StorageDirectory": str(self.root / "storage"),
                    "IndexDirectory": str(self.root / "storage"),
                    "HttpPort": self.http_port,
                    "DicomPort": self.dicom_port,
                    "DicomAet": AE_TITLE,
                    "RemoteAccessAllowed": False,
                    "AuthenticationEnabled": True,
                    "RegisteredUsers": {USER: PASSWORD},
                    "Plugins": [str(plugin)],
                    "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
                    "DicomModalities": {"vcfnet": [vcfnet_ae, "127.0.0.1", vcfnet_port]},
                    "DicomAlwaysAllowStore": True,
                    "DicomCheckCalledAet": False,
                    "StableAge": 1,
                    "HttpTimeout": 30,
                },
                indent=2,
            )
        )
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def start(self, timeout_s: float = 60) -> OrthancServer:
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [self.binary, str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise OrthancError(f"Orthanc exited: {self.log.read_text()[-2000:]}")
            try:
                if self.rest("get", "/system").status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise OrthancError(
            f"Orthanc did not answer in {timeout_s} s: {self.log.read_text()[-2000:]}"
        )

    def rest(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(
            method, self.url + path, auth=(USER, PASSWORD), timeout=30, **kwargs
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
