"""The crop-level refine stage: crop geometry, sub-pixel recovery of known points after seconds of
training, and the stage travelling inside the localiser checkpoint (and its ONNX export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vcfnet.localiser.crops import REFINER_KEY, CropFrame, Refiner, RefineSpec, sample_crop
from vcfnet.localiser.refine import CropSet, refine_errors_pct, refiner_payload, train_refiner
from vcfnet.localiser.targets import Body
from vcfnet.models.refiner import build_refiner


def test_crop_frame_round_trips_and_samples_where_it_says():
    frame = CropFrame(np.array([40.3, 25.7]), 1.7, np.deg2rad(6))
    xy = np.array([[3.0, 4.0], [30.5, 12.25]])
    assert np.allclose(frame.to_crop(frame.to_film(xy, 32), 32), xy)
    film = np.zeros((60, 80), np.uint8)
    film[25, 40] = 255  # one bright pixel: it lands where to_crop puts it
    crop = sample_crop(film, CropFrame(np.array([40.0, 25.0]), 1.0), 9)
    assert np.unravel_index(int(np.argmax(crop)), crop.shape) == (4, 4) and crop.max() == 1.0


def _film(rng: np.random.Generator) -> tuple[np.ndarray, Body]:
    """A 96x96 film with one bright quadrilateral 'body' at a random place; its six points."""
    w, h = rng.uniform(26, 36), rng.uniform(20, 28)
    x0, y0 = rng.uniform(15, 90 - w - 10), rng.uniform(15, 90 - h - 10)
    dy = rng.uniform(-3, 3)  # anterior-posterior height difference (a wedge)
    top = np.array([[x0, y0 + dy], [x0 + w / 2, y0 + dy / 2], [x0 + w, y0]])
    bottom = np.array([[x0, y0 + h], [x0 + w / 2, y0 + h], [x0 + w, y0 + h]])
    img = Image.new("L", (96, 96), 30)
    poly = [tuple(p + 0.5) for p in (top[0], top[2], bottom[2], bottom[0])]
    ImageDraw.Draw(img).polygon(poly, fill=200)
    pts = np.concatenate([top, bottom])
    box = np.array([x0, min(y0, y0 + dy), x0 + w, y0 + h]) + rng.uniform(-2, 2, 4)
    return np.asarray(img), Body(0, box, pts)


def _set(n: int, seed: int) -> CropSet:
    rng = np.random.default_rng(seed)
    films = [_film(rng) for _ in range(n)]
    return CropSet([f[0] for f in films], [(i, f[1]) for i, f in enumerate(films)])


@pytest.fixture()
def one_thread():
    """One torch thread: on a shared 2-core machine, several threads only wait for each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_refine_stage_recovers_known_points_to_sub_pixel(one_thread):
    """150 steps (about 4 CPU-s): median error under a film pixel on films it never saw."""
    spec = RefineSpec(crop=32, margin=1.5, width=8)
    model, losses = train_refiner(_set(48, 0), spec, steps=150, batch_size=16, lr=3e-3)
    assert losses[-1] < losses[0] / 4
    errors_pct = refine_errors_pct(Refiner(spec, model), _set(16, 1))
    median_px = np.median(errors_pct) / 100 * 24  # 24 px: the mean body height of _film
    assert median_px < 1.0, median_px


@pytest.fixture()
def refined_run(tmp_path: Path) -> Path:
    """The untrained localiser of the platform tests, with an untrained refine stage inside."""
    from tests.serve.suggest_fixtures import untrained_localiser
    from vcfnet.localiser.train import LocaliserConfig, _save
    from vcfnet.models.artifact import load_checkpoint

    run = untrained_localiser(tmp_path / "loc")
    best = run / "checkpoints" / "best.pt"
    ckpt = load_checkpoint(best)
    spec = RefineSpec(crop=32, width=8)
    payload = refiner_payload(build_refiner(8).eval(), spec, {"steps": 0})
    cfg = LocaliserConfig(data=[run], width=8, input_size="128x160")
    _save(best, ckpt.model, cfg, cfg.spec(), {REFINER_KEY: payload})
    return run


def test_refine_stage_round_trips_in_the_checkpoint_and_onnx(refined_run: Path, tmp_path: Path):
    from vcfnet.localiser.export import export_localiser_onnx, refiner_onnx_path
    from vcfnet.localiser.model import Localiser

    loc = Localiser(refined_run)
    assert loc.refiner is not None and loc.refiner.spec == RefineSpec(crop=32, width=8)
    assert Localiser(refined_run, refine=False).use_refiner is False
    from vcfnet.models.artifact import load_checkpoint

    assert loc.model_hash != load_checkpoint(refined_run / "checkpoints" / "best.pt").model_hash
    out = export_localiser_onnx(refined_run, tmp_path / "loc.onnx")
    assert refiner_onnx_path(out).is_file()
    onnx_loc = Localiser(out)
    assert onnx_loc.model_hash == loc.model_hash  # both stages' weights, in either runtime
    rng = np.random.default_rng(0)
    film, body = _film(rng)
    a = Body(0, body.box.copy(), body.points.copy())
    b = Body(0, body.box.copy(), body.points.copy())
    loc.refiner.refine(film, [a])
    onnx_loc.refiner.refine(film, [b])
    assert np.abs(a.points - b.points).max() < 1e-3
    assert not np.allclose(a.points, body.points)  # the points came from the refine stage
