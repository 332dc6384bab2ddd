"""Analyses: the model's numbers, concurrency (8 at once = sequential), no event-loop blocking."""

from __future__ import annotations

import asyncio
import shutil

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.serve.conftest import dispose, login, make_settings, png_bytes, put_boxes, upload
from vcfnet.serve.app import create_app
from vcfnet.serve.ml import model_service


def _probabilities(analysis: dict) -> np.ndarray:
    return np.array([list(f["probabilities"].values()) for f in analysis["findings"]])


def test_analysis_matches_the_predictor(app, tiny_run_dir):
    from vcfnet import load_model

    clin = login(app, "clin")
    case_id = upload(clin, png_bytes()).json()["id"]
    put_boxes(clin, case_id)
    analysis = clin.post(
        f"/api/v1/cases/{case_id}/analyses", headers={"X-CSRF-Token": clin.csrf}
    ).json()
    assert [f["level"] for f in analysis["findings"]] == ["L1", "L2"]
    assert analysis["heatmap"] is True
    heatmap = clin.get(analysis["heatmap_url"])  # under /api/v1: an API key works too
    assert analysis["heatmap_url"].startswith("/api/v1/") and heatmap.status_code == 200
    assert heatmap.headers["content-type"] == "image/png" and heatmap.content[:4] == b"\x89PNG"
    assert analysis["model"]["hash"] and analysis["model"]["runtime"] == "pytorch"
    pixels = _pixels(png_bytes())
    boxes = [(40, 50, 120, 110), (60, 130, 170, 200)]
    expected = load_model(tiny_run_dir).predict(pixels, boxes)
    for finding, box in zip(analysis["findings"], expected.boxes, strict=True):
        assert finding["predicted"] == box.predicted
        for name, p in box.probabilities.items():
            assert abs(finding["probabilities"][name] - p) < 1e-5


def test_analyse_without_boxes_is_a_conflict(app):
    clin = login(app, "clin")
    case_id = upload(clin, png_bytes()).json()["id"]
    response = clin.post(f"/api/v1/cases/{case_id}/analyses", headers={"X-CSRF-Token": clin.csrf})
    assert response.status_code == 409 and "box" in response.json()["detail"]


def test_model_is_loaded_once_per_process(app, tiny_run_dir):
    service = model_service(tiny_run_dir)
    assert app.state.vcfnet.models is service
    assert service.predictor() is service.predictor()


def test_model_is_loaded_and_its_backend_chosen_at_start_up(tmp_path, tiny_run_dir):
    """The server loads the model (timing the backends under --backend auto) before its first
    request, not on the first analysis."""
    run_dir = shutil.copytree(tiny_run_dir, tmp_path / "run")  # a service no other test loaded
    app = create_app(make_settings(tmp_path / "data", run_dir))
    try:
        assert not app.state.vcfnet.models.is_loaded
        with TestClient(app):  # runs the lifespan, like uvicorn
            assert app.state.vcfnet.models.is_loaded
            assert app.state.vcfnet.models.info()["backend"]
    finally:
        dispose(app)


def test_eight_parallel_analyses_equal_sequential(app):
    """Eight analyses at once through the ASGI app (event loop + worker threads) give the same
    probabilities and heatmaps as one after another."""
    clin = login(app, "clin")
    case_ids = []
    for seed in range(8):
        case_id = upload(clin, png_bytes(seed=seed)).json()["id"]
        put_boxes(clin, case_id)
        case_ids.append(case_id)
    headers = {"X-CSRF-Token": clin.csrf}
    sequential = [
        clin.post(f"/api/v1/cases/{c}/analyses", headers=headers).json() for c in case_ids
    ]

    async def analyse_all() -> list[dict]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", cookies=dict(clin.cookies)
        ) as client:
            responses = await asyncio.gather(
                *(client.post(f"/api/v1/cases/{c}/analyses", headers=headers) for c in case_ids)
            )
        assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
        return [r.json() for r in responses]

    parallel = asyncio.run(analyse_all())
    for one, other in zip(sequential, parallel, strict=True):
        np.testing.assert_allclose(_probabilities(one), _probabilities(other), atol=1e-6)
        assert [f["predicted"] for f in one["findings"]] == [
            f["predicted"] for f in other["findings"]
        ]
    storage = app.state.vcfnet.storage
    for case_id, one, other in zip(case_ids, sequential, parallel, strict=True):
        first = clin.get(f"/cases/{case_id}/analyses/{one['id']}/heatmap").content
        second = clin.get(f"/cases/{case_id}/analyses/{other['id']}/heatmap").content
        assert _pixels(first).shape == _pixels(second).shape
        assert np.abs(_pixels(first).astype(int) - _pixels(second).astype(int)).max() <= 1
    assert storage.root.joinpath("heatmaps").is_dir()


def _pixels(png: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)))


def test_event_loop_answers_during_an_analysis(app, monkeypatch):
    """While an analysis runs on a worker thread, the loop still serves other requests."""
    import threading
    import time

    service = app.state.vcfnet.models
    started, release = threading.Event(), threading.Event()
    real = service.analyse

    def slow_analyse(*args, **kwargs):
        started.set()
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "analyse", slow_analyse)
    clin = login(app, "clin")
    case_id = upload(clin, png_bytes()).json()["id"]
    put_boxes(clin, case_id)

    async def scenario() -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", cookies=dict(clin.cookies)
        ) as client:
            analysis = asyncio.create_task(
                client.post(
                    f"/api/v1/cases/{case_id}/analyses", headers={"X-CSRF-Token": clin.csrf}
                )
            )
            while not started.is_set():
                await asyncio.sleep(0.01)
            start = time.perf_counter()
            health = await client.get("/healthz")
            elapsed = time.perf_counter() - start
            release.set()
            assert health.status_code == 200 and (await analysis).status_code == 201
            return elapsed

    assert asyncio.run(scenario()) < 2.0


def test_grad_cam_is_not_shared_between_threads(tiny_run_dir):
    """Eight threads released at once on one model: each gets its own probabilities and heatmap
    (each Grad-CAM hook records only its own thread's activations; see
    tests/inference/test_explain.py for the deterministic case)."""
    import threading

    from vcfnet.serve.ml import ModelService

    service = ModelService(tiny_run_dir)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (300, 240), dtype=np.uint8) for _ in range(8)]
    boxes, levels = [(40, 50, 120, 110), (60, 150, 170, 230)], ["L1", "L2"]
    expected = [service.analyse(image, boxes, levels) for image in images]
    for _ in range(3):
        barrier, results, errors = threading.Barrier(8), [None] * 8, []

        def work(i: int, barrier=barrier, results=results, errors=errors) -> None:
            barrier.wait()
            try:
                results[i] = service.analyse(images[i], boxes, levels)
            except Exception as exc:  # collected: a thread's error must fail the test
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        for got, want in zip(results, expected, strict=True):
            for got_box, want_box in zip(got.boxes, want.boxes, strict=True):
                assert got_box.probabilities == pytest.approx(want_box.probabilities, abs=1e-6)
            diff = np.abs(got.heatmap_rgb.astype(int) - want.heatmap_rgb.astype(int)).max()
            assert diff <= 1
