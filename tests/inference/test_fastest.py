"""The fastest backend of a run folder: candidates beside checkpoints/, a timed choice, pins."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.predict_fixtures import make_run_dir
from vcfnet.errors import CheckpointError
from vcfnet.inference.export import export_onnx
from vcfnet.inference.fastest import candidates, load_fastest
from vcfnet.serve.ml import ModelService


@pytest.fixture(scope="module")
def run_with_onnx(tmp_path_factory):
    """A tiny run folder with its fp32 ONNX export, and a stray export of other weights."""
    tmp = tmp_path_factory.mktemp("fastest")
    run = make_run_dir(tmp / "run", seed=0)
    export_onnx(run / "checkpoints" / "best.pt", run / "model.onnx")
    other = make_run_dir(tmp / "other", seed=1)
    export_onnx(other / "checkpoints" / "best.pt", other / "model.onnx")
    shutil.copy(other / "model.onnx", run / "another-run.onnx")
    return run


def test_candidates_are_the_checkpoint_and_its_own_exports(run_with_onnx, tmp_path):
    found = candidates(run_with_onnx)
    assert set(found) == {"torch", "onnx"}  # another-run.onnx holds other weights
    assert found["onnx"].info.hash == found["torch"].info.hash
    assert set(candidates(run_with_onnx / "model.onnx")) == {"onnx"}
    bare = make_run_dir(tmp_path / "bare")
    assert set(candidates(bare)) == {"torch"}


def test_auto_times_every_candidate_and_keeps_the_fastest(run_with_onnx):
    choice = load_fastest(run_with_onnx, "auto", repeats=2)
    assert set(choice.single_crop_ms) == {"torch", "onnx"}
    assert all(ms > 0 for ms in choice.single_crop_ms.values())
    assert choice.backend == min(choice.single_crop_ms, key=choice.single_crop_ms.get)
    runtime = {"torch": "pytorch", "onnx": "onnxruntime"}[choice.backend]
    assert choice.predictor.info.runtime == runtime
    assert choice.to_dict()["mode"] == "auto" and choice.explainer is not None


def test_pinned_backend_and_a_missing_one(run_with_onnx):
    assert load_fastest(run_with_onnx, "onnx").predictor.info.runtime == "onnxruntime"
    pinned = load_fastest(run_with_onnx, "torch")
    assert pinned.predictor.info.runtime == "pytorch" and pinned.single_crop_ms == {}
    with pytest.raises(CheckpointError, match="vcfnet export"):
        load_fastest(run_with_onnx, "onnx-int8")
    with pytest.raises(CheckpointError, match="unknown backend"):
        load_fastest(run_with_onnx, "tensorrt")


def test_service_on_onnx_keeps_the_heatmap_and_reports_the_backend(run_with_onnx):
    """The platform pinned to ONNX: probabilities from onnxruntime (equal to PyTorch up to its
    bf16 rounding), the Grad-CAM heatmap still from the checkpoint, the backend in the model info."""
    pixels = np.random.default_rng(0).integers(0, 256, (240, 200), dtype=np.uint8)
    boxes, levels = [(40, 50, 120, 110)], ["L1"]
    onnx = ModelService(run_with_onnx, backend="onnx").analyse(pixels, boxes, levels)
    torch_ = ModelService(run_with_onnx, backend="torch").analyse(pixels, boxes, levels)
    assert onnx.model["runtime"] == "onnxruntime" and onnx.model["backend"]["backend"] == "onnx"
    assert onnx.heatmap_rgb is not None and onnx.heatmap_rgb.shape == (240, 200, 3)
    for a, b in zip(onnx.boxes, torch_.boxes, strict=True):
        assert a.predicted == b.predicted
        for name, p in a.probabilities.items():
            assert abs(p - b.probabilities[name]) < 5e-3  # PyTorch runs bf16 on bf16 CPUs
    no_heatmap = ModelService(run_with_onnx, backend="onnx").analyse(
        pixels, boxes, levels, heatmap=False
    )
    assert no_heatmap.heatmap_rgb is None
