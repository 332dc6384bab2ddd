"""``train(cfg)``: the paper's ResNet-18 transfer learning, fast on CPU, resumable, DDP-ready.

Recipe (defaults reproduce the paper): torchvision ResNet-18 with a new 3-way head, 224x224 gray
crops replicated to 3 channels and normalised with ImageNet mean/std, random horizontal/vertical
flips and rotations, Adam (lr 2e-4, weight decay 5e-4), cross-entropy, 25 epochs. Unlike the
authors' code the epoch is selected on ``split == val`` (never on ``test``), and the split is per
patient (done by ``vcfnet prepare``).

Speed: all crops of a split are decoded once into a uint8 tensor; batches are indexed, augmented and
normalised on tensors; the model runs under bf16 autocast with channels_last where the CPU supports
bf16 (``vcfnet.device``). Scale-out: ``torchrun --nproc-per-node N -m vcfnet train ...`` or
``vcfnet train --nproc N`` (gloo on CPU, NCCL on CUDA), rank 0 alone logs and writes checkpoints.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vcfnet.config import build_config, config_to_dict, save_config
from vcfnet.data.augment import Augmentation
from vcfnet.data.dataset import CropTensors, EpochBatches, balanced_weights, load_split
from vcfnet.data.manifest import read_crop_spec, read_manifest
from vcfnet.data.split import check_disjoint
from vcfnet.device import Precision, resolve_device, resolve_precision
from vcfnet.errors import ConfigError, InputError
from vcfnet.labels import CLASS_NAMES
from vcfnet.models.artifact import load_checkpoint, save_checkpoint
from vcfnet.models.classifier import build_model
from vcfnet.preprocess import InputSpec, Preprocessing
from vcfnet.training.config import RESUME_OVERRIDABLE, TrainConfig, TrainResult
from vcfnet.training.distributed import (
    Dist,
    average_buffers,
    barrier,
    check_ranks_agree,
    data_parallel,
    destroy_distributed,
    init_distributed,
    run_ranks,
    will_spawn,
)
from vcfnet.training.outputs import read_run, weights_record, write_metrics, write_model_card
from vcfnet.training.runlog import deterministic, run_logging
from vcfnet.training.steps import evaluate, train_one_epoch

log = logging.getLogger(__name__)


def train(cfg: TrainConfig) -> TrainResult:
    """Train as ``cfg`` says; returns where the results are. ``cfg.nproc > 1`` starts DDP processes."""
    if cfg.data is None or cfg.out is None:
        raise ConfigError("both --data DATASET_DIR and --out RUN_DIR are required")
    if will_spawn(cfg.nproc):
        _check_inputs(cfg)  # fail before starting any process
    run_ranks(_run, cfg, cfg.nproc)
    return read_run(cfg.out)


def _check_inputs(cfg: TrainConfig) -> None:
    """Fail early (before spawning anything) on a missing dataset or a run folder already in use."""
    manifest = read_manifest(cfg.data)
    check_disjoint(manifest, str(cfg.data))  # an edited or merged manifest could leak test patients
    counts = manifest["split"].value_counts()
    if counts.get("train", 0) == 0:
        raise InputError(f"{cfg.data} has no rows with split == train; re-run 'vcfnet prepare'")
    if counts.get("val", 0) == 0:
        raise InputError(
            f"{cfg.data} has no rows with split == val, which vcfnet needs to select the best epoch "
            "(it never looks at test); re-run 'vcfnet prepare' with a validation fraction"
        )
    last = Path(cfg.out) / "checkpoints" / "last.pt"
    if last.is_file() and not cfg.resume:
        raise ConfigError(
            f"{cfg.out} already holds a run; pass --resume to continue it or choose a new --out"
        )


def _resumed_config(cfg: TrainConfig, saved: dict[str, Any]) -> TrainConfig:
    """The checkpoint's config with only ``RESUME_OVERRIDABLE`` options taken from ``cfg``."""
    values = {k: v for k, v in saved.items() if k not in RESUME_OVERRIDABLE}
    values.update({k: getattr(cfg, k) for k in RESUME_OVERRIDABLE})
    merged = build_config(TrainConfig, values)
    changed = [
        k for k in values if k not in RESUME_OVERRIDABLE and getattr(merged, k) != getattr(cfg, k)
    ]
    if changed:
        log.warning(
            "resuming with the run's saved options for %s (given options ignored)",
            ", ".join(changed),
        )
    return merged


def _is_better(value: float, best: float, metric: str) -> bool:
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value > best if metric == "macro_auc" else value < best


def _run(cfg: TrainConfig) -> None:
    """The per-process training loop (rank 0 writes everything)."""
    device = resolve_device(cfg.device)
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist = init_distributed(device)
    run_dir = Path(cfg.out)
    try:
        if dist.is_main:
            _check_inputs(cfg)
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        barrier(dist)
        last_path = run_dir / "checkpoints" / "last.pt"
        state: dict[str, Any] = {}
        if cfg.resume and last_path.is_file():
            ckpt = load_checkpoint(last_path)
            cfg = _resumed_config(cfg, ckpt.config)
            state = {"model": ckpt.model.state_dict(), **ckpt.extra}
        with run_logging(run_dir, dist), deterministic(cfg.deterministic):
            if cfg.resume and not state:
                log.warning("--resume: no %s yet, starting from scratch", last_path)
            _train_loop(cfg, device, dist, state)
    finally:
        destroy_distributed(dist)


def input_contract(cfg: TrainConfig) -> Preprocessing:
    """The dataset's CropSpec (from its dataset.json, required) + the InputSpec of ``cfg``."""
    crop = read_crop_spec(cfg.data)
    return Preprocessing(crop=crop, input=InputSpec(image_size=cfg.image_size))


@dataclass
class _Run:
    """What the epoch loop works with, built once per process."""

    cfg: TrainConfig
    device: torch.device
    dist: Dist
    precision: Precision
    pre: Preprocessing
    aug: Augmentation
    train_data: CropTensors
    val_data: CropTensors
    weights_used: str
    model: nn.Module = None  # type: ignore[assignment]  # DDP wrapper or ``core``
    core: nn.Module = None  # type: ignore[assignment]
    optimizer: torch.optim.Optimizer = None  # type: ignore[assignment]
    scheduler: Any = None
    scaler: torch.amp.GradScaler | None = None
    loss_weight: torch.Tensor | None = None
    sampler: EpochBatches = None  # type: ignore[assignment]


@dataclass
class _Progress:
    """Where the run stands: epochs done, their metrics, the best so far."""

    start_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_metric: float = math.nan
    best_epoch: int = 0


def _load_data(cfg: TrainConfig, device: torch.device, dist: Dist, state: dict) -> _Run:
    """Decode the train and val crops (the test rows are never read) and set up the run."""
    precision = resolve_precision(cfg.precision, device)
    pre = input_contract(cfg)
    aug = Augmentation(hflip=cfg.hflip, vflip=cfg.vflip, rotation_degrees=cfg.rotation_degrees)
    manifest = read_manifest(cfg.data)
    t0 = time.perf_counter()
    splits = [
        load_split(cfg.data, split, cfg.image_size, workers=cfg.workers, manifest=manifest)
        for split in ("train", "val")
    ]
    run = _Run(
        cfg,
        device,
        dist,
        precision,
        pre,
        aug,
        *splits,
        weights_used=state.get("weights_used") or weights_record(cfg.weights),
    )
    log.info(
        "data %s: train %d %s, val %d %s (decoded in %.1f s); test rows never read",
        cfg.data,
        len(run.train_data),
        run.train_data.class_counts(),
        len(run.val_data),
        run.val_data.class_counts(),
        time.perf_counter() - t0,
    )
    log.info(
        "device %s, precision %s, world size %d, weights %s",
        device,
        precision.name,
        dist.world_size,
        run.weights_used,
    )
    return run


def _build_model_and_optimizer(run: _Run, state: dict) -> None:
    """Model (DDP-wrapped when distributed), Adam, LR schedule, loss weights and batch sampler."""
    cfg, dist = run.cfg, run.dist
    torch.manual_seed(cfg.seed)
    model = build_model(len(CLASS_NAMES), weights="none" if state else cfg.weights)
    if state:
        model.load_state_dict(state["model"])
    run.core = model.to(run.device, memory_format=run.precision.memory_format)
    run.model = data_parallel(run.core, dist, run.device)
    run.optimizer = torch.optim.Adam(
        run.core.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    if cfg.lr_schedule == "cosine":
        run.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(run.optimizer, T_max=cfg.epochs)
    else:
        run.scheduler = torch.optim.lr_scheduler.LambdaLR(run.optimizer, lambda _epoch: 1.0)
    if run.precision.name == "fp16" and run.device.type == "cuda":
        run.scaler = torch.amp.GradScaler("cuda")
    if cfg.class_weights == "auto":
        run.loss_weight = balanced_weights(run.train_data.labels).to(run.device)
    run.sampler = EpochBatches(
        run.train_data.labels,
        batch_size=max(2, cfg.batch_size // dist.world_size),
        seed=cfg.seed,
        balanced=cfg.sampler == "balanced",
        rank=dist.rank,
        world_size=dist.world_size,
    )


def _restore(run: _Run, state: dict) -> _Progress:
    """Optimizer, schedule, scaler, RNG and history from a resumed checkpoint's state."""
    if not state:
        return _Progress()
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    if run.scaler is not None and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["torch"])
    log.info(
        "resumed from %s after epoch %d",
        Path(run.cfg.out) / "checkpoints" / "last.pt",
        int(state["epoch"]),
    )
    return _Progress(
        int(state["epoch"]),
        list(state["history"]),
        float(state["best_metric"]),
        int(state["best_epoch"]),
    )


def _run_epoch(run: _Run, progress: _Progress, epoch: int) -> bool:
    """Train one epoch, validate, append the metrics row; True when the epoch is the best yet."""
    cfg, dist = run.cfg, run.dist
    lr = run.optimizer.param_groups[0]["lr"]
    gen = torch.Generator().manual_seed((cfg.seed * 1_000_003 + epoch) * 1009 + dist.rank)
    stats = train_one_epoch(
        run.model,
        run.optimizer,
        run.train_data,
        run.sampler.batches(epoch),
        pre=run.pre.input,
        aug=run.aug,
        generator=gen,
        loss_weight=run.loss_weight,
        device=run.device,
        precision=run.precision,
        scaler=run.scaler,
        dist=dist,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        progress=cfg.progress,
    )
    run.scheduler.step()
    average_buffers(run.core, dist)
    val = evaluate(
        run.core,
        run.val_data,
        pre=run.pre.input,
        device=run.device,
        precision=run.precision,
        batch_size=2 * run.sampler.batch_size,
        dist=dist,
    )
    row = {
        "epoch": epoch + 1,
        **{k: stats[k] for k in ("train_loss", "train_acc")},
        **val,
        "lr": lr,
        "seconds": stats["seconds"],
        "images_per_s": stats["images_per_s"],
    }
    progress.history.append(row)
    metric = row["val_macro_auc"] if cfg.select_metric == "macro_auc" else row["val_loss"]
    improved = _is_better(metric, progress.best_metric, cfg.select_metric)
    if improved:
        progress.best_metric, progress.best_epoch = metric, epoch + 1
    log.info(
        "epoch %d/%d train loss %.4f acc %.3f | val loss %.4f acc %.3f macro AUC %.3f | %.1f s, %.1f img/s%s",
        epoch + 1,
        cfg.epochs,
        row["train_loss"],
        row["train_acc"],
        row["val_loss"],
        row["val_acc"],
        row["val_macro_auc"],
        row["seconds"],
        row["images_per_s"],
        " (best)" if improved else "",
    )
    return improved


def _save_epoch(run: _Run, progress: _Progress, epoch: int, improved: bool) -> None:
    """Rank 0: last.pt (and best.pt when improved) with the resumable state, metrics, model card."""
    run_dir = Path(run.cfg.out)
    extra = {
        "epoch": epoch + 1,
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else {},
        "rng": {"torch": torch.get_rng_state()},
        "sampler": run.sampler.state_dict(),
        "best_metric": float(progress.best_metric),
        "best_epoch": int(progress.best_epoch),
        "select_metric": run.cfg.select_metric,
        "history": progress.history,
        "weights_used": run.weights_used,
        "data_counts": {"train": run.train_data.class_counts(), "val": run.val_data.class_counts()},
    }
    names = ["last.pt", "best.pt"] if improved else ["last.pt"]
    for name in names:
        save_checkpoint(
            run_dir / "checkpoints" / name,
            run.core,
            preprocessing=run.pre,
            config=config_to_dict(run.cfg),
            extra=extra,
        )
    write_metrics(progress.history, run_dir / "metrics.csv")
    write_model_card(
        run_dir / "model_card.md",
        run.cfg,
        progress.history,
        progress.best_epoch,
        run.weights_used,
        run.train_data,
        run.val_data,
    )


def _train_loop(cfg: TrainConfig, device: torch.device, dist: Dist, state: dict[str, Any]) -> None:
    """Build the run, then train, validate and save epoch by epoch up to ``cfg.epochs``."""
    run = _load_data(cfg, device, dist, state)
    _build_model_and_optimizer(run, state)
    progress = _restore(run, state)
    if dist.is_main:
        save_config(cfg, Path(cfg.out) / "config.yaml")
    stop = cfg.epochs
    if cfg.max_epochs_this_run is not None:
        stop = min(cfg.epochs, progress.start_epoch + cfg.max_epochs_this_run)
    for epoch in range(progress.start_epoch, stop):
        improved = _run_epoch(run, progress, epoch)
        if dist.is_main:
            _save_epoch(run, progress, epoch, improved)
        barrier(dist)
    if dist.enabled:
        check_ranks_agree(run.core, dist)
    if stop < cfg.epochs:
        log.info("stopped after epoch %d of %d as asked; continue with --resume", stop, cfg.epochs)
    else:
        log.info(
            "done: best epoch %d (val %s %.4f), run folder %s",
            progress.best_epoch,
            cfg.select_metric,
            progress.best_metric,
            cfg.out,
        )
