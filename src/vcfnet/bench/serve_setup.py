"""What ``vcfnet bench serve`` sets up: synthetic radiographs, an int8 model, clinician
accounts with API keys, and the platform running under uvicorn on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: the only address the bench's server listens on
HOST = "127.0.0.1"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Radiograph:
    """A synthetic lateral radiograph as uploaded, and the box around its fractured vertebra."""

    name: str
    data: bytes
    box: dict[str, Any]  # level, x1, y1, x2, y2


def synthetic_radiographs(n: int, size: str, seed: int = 0) -> list[Radiograph]:
    """``n`` DICOMs (uncompressed DX with a fake patient identity) rendered by ``vcfnet.synth``."""
    from vcfnet.synth.cohort import SynthConfig, plan_site, render_task
    from vcfnet.synth.dicom import dicom_bytes
    from vcfnet.synth.sites import preset_sites

    cfg = SynthConfig(size=size, seed=seed)
    site = preset_sites("paper")[0]  # SITE1: DX, explicit VR little endian
    out = []
    for task in plan_site(site, 0, cfg)[:n]:
        image, rows, _vertebrae = render_task(task)
        row = rows[0]
        box = {"level": row["level"], "x1": float(row["xmin"]), "y1": float(row["ymin"])}
        box.update(x2=float(row["xmax"]), y2=float(row["ymax"]))
        out.append(Radiograph(f"{task.image}.dcm", dicom_bytes(task, image), box))
    return out


def calibration_crops(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` gray uint8 crops of varying size (like ROI crops) to calibrate int8 activations."""
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(n):
        h, w = int(rng.integers(240, 410)), int(rng.integers(330, 540))
        gray = rng.normal(110, 30, (h, w)) + np.linspace(0, 60, w)[None, :]
        crops.append(np.clip(gray, 0, 255).astype(np.uint8))
    return crops


def build_int8_model(folder: Path, image_size: int, n_calibration: int = 32) -> Path:
    """ResNet-18 (random weights, seed 0) at ``image_size`` exported to ONNX, quantized to int8."""
    import torch

    from vcfnet.inference.export import export_onnx, quantize_onnx
    from vcfnet.models.artifact import save_checkpoint
    from vcfnet.models.classifier import build_model
    from vcfnet.preprocess import InputSpec, Preprocessing

    torch.manual_seed(0)
    pre = Preprocessing(input=InputSpec(image_size=image_size))
    save_checkpoint(folder / "model.pt", build_model().eval(), preprocessing=pre, config={})
    export_onnx(folder / "model.pt", folder / "model.onnx")
    return quantize_onnx(
        folder / "model.onnx", folder / "model_int8.onnx", calibration_crops(n_calibration)
    )


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    api_key: str


def add_accounts(settings, n: int) -> list[Account]:
    """``n`` clinicians (each in a hospital of its own), each with an API key."""
    from vcfnet.serve import crud, security
    from vcfnet.serve.db import make_engine, make_session_factory, session_scope
    from vcfnet.serve.migrations import upgrade_database

    engine = make_engine(settings.database_url)
    try:
        upgrade_database(engine)
        accounts = []
        with session_scope(make_session_factory(engine)) as db:
            for i in range(n):
                username, password = f"bench{i:03d}", security.random_password()
                user = crud.create_user(
                    db,
                    settings,
                    username=username,
                    password=password,
                    role="clinician",
                    hospital=f"Bench Hospital {i}",
                )
                key, _ = security.create_api_key(db, user, "bench serve")
                accounts.append(Account(username, password, key))
        return accounts
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path
    exit_code: int | None = None
    stopped_cleanly: bool = False

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        """CPU time of the server process and its workers so far."""
        import psutil

        try:
            proc = psutil.Process(self.process.pid)
            procs = [proc, *proc.children(recursive=True)]
            total = 0.0
            for p in procs:
                t = p.cpu_times()
                total += t.user + t.system
            return total
        except psutil.Error:
            return float("nan")


@contextmanager
def running_server(settings, workers: int, log_path: Path) -> Iterator[Server]:
    """``vcfnet serve``'s app under uvicorn on 127.0.0.1:<free port> in a subprocess; stopped
    with SIGTERM on the way out (uvicorn finishes the requests in flight and the application's
    shutdown), SIGKILL only after ``STOP_TIMEOUT_S``."""
    import httpx

    from vcfnet.serve.app import SETTINGS_ENV

    port = free_port()
    env = dict(os.environ)
    env[SETTINGS_ENV] = json.dumps(asdict(settings), default=str)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "vcfnet.serve.app:app_from_environment",
        "--factory",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "info",  # start-up and shutdown lines only (no access log): proof of a clean stop
        "--no-access-log",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://{HOST}:{port}", process, log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{server.log_tail()}")
            try:
                if httpx.get(f"{server.url}/healthz", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer in {START_TIMEOUT_S:g} s")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
                # uvicorn shuts down gracefully, then re-raises the signal it caught
                server.stopped_cleanly = process.returncode in (0, -signal.SIGTERM) and (
                    "Finished server process" in server.log_tail(100_000)
                )
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        server.exit_code = process.returncode
