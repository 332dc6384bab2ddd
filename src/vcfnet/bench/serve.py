"""``vcfnet bench serve``: simulated clinicians against a running ``vcfnet serve`` on loopback.

The platform is started with uvicorn in a subprocess on 127.0.0.1 and a free port (never any
other address), in a temporary data folder with SQLite, serving a model: by default a freshly
built int8 ONNX export of the real architecture (ResNet-18, random weights, 224 px, quantized on
synthetic crops: the default serving path), or ``--model PATH``. Each of ``--users`` simulated
users has its own clinician account and API key, logs in once (the page views use the session
cookie; the API calls the key) and then loops for ``--seconds``: upload a synthetic lateral
radiograph (a DICOM full of fake patient data, made in memory by ``vcfnet.synth``), set a box
around the fractured vertebra, analyse, view the case page, with ``--think`` seconds after each
action. First one user does a few cycles alone, without thinking: the single-user latencies the
targets compare with. Then the server is stopped (SIGTERM, waited for).

Latencies are of single requests (think time excluded); upload->analysis is the sum of the
upload, boxes and analyse requests of one cycle. Targets (issue 13): 0 errors at 16 users;
analyse p95 <= 2x the single-user analyse latency (p50); case page p95 <= 100 ms. Each
``target_*_ratio`` is >= 1 where its target is met.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: the only address the bench's server listens on
from vcfnet.bench.serve_setup import (
    HOST,
    Account,
    Radiograph,
    add_accounts,
    build_int8_model,
    running_server,
    synthetic_radiographs,
)
from vcfnet.errors import ConfigError
from vcfnet.synth.cohort import DEFAULT_SIZE

#: targets of issue 13
TARGET_ERRORS = 0
TARGET_ANALYSE_VS_SINGLE = 2.0
TARGET_PAGE_P95_MS = 100.0
#: the request kinds of one cycle, in order
KINDS = ("upload", "boxes", "analyse", "page")
#: bounds of the options (a benchmark, not a load-testing tool)
MAX_USERS = 256
MAX_SECONDS = 3600.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=16, help="simulated users (default 16)")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="how long each user loops (default 60)"
    )
    parser.add_argument(
        "--think", type=float, default=1.0, help="seconds after each action (default 1.0)"
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="RUN_DIR, .pt or .onnx to serve (default: a fresh int8 ONNX export, random weights)",
    )
    parser.add_argument(
        "--image-size", type=int, default=224, help="input size of the default model (224)"
    )
    parser.add_argument(
        "--size",
        default=DEFAULT_SIZE,
        help=f"synthetic radiograph WIDTHxHEIGHT (default {DEFAULT_SIZE})",
    )
    parser.add_argument(
        "--radiographs", type=int, default=4, help="distinct radiographs uploaded in turn (4)"
    )
    parser.add_argument(
        "--single-n", type=int, default=5, help="single-user cycles measured first (default 5)"
    )
    parser.add_argument(
        "--max-cycles", type=int, default=1000, help="cycles per user at most (default 1000)"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per request before an error (60)"
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (default 1)")


# ------------------------------------------------------------------------------------ the inputs


# ------------------------------------------------------------------------------------ the server


# ------------------------------------------------------------------------------------- the users


@dataclass
class Stats:
    """Latencies (ms) of successful requests per kind, and counts of requests and errors."""

    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    ms: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    upload_to_analysis_ms: list[float] = field(default_factory=list)
    cycles: int = 0
    error_samples: list[str] = field(default_factory=list)


class User:
    """One simulated clinician: an httpx client with its API key and, after login, its cookie."""

    def __init__(self, client, account: Account, stats: Stats):
        self.client, self.account, self.stats = client, account, stats

    async def login(self) -> None:
        import re

        form = await self.client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]*)"', form.text)
        response = await self.client.post(
            "/login",
            data={
                "username": self.account.username,
                "password": self.account.password,
                "csrf_token": token.group(1) if token else "",
            },
        )
        if response.status_code != 303:
            raise RuntimeError(f"login of {self.account.username}: HTTP {response.status_code}")

    async def call(self, kind: str, method: str, url: str, expect: int, **kwargs):
        """The response, or None on an error (counted, a few kept); latency recorded if OK."""
        self.stats.requests[kind] += 1
        start = time.perf_counter()
        try:
            response = await self.client.request(method, url, **kwargs)
        except Exception as exc:  # timeouts, refused connections: all errors of the run
            response, problem = None, f"{kind}: {type(exc).__name__}: {exc}"
        else:
            problem = (
                ""
                if response.status_code == expect
                else (f"{kind}: HTTP {response.status_code} {response.text[:200]}")
            )
        ms = (time.perf_counter() - start) * 1000
        if problem:
            self.stats.errors[kind] += 1
            if len(self.stats.error_samples) < 10:
                self.stats.error_samples.append(problem)
            return None, ms
        self.stats.ms[kind].append(ms)
        return response, ms

    async def cycle(self, radiograph: Radiograph, think: float) -> None:
        """Upload, set the box, analyse, view the case page; ``think`` s after each action."""
        self.stats.cycles += 1
        files = {"file": (radiograph.name, radiograph.data, "application/dicom")}
        response, upload_ms = await self.call("upload", "POST", "/api/v1/cases", 201, files=files)
        await asyncio.sleep(think)
        if response is None:
            return
        case_id = response.json()["id"]
        boxes = {"boxes": [radiograph.box]}
        url = f"/api/v1/cases/{case_id}"
        response, boxes_ms = await self.call("boxes", "PUT", f"{url}/boxes", 200, json=boxes)
        await asyncio.sleep(think)
        if response is None:
            return
        response, analyse_ms = await self.call("analyse", "POST", f"{url}/analyses", 201)
        await asyncio.sleep(think)
        if response is not None:
            self.stats.upload_to_analysis_ms.append(upload_ms + boxes_ms + analyse_ms)
        await self.call("page", "GET", f"/cases/{case_id}", 200)
        await asyncio.sleep(think)


async def _run_users(
    url: str,
    accounts: list[Account],
    radiographs: list[Radiograph],
    *,
    seconds: float,
    think: float,
    single_n: int,
    max_cycles: int,
    timeout: float,
) -> dict[str, Any]:
    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    single, load = Stats(), Stats()
    limits = httpx.Limits(max_connections=4)
    clients = [
        httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {a.api_key}"},  # pages ignore it: cookie only
            timeout=timeout,
            limits=limits,
        )
        for a in accounts
    ]
    try:
        users = [User(c, a, load) for c, a in zip(clients, accounts, strict=True)]
        for user in users:  # one at a time: not part of the measurement
            await user.login()
        alone = User(clients[0], accounts[0], Stats())
        await alone.cycle(radiographs[0], 0.0)  # warm-up: the model loads on first use
        alone.stats = single
        for i in range(single_n):
            await alone.cycle(radiographs[i % len(radiographs)], 0.0)

        cycle_s = len(KINDS) * think

        async def loop(i: int, user: User) -> None:
            # users start spread over one cycle, as people would, not all in the same instant
            await asyncio.sleep(cycle_s * i / len(users))
            n = 0
            while n < max_cycles and time.perf_counter() < deadline:
                await user.cycle(radiographs[(i + n) % len(radiographs)], think)
                n += 1

        start = time.perf_counter()
        deadline = start + seconds
        bound = seconds + cycle_s + len(KINDS) * timeout + 10  # every request bounded too
        await asyncio.wait_for(
            asyncio.gather(*(loop(i, u) for i, u in enumerate(users))), timeout=bound
        )
        duration = time.perf_counter() - start
    finally:
        for client in clients:
            await client.aclose()
    return {"single": single, "load": load, "duration_s": duration}


# -------------------------------------------------------------------------------------- the report


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _counts(stats: Stats, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in KINDS:
        out[f"{prefix}{kind}_p50_ms"] = _p(stats.ms[kind], 50)
        out[f"{prefix}{kind}_p95_ms"] = _p(stats.ms[kind], 95)
    out[f"{prefix}upload_to_analysis_p50_ms"] = _p(stats.upload_to_analysis_ms, 50)
    out[f"{prefix}upload_to_analysis_p95_ms"] = _p(stats.upload_to_analysis_ms, 95)
    out[f"{prefix}requests"] = sum(stats.requests.values())
    out[f"{prefix}successes"] = sum(len(v) for v in stats.ms.values())
    out[f"{prefix}errors"] = sum(stats.errors.values())
    out[f"{prefix}cycles"] = stats.cycles
    out[f"{prefix}analyses"] = len(stats.ms["analyse"])
    return out


def report(measured: dict[str, Any]) -> dict[str, Any]:
    """The numbers and the targets from what ``_run_users`` measured."""
    single, load, duration = measured["single"], measured["load"], measured["duration_s"]
    out = {**_counts(single, "single_"), **_counts(load, "")}
    out["requests_by_kind"] = dict(load.requests)
    out["errors_by_kind"] = dict(load.errors)
    out["error_samples"] = list(single.error_samples + load.error_samples)
    out["duration_s"] = duration
    out["requests_per_s"] = out["requests"] / duration if duration > 0 else float("nan")
    out["analyses_per_s"] = out["analyses"] / duration if duration > 0 else float("nan")
    errors = out["errors"] + out["single_errors"]
    out["target_errors_met"] = errors <= TARGET_ERRORS
    single_ms = out["single_analyse_p50_ms"]
    ratio = out["analyse_p95_ms"] / single_ms if single_ms > 0 else float("nan")
    out["analyse_p95_vs_single"] = ratio
    out["target_analyse_met"] = bool(ratio <= TARGET_ANALYSE_VS_SINGLE)
    out["target_analyse_ratio"] = TARGET_ANALYSE_VS_SINGLE / ratio
    single_e2e = out["single_upload_to_analysis_p50_ms"]
    out["upload_to_analysis_p95_vs_single"] = (
        out["upload_to_analysis_p95_ms"] / single_e2e if single_e2e > 0 else float("nan")
    )
    out["target_page_met"] = bool(out["page_p95_ms"] <= TARGET_PAGE_P95_MS)
    out["target_page_ratio"] = TARGET_PAGE_P95_MS / out["page_p95_ms"]
    return out


def _check(args: argparse.Namespace) -> None:
    if not 1 <= args.users <= MAX_USERS:
        raise ConfigError(f"--users must be 1..{MAX_USERS} (got {args.users})")
    if not 0 < args.seconds <= MAX_SECONDS:
        raise ConfigError(f"--seconds must be in (0, {MAX_SECONDS:g}] (got {args.seconds})")
    if not 0 <= args.think <= 60:
        raise ConfigError(f"--think must be 0..60 s (got {args.think})")
    if args.radiographs < 1 or args.single_n < 1 or args.max_cycles < 1 or args.workers < 1:
        raise ConfigError("--radiographs, --single-n, --max-cycles and --workers must be >= 1")
    if not 0 < args.timeout <= 600:
        raise ConfigError(f"--timeout must be in (0, 600] s (got {args.timeout})")


def run(args: argparse.Namespace) -> dict:
    """Build the model (unless ``--model``), start the server, measure one user alone and then
    ``--users`` together, stop the server; the numbers and the targets."""
    try:
        import httpx  # noqa: F401
    except ImportError:
        raise ConfigError("vcfnet bench serve needs httpx: pip install httpx") from None
    from vcfnet.serve.settings import Settings

    _check(args)
    results: dict[str, Any] = {
        "host": HOST,
        "users": args.users,
        "seconds": args.seconds,
        "think_s": args.think,
        "workers": args.workers,
        "radiograph_size": args.size,
        "cpu_count": os.cpu_count(),
        "load_avg_before": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory(prefix="vcfnet-bench-serve-") as tmp:
        tmp_path = Path(tmp)
        start = time.perf_counter()
        if args.model is None:
            model = build_int8_model(tmp_path, int(args.image_size))
            results["model"] = f"int8 ONNX, ResNet-18 random weights, {args.image_size} px"
        else:
            model = Path(args.model).resolve()
            results["model"] = str(args.model)
        results["model_build_s"] = time.perf_counter() - start
        radiographs = synthetic_radiographs(args.radiographs, args.size)
        results["radiograph_bytes"] = len(radiographs[0].data)
        settings = Settings(
            data_dir=tmp_path / "data",
            model_path=model,
            id_key="vcfnet-bench-serve-pseudonym-key",
        )
        start = time.perf_counter()
        accounts = add_accounts(settings, args.users)
        results["accounts_s"] = time.perf_counter() - start
        with running_server(settings, args.workers, tmp_path / "server.log") as server:
            cpu_before, client_before = server.cpu_seconds(), time.process_time()
            measured = asyncio.run(
                _run_users(
                    server.url,
                    accounts,
                    radiographs,
                    seconds=float(args.seconds),
                    think=float(args.think),
                    single_n=int(args.single_n),
                    max_cycles=int(args.max_cycles),
                    timeout=float(args.timeout),
                )
            )
            server_cpu = server.cpu_seconds() - cpu_before
            client_cpu = time.process_time() - client_before
        results["server_stopped_cleanly"] = server.stopped_cleanly
        results["server_exit_code"] = server.exit_code
    results.update(report(measured))
    # CPU of the whole run (single-user phase, logins and the load); the cores were shared
    results["server_cpu_s"] = server_cpu
    results["client_cpu_s"] = client_cpu
    results["load_avg_after"] = os.getloadavg()[0]
    return results
