"""train-localiser in two data-parallel CPU processes (``--nproc 2`` and torchrun): the same recipe
as one process, identical replicas, rank 0 alone writes and reports, a killed run resumes to the
same weights. Each test starts processes that import torch: tens of seconds on a busy 2-core CPU."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.localiser.conftest import TINY_LOCALISER
from vcfnet.io.images import read_radiograph
from vcfnet.localiser.crops import REFINER_KEY
from vcfnet.localiser.data import letterbox_pixels
from vcfnet.localiser.train import LocaliserConfig, train_localiser
from vcfnet.models.artifact import load_checkpoint
from vcfnet.models.localiser import build_localiser

AGREE = "all 2 ranks hold identical weights"


def _maps(model: torch.nn.Module, film: Path) -> torch.Tensor:
    px, _ = letterbox_pixels(read_radiograph(film).pixels, 160, 128)
    x = torch.from_numpy(((px[None, None] / 255.0 - 0.5) / 0.25).astype(np.float32))
    with torch.inference_mode():
        return model.eval()(x)


@pytest.mark.slow
def test_two_processes_train_like_one(cohort: Path, tmp_path: Path):
    """Same global batches (no augmentation): two ranks' weights agree with one process's up to
    per-rank batch-norm statistics and loss normalisation."""
    kw = dict(data=[cohort], width=8, input_size="128x160", epochs=1, steps_per_epoch=2)
    kw.update(batch_size=4, refine_steps=0, val_fraction=0.0, augment=0.0, precision="fp32")
    single = train_localiser(LocaliserConfig(out=tmp_path / "ws1", **kw))
    double = train_localiser(LocaliserConfig(out=tmp_path / "ws2", nproc=2, **kw))
    assert AGREE in (tmp_path / "ws2" / "train.log").read_text()
    torch.manual_seed(0)  # the run's seed: the network is built right after seeding
    film = sorted((cohort / "WHTH" / "images").glob("*.dcm"))[0]
    m0 = _maps(build_localiser(8, 8), film)
    m1 = _maps(load_checkpoint(tmp_path / "ws1" / "checkpoints" / "last.pt").model, film)
    m2 = _maps(load_checkpoint(tmp_path / "ws2" / "checkpoints" / "last.pt").model, film)
    # relative to how far training moved the maps (measured 0.13)
    assert (m2 - m1).abs().max() < 0.3 * (m1 - m0).abs().max()
    assert abs(double["history"][0]["loss"] - single["history"][0]["loss"]) < 0.05


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "vcfnet", "train-localiser", *args]


def _torchrun(*args: str) -> list[str]:
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    return [*run, "-m", "vcfnet", "train-localiser", *args]


def _epochs(run: Path) -> list[str]:
    return [r["epoch"] for r in csv.DictReader((run / "metrics.csv").open())]


@pytest.mark.slow
def test_torchrun_two_processes_and_a_killed_run_resumed(cohort: Path, tmp_path: Path):
    args = [*TINY_LOCALISER, "--data", str(cohort), "--epochs", "3", "--steps-per-epoch", "6"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    whole = tmp_path / "torchrun"
    done = subprocess.run(_torchrun(*args, "--out", str(whole)), env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode().count("best epoch") == 1  # rank 0 alone reports
    assert (whole / "train.log").read_text().count(AGREE) == 2  # both stages
    assert _epochs(whole) == ["1", "2", "3"]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(*args, "--out", str(killed), "--nproc", "2"), env=env, start_new_session=True
    )
    last, deadline = killed / "checkpoints" / "last.pt", time.monotonic() + 120
    while not last.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks, mid-run
    proc.wait()
    assert load_checkpoint(last).extra["epoch"] < 3, "not killed mid-run"
    resumed = subprocess.run(_torchrun(*args, "--out", str(killed)), env=env)
    assert resumed.returncode == 0
    assert "resumed from" in (killed / "train.log").read_text()
    assert _epochs(killed) == ["1", "2", "3"]
    a, b = (load_checkpoint(r / "checkpoints" / "last.pt") for r in (whole, killed))
    assert a.model_hash == b.model_hash
    a, b = (load_checkpoint(r / "checkpoints" / "best.pt") for r in (whole, killed))
    assert a.extra[REFINER_KEY]["hash"] == b.extra[REFINER_KEY]["hash"]
