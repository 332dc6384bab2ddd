"""SIGKILL of a real ``vcfnet serve`` process mid-upload, then a restart: no case row without its
files, no half-written file visible, orphans swept.

Two moments: (a) while the request body is still arriving (the client pauses half-way), and
(b) after the case's PNG is written but before its row commits (a test-only patch in the server
process sleeps there). Slow: three server starts.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.serve.conftest import PASSWORD, add_users, dispose, make_settings, page_csrf, png_bytes
from vcfnet.serve.app import create_app

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
#: runs ``vcfnet serve``; test-only patches: VCFNET_TEST_HANG=write sleeps after writing an image,
#: =analysis sleeps in the analysis job; jobs count as dead after 2 s
LAUNCHER = """
import dataclasses, os, sys, time
from vcfnet.cli import serve as cli_serve
from vcfnet.serve import analysis_jobs, storage
hang = os.environ.get("VCFNET_TEST_HANG")
if hang == "write":
    write = storage.LocalStorage.write_bytes
    def hanging(self, key, data):
        write(self, key, data)
        if key.startswith("images/"):
            time.sleep(60)
    storage.LocalStorage.write_bytes = hanging
if hang == "analysis":
    analyse = analysis_jobs.analyse_case
    def slow(*args):
        time.sleep(60)
        return analyse(*args)
    analysis_jobs.analyse_case = slow
settings_from_args = cli_serve.settings_from_args
cli_serve.settings_from_args = lambda args: dataclasses.replace(
    settings_from_args(args), job_stale_after_s=2.0
)
from vcfnet.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data: Path, hang: str = "", model: Path | None = None):
        self.port = _free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO),
            "VCFNET_ID_KEY": "serve-test-pseudonym-key",
        }
        env["VCFNET_TEST_HANG"] = hang
        command = [sys.executable, "-c", LAUNCHER, "serve", "--data", str(data)]
        if model is not None:
            command += ["--model", str(model)]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.kill()
        raise RuntimeError("vcfnet serve did not start within 120 s")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def login(self) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=120)
        form = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]*)"', form).group(1)
        data = {"username": "clin", "password": PASSWORD, "csrf_token": token}
        assert client.post("/login", data=data).status_code == 303
        client.csrf = page_csrf(client.get("/account").text)
        return client


@pytest.fixture()
def data_dir(tmp_path) -> Path:
    """A data folder with the test users (made in-process, then closed)."""
    app = create_app(make_settings(tmp_path))
    add_users(app)
    dispose(app)
    return tmp_path / "data"


def _cases(server: Server) -> list:
    return server.login().get("/api/v1/cases").json()


def _check_clean(data: Path) -> None:
    """Every visible file is whole; no temp file of an atomic write is left."""
    for folder in ("images", "originals", "heatmaps", "tmp"):
        for path in (data / folder).rglob("*") if (data / folder).exists() else ():
            assert path.is_dir() or not path.name.startswith("."), f"temp file left: {path}"
            if path.suffix == ".png":
                with Image.open(path) as img:
                    img.load()


def _age(folder: Path, seconds: float = 7200) -> None:
    """Files left by the killed server look old (the start-up sweep spares files younger than an
    hour: they may belong to an upload still in flight on another process)."""
    for path in folder.rglob("*"):
        past = time.time() - seconds
        os.utime(path, (past, past))


def test_sigkill_while_the_body_is_arriving(data_dir):
    server = Server(data_dir)
    try:
        client = server.login()
        body_start = (
            b'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
            + client.csrf.encode()
            + b'\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + png_bytes(512, 512)
        )
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        head = (
            "POST /cases HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {len(body_start) + 8 * 1024 * 1024}\r\nCookie: {cookie}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.sendall(head.encode() + body_start + b"\0" * (2 * 1024 * 1024))
            time.sleep(1.0)  # the server is reading the body; the client pauses half-way
            server.kill()
    finally:
        if server.process.poll() is None:
            server.kill()
    restarted = Server(data_dir)
    try:
        assert _cases(restarted) == []
        _check_clean(data_dir)
        assert not list(data_dir.glob("images/*"))
    finally:
        restarted.kill()


def test_sigkill_between_the_file_and_its_row(data_dir):
    server = Server(data_dir, hang="write")
    client = server.login()
    files = {"file": ("x.png", png_bytes(), "image/png")}

    def post() -> None:
        with contextlib.suppress(httpx.TransportError):  # the server dies under the request
            client.post("/cases", files=files, data={"csrf_token": client.csrf})

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    images = data_dir / "images"
    deadline = time.monotonic() + 60
    while not (images.exists() and list(images.glob("*.png"))) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(images.glob("*.png")), "the server never wrote the image"
    server.kill()
    thread.join(30)
    _check_clean(data_dir)  # the image on disk is whole (written atomically) ...
    _age(data_dir)
    restarted = Server(data_dir)
    try:
        assert _cases(restarted) == []  # ... its row never committed ...
        assert not list(images.glob("*")), "the orphan image was not swept"  # ... and it is gone
        _check_clean(data_dir)
    finally:
        restarted.kill()


def test_sigkill_during_an_analysis_job_then_another_process_finishes_it(data_dir, tiny_run_dir):
    """The server dies while its worker runs the job; the job stays ``running``; a restarted
    server sees it stale (2 s here), requeues it and runs it: one analysis, attempts 2."""
    server = Server(data_dir, hang="analysis", model=tiny_run_dir)
    client = server.login()
    case_id = client.post(
        "/api/v1/cases",
        files={"file": ("x.png", png_bytes(), "image/png")},
        headers={"X-CSRF-Token": client.csrf},
    ).json()["id"]
    boxes = {"boxes": [{"level": "L1", "x1": 40, "y1": 50, "x2": 120, "y2": 110}]}
    headers = {"X-CSRF-Token": client.csrf}
    assert client.put(f"/api/v1/cases/{case_id}/boxes", json=boxes, headers=headers).is_success

    def analyse() -> None:
        with contextlib.suppress(httpx.TransportError):  # the server dies under the request
            client.post(f"/api/v1/cases/{case_id}/analyses", headers=headers)

    thread = threading.Thread(target=analyse, daemon=True)
    thread.start()
    observer = server.login()
    deadline = time.monotonic() + 60
    while observer.get("/api/v1/jobs/1").json().get("state") != "running":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.1)
    server.kill()
    thread.join(30)
    restarted = Server(data_dir, model=tiny_run_dir)
    try:
        client = restarted.login()
        deadline = time.monotonic() + 60
        while (job := client.get("/api/v1/jobs/1").json())["state"] != "done":
            assert job["state"] != "failed" and time.monotonic() < deadline, job
            time.sleep(0.2)
        case = client.get(f"/api/v1/cases/{case_id}").json()
        assert case["analysis"]["id"] == job["analysis"] and job["attempts"] == 2
    finally:
        restarted.kill()
