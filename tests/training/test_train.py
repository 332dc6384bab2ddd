"""vcfnet train: run folder contents, reproducibility, resume equality, validation split, DDP."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from tests.factories import make_tiny_dataset, resnet18_gflop_per_image
from tests.factories import reference_proba as predict_proba
from vcfnet.bench.train import run as bench_train
from vcfnet.cli import main
from vcfnet.data.dataset import load_split
from vcfnet.data.manifest import read_manifest
from vcfnet.errors import ConfigError, InputError, WeightsUnavailableError
from vcfnet.labels import CLASS_NAMES
from vcfnet.models.artifact import load_checkpoint, state_dict_hash
from vcfnet.models.classifier import build_model, imagenet_weights_path
from vcfnet.training.config import METRIC_COLUMNS, TIME_COLUMNS, TrainConfig
from vcfnet.training.loop import train

TINY = [
    "--epochs",
    "3",
    "--image-size",
    "32",
    "--batch-size",
    "8",
    "--weights",
    "none",
    "--workers",
    "1",
    "--no-progress",
    "--lr",
    "1e-3",
]


def tiny_config(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        data=data,
        out=out,
        epochs=3,
        image_size=32,
        batch_size=8,
        weights="none",
        workers=1,
        progress=False,
        lr=1e-3,
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run as fast on one thread, and a busy shared CPU makes OpenMP spin-waits costly."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A tiny dataset whose test crops are corrupt PNGs: every run of this module proves that
    training never reads them (deleting them instead would trip read_manifest's file check)."""
    data = make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "ds", n_per_class=5, size=40)
    manifest = read_manifest(data)
    for rel in manifest.loc[manifest["split"] == "test", "crop_path"]:
        (data / rel).write_bytes(b"\x89PNG\r\n\x1a\n not a PNG any more")
    return data


@pytest.fixture(scope="module")
def cli_run(dataset, tmp_path_factory) -> Path:
    """A 3-epoch run through the CLI."""
    out = tmp_path_factory.mktemp("runs") / "a"
    assert main(["train", "--data", str(dataset), "--out", str(out), *TINY]) == 0
    return out


def without_time(path: Path) -> pd.DataFrame:
    return pd.read_csv(path).drop(columns=list(TIME_COLUMNS))


def test_run_folder_holds_what_the_issue_lists(cli_run):
    for name in (
        "config.yaml",
        "metrics.csv",
        "train.log",
        "model_card.md",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
    ):
        assert (cli_run / name).is_file(), name
    metrics = pd.read_csv(cli_run / "metrics.csv")
    assert list(metrics.columns) == list(METRIC_COLUMNS)
    assert metrics["epoch"].tolist() == [1, 2, 3]
    assert metrics["train_loss"].iloc[-1] < metrics["train_loss"].iloc[0]  # it learns
    assert (metrics["images_per_s"] > 0).all()
    config = yaml.safe_load((cli_run / "config.yaml").read_text())
    assert config["weights"] == "none" and config["image_size"] == 32 and config["epochs"] == 3
    log = (cli_run / "train.log").read_text()
    assert log.count("epoch ") >= 3
    card = (cli_run / "model_card.md").read_text()
    assert "none (random init)" in card and "Intended use" in card and "Limits" in card

    last = load_checkpoint(cli_run / "checkpoints" / "last.pt")  # weights_only=True inside
    assert last.extra["epoch"] == 3 and len(last.extra["history"]) == 3
    assert last.preprocessing.image_size == 32
    assert last.model_hash == state_dict_hash(last.model.state_dict())
    best = load_checkpoint(cli_run / "checkpoints" / "best.pt")
    best_epoch = best.extra["best_epoch"]
    expected = metrics["val_macro_auc"].idxmax() + 1
    assert best_epoch == expected and best.extra["epoch"] == best_epoch


def test_training_never_reads_the_test_crops(cli_run, dataset):
    """The fixture's test crops are corrupt, yet the CLI run trained on all train and val rows."""
    with pytest.raises(InputError, match="cannot read crop"):
        load_split(dataset, "test", 32)
    counts = load_checkpoint(cli_run / "checkpoints" / "last.pt").extra["data_counts"]
    assert counts == {"train": [5, 5, 5], "val": [5, 5, 5]}


@pytest.mark.slow  # covered by test_resume_after_stop_matches_uninterrupted_run (same metrics and hash as cli_run)
def test_same_seed_gives_identical_metrics(cli_run, dataset, tmp_path):
    result = train(tiny_config(dataset, tmp_path / "b"))
    pd.testing.assert_frame_equal(
        without_time(cli_run / "metrics.csv"), without_time(tmp_path / "b" / "metrics.csv")
    )
    assert result.model_hash == load_checkpoint(cli_run / "checkpoints" / "last.pt").model_hash


def test_resume_after_stop_matches_uninterrupted_run(cli_run, dataset, tmp_path):
    """Three invocations of one epoch each end where the uninterrupted run ends, and after each
    best.pt is the checkpoint of the best val loss so far, kept through later resumes (on this
    CPU's bf16 path the best is epoch 2; fp32 on an AVX2-only CPU trains another trajectory)."""
    val_loss = pd.read_csv(cli_run / "metrics.csv")["val_loss"]
    best_epoch = int(val_loss.idxmin()) + 1  # the first minimum: ties do not replace the best
    out = tmp_path / "c"
    cfg = tiny_config(dataset, out, max_epochs_this_run=1, select_metric="loss")
    saved = {}  # epoch -> hash of the weights saved at that epoch
    for epoch in (1, 2, 3):
        if epoch == 2:
            with pytest.raises(ConfigError, match="--resume"):
                train(dataclasses.replace(cfg, resume=False))
        result = train(dataclasses.replace(cfg, resume=epoch > 1))
        assert result.metrics["epoch"].tolist() == list(range(1, epoch + 1))
        last = load_checkpoint(out / "checkpoints" / "last.pt")
        assert last.extra["epoch"] == epoch
        saved[epoch] = last.model_hash
        best = load_checkpoint(out / "checkpoints" / "best.pt")
        expected = int(val_loss.iloc[:epoch].idxmin()) + 1
        assert best.extra["best_epoch"] == best.extra["epoch"] == expected, epoch
        assert best.model_hash == saved[expected], epoch
    assert len(set(saved.values())) == 3
    best_hash = load_checkpoint(out / "checkpoints" / "best.pt").model_hash
    assert (saved[3] == best_hash) == (best_epoch == 3)
    assert saved[3] == load_checkpoint(cli_run / "checkpoints" / "last.pt").model_hash
    pd.testing.assert_frame_equal(
        without_time(cli_run / "metrics.csv"), without_time(out / "metrics.csv")
    )
    assert "resumed from" in (out / "train.log").read_text()


def test_no_validation_split_is_a_clear_error(tmp_path):
    data = make_tiny_dataset(tmp_path / "ds", n_per_class=2, size=24, splits=("train", "test"))
    with pytest.raises(InputError, match="split == val"):
        train(tiny_config(data, tmp_path / "run"))
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY]) == 2


@pytest.mark.skipif(imagenet_weights_path().is_file(), reason="ImageNet weights are cached here")
def test_patient_in_two_splits_is_refused(tmp_path):
    data = make_tiny_dataset(tmp_path / "d", n_per_class=2, size=32)
    manifest = pd.read_csv(data / "manifest.csv")
    test_row = manifest.index[manifest["split"] == "test"][0]
    manifest.loc[test_row, "patient_id"] = manifest.loc[0, "patient_id"]  # a train patient
    manifest.to_csv(data / "manifest.csv", index=False)
    cfg = TrainConfig(data=data, out=tmp_path / "run", epochs=1, image_size=32, weights="none")
    with pytest.raises(InputError, match="more than one split"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_dataset_without_dataset_json_is_a_clear_error(tmp_path):
    data = make_tiny_dataset(tmp_path / "d", n_per_class=2, size=32)
    (data / "dataset.json").unlink()
    cfg = TrainConfig(data=data, out=tmp_path / "run", epochs=1, image_size=32, weights="none")
    with pytest.raises(InputError, match="vcfnet prepare"):
        train(cfg)


def test_imagenet_weights_offline_fail_fast(dataset, tmp_path):
    with pytest.raises(WeightsUnavailableError, match="--weights none"):
        train(tiny_config(dataset, tmp_path / "run", weights="imagenet"))


def test_weights_path_is_recorded(dataset, tmp_path):
    from torchvision.models import resnet18

    path = tmp_path / "backbone.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    result = train(tiny_config(dataset, tmp_path / "run", weights=str(path), epochs=1))
    card = (result.run_dir / "model_card.md").read_text()
    assert str(path) in card and "sha256" in card
    assert load_checkpoint(result.last_checkpoint).extra["weights_used"].startswith(str(path))


@pytest.mark.slow  # two processes; CI runs it (make test-all)
def test_ddp_two_cpu_processes_match_single_process(cli_run, dataset, tmp_path):
    """Same global batch on 2 gloo ranks: weights agree with world size 1 up to batch-norm statistics."""
    kw = dict(epochs=1, hflip=False, vflip=False, rotation_degrees=0.0, precision="fp32", lr=2e-4)
    single = train(tiny_config(dataset, tmp_path / "ws1", **kw))
    double = train(tiny_config(dataset, tmp_path / "ws2", nproc=2, **kw))
    m1, m2 = load_checkpoint(single.last_checkpoint), load_checkpoint(double.last_checkpoint)
    torch.manual_seed(0)  # the run's seed: train builds its initial model right after seeding
    initial = build_model(len(CLASS_NAMES), weights="none")
    moved = max(
        (a - b).abs().max().item()
        for a, b in zip(initial.parameters(), m1.model.parameters(), strict=True)
    )
    assert moved < 0.01, "not the run's initial model: two Adam steps move a weight by ~lr"
    crops = load_split(dataset, "val", 32).images.numpy()
    p0 = predict_proba(initial, crops, m1.preprocessing)
    p1 = predict_proba(m1.model, crops, m1.preprocessing)
    p2 = predict_proba(m2.model, crops, m2.preprocessing)
    assert "all 2 ranks hold identical weights" in (tmp_path / "ws2" / "train.log").read_text()
    # relative to how far training moved the outputs (measured 0.12: per-rank batch-norm statistics;
    # 0.5 when each rank takes the whole global batch)
    assert abs(p1 - p2).max() < 0.25 * abs(p1 - p0).max()
    assert double.metrics["epoch"].tolist() == [1]
    for col in ("train_loss", "val_loss"):
        assert abs(double.metrics[col].iloc[0] - single.metrics[col].iloc[0]) < 0.05, col


@pytest.mark.slow  # the run is covered by tests/bench/test_peaks.py::test_bench_train_fractions_and_target_on_this_machine
def test_bench_train_runs_at_tiny_size():
    args = argparse.Namespace(
        n_images=12, steps=2, image_size=32, batch_size=4, workers=0, parity_epochs=1, json=True
    )
    r = bench_train(args)
    # the reported numbers agree with each other and with an independent FLOP count
    vcfnet, reference = r["vcfnet_images_per_s"], r["reference_images_per_s"]
    assert r["ratio"] == pytest.approx(vcfnet / reference)
    gflop = resnet18_gflop_per_image(32, backward=True)
    assert r["train_gflop_per_image"] == pytest.approx(gflop, rel=1e-6)
    fp32 = r["peak_fp32_gflop_s"]
    fast = r["peak_bf16_gflop_s"] if r["vcfnet_bf16"] else fp32
    assert r["ratio_at_peak"] == pytest.approx(fast / fp32)  # exactly 1 without bf16
    assert r["vcfnet_peak_fraction"] == pytest.approx(vcfnet * gflop / fast, rel=1e-6)
    assert r["reference_peak_fraction"] == pytest.approx(reference * gflop / fp32, rel=1e-6)
    assert 100 < r["peak_rss_mb"] < 64 * 1024  # torch alone takes > 100 MB
    # one epoch from random weights: close to chance (ln 3 = 1.1), not a broken loss
    assert 0.3 < r["vcfnet_val_loss"] < 5 and 0.3 < r["reference_val_loss"] < 5


def test_config_rejects_bad_values(dataset, tmp_path):
    with pytest.raises(ValueError):
        dataclasses.replace(tiny_config(dataset, tmp_path), batch_size=1)


def _cli(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "vcfnet", "train", *args]


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(cli_run, dataset, tmp_path):
    import os
    import subprocess
    import time

    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # threads as in the in-process reference run
    args = ["--data", str(dataset), "--out", str(out), *TINY]
    proc = subprocess.Popen(_cli(*args), env=env)
    deadline = time.monotonic() + 120
    last = out / "checkpoints" / "last.pt"
    while not last.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()  # SIGKILL mid-run: no cleanup
    proc.wait()
    assert subprocess.run(_cli(*args, "--resume"), env=env).returncode == 0
    expected = load_checkpoint(cli_run / "checkpoints" / "last.pt").model_hash
    assert load_checkpoint(out / "checkpoints" / "last.pt").model_hash == expected


@pytest.mark.slow
def test_torchrun_two_processes(dataset, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "torchrun"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a free rendezvous port, not 29500 shared with other runs
        "--nproc-per-node",
        "2",
        "-m",
        "vcfnet",
        "train",
        "--data",
        str(dataset),
        "--out",
        str(out),
        *TINY,
    ]
    assert subprocess.run(cmd).returncode == 0
    assert "all 2 ranks hold identical weights" in (out / "train.log").read_text()
    assert load_checkpoint(out / "checkpoints" / "best.pt").extra["epoch"] >= 1


@pytest.mark.slow
def test_synth_prepare_train_end_to_end(tmp_path):
    """``vcfnet synth --scale 0.05`` -> ``prepare`` (development site, with val) -> ``train``."""
    cohort, data, run = tmp_path / "cohort", tmp_path / "ds", tmp_path / "run"
    assert (
        main(
            [
                "-q",
                "synth",
                "--out",
                str(cohort),
                "--scale",
                "0.05",
                "--size",
                "256x320",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    site = cohort / "SITE1"
    prepare = [
        "-q",
        "prepare",
        "--images",
        str(site / "images"),
        "--annotations",
        str(site / "annotations"),
        "--patients",
        str(site / "patients.csv"),
        "--site",
        "SITE1",
        "--out",
        str(data),
        "--split",
        "0.8",
        "--val",
        "0.2",
        "--workers",
        "1",
        "--id-key",
        "test-key",
    ]
    assert main(prepare) == 0
    assert (
        main(["-q", "train", "--data", str(data), "--out", str(run), *TINY, "--epochs", "2"]) == 0
    )
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2] and metrics["val_loss"].notna().all()
    assert load_checkpoint(run / "checkpoints" / "best.pt").class_names == (
        "acute",
        "chronic",
        "pathologic",
    )
