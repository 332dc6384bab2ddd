"""``vcfnet train``: the paper's ResNet-18 transfer learning, fast on CPU, resumable, DDP-ready.

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

import argparse
import contextlib
import dataclasses
import hashlib
import logging
import math
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from vcfnet.config import (
    add_config_arguments,
    build_config,
    config_to_dict,
    resolve_config,
    save_config,
)
from vcfnet.data.augment import Augmentation, augment_batch
from vcfnet.data.dataset import (
    CropTensors,
    EpochBatches,
    balanced_weights,
    iter_eval_batches,
    load_split,
)
from vcfnet.data.manifest import read_dataset_info, read_manifest
from vcfnet.data.transforms import Preprocessing, normalize_batch
from vcfnet.device import Precision, resolve_device, resolve_precision
from vcfnet.errors import ConfigError, InputError
from vcfnet.io.atomic import atomic_path, atomic_write_text
from vcfnet.labels import CLASS_NAMES
from vcfnet.model import build_model, load_checkpoint, save_checkpoint, state_dict_hash

log = logging.getLogger(__name__)

METRIC_COLUMNS: tuple[str, ...] = (
    "epoch", "train_loss", "train_acc", "val_loss", "val_acc",
    *(f"val_auc_{c}" for c in CLASS_NAMES), "val_macro_auc", "lr", "seconds", "images_per_s",
)  # fmt: skip
#: Columns that measure time and so differ between otherwise identical runs.
TIME_COLUMNS: tuple[str, ...] = ("seconds", "images_per_s")
#: Options that may change when a run is resumed; all others are taken from the checkpoint.
RESUME_OVERRIDABLE: tuple[str, ...] = (
    "epochs", "resume", "max_epochs_this_run", "device", "workers", "nproc", "progress", "data", "out",
)  # fmt: skip


@dataclass
class TrainConfig:
    """Options of ``vcfnet train`` (also a YAML file via ``--config``)."""

    data: Path | None = field(
        default=None, metadata={"help": "dataset folder made by 'vcfnet prepare'", "metavar": "DIR"}
    )
    out: Path | None = field(
        default=None, metadata={"help": "run folder to write", "metavar": "RUN_DIR"}
    )
    epochs: int = field(default=25, metadata={"help": "training epochs (paper: 25)"})
    image_size: int = field(
        default=224, metadata={"help": "square model input, pixels (paper: 224)"}
    )
    batch_size: int = field(
        default=32, metadata={"help": "global batch size (split over DDP ranks)"}
    )
    lr: float = field(default=2e-4, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=5e-4, metadata={"help": "Adam weight decay"})
    lr_schedule: Literal["cosine", "constant"] = field(
        default="cosine", metadata={"help": "per-epoch learning-rate schedule"}
    )
    weights: str = field(
        default="imagenet",
        metadata={
            "help": "backbone init: imagenet | none | PATH to a torchvision state dict",
            "metavar": "W",
        },
    )
    class_weights: Literal["auto", "none"] = field(
        default="auto",
        metadata={"help": "cross-entropy class weights: auto = inverse class frequency"},
    )
    sampler: Literal["shuffle", "balanced"] = field(
        default="shuffle",
        metadata={
            "help": "batch sampling: shuffle, or balanced = classes equally likely (use with --class-weights none)"
        },
    )
    hflip: bool = field(default=True, metadata={"help": "random horizontal flips"})
    vflip: bool = field(default=True, metadata={"help": "random vertical flips"})
    rotation_degrees: float = field(
        default=15.0, metadata={"help": "random rotation range ±degrees (0 = off)"}
    )
    select_metric: Literal["macro_auc", "loss"] = field(
        default="macro_auc", metadata={"help": "validation metric that picks best.pt"}
    )
    seed: int = field(default=0, metadata={"help": "random seed"})
    deterministic: bool = field(
        default=True, metadata={"help": "deterministic algorithms (bitwise reproducible on CPU)"}
    )
    resume: bool = field(
        default=False, metadata={"help": "continue from RUN_DIR/checkpoints/last.pt"}
    )
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N"})
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        default="auto",
        metadata={"help": "auto: bf16 autocast on bf16 CPUs, AMP on CUDA, else fp32"},
    )
    workers: int = field(default=2, metadata={"help": "threads decoding crops into memory"})
    nproc: int = field(
        default=1,
        metadata={"help": "DDP processes to start on this machine (or launch with torchrun)"},
    )
    progress: bool = field(
        default=True, metadata={"help": "progress bar per epoch (only on a terminal)"}
    )
    max_epochs_this_run: int | None = field(
        default=None,
        metadata={"help": "stop after this many epochs of this invocation (testing resume)"},
    )

    def __post_init__(self) -> None:
        for name in ("epochs", "image_size", "batch_size", "nproc"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2 (batch norm)")


@dataclass
class TrainResult:
    """What a finished run left in ``run_dir``."""

    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    best_epoch: int
    best_metric: float
    metrics: pd.DataFrame
    model_hash: str  # content hash of the last checkpoint's weights


@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


# ----------------------------------------------------------------------------------------- steps


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: CropTensors,
    batches: list[torch.Tensor],
    *,
    pre: Preprocessing,
    aug: Augmentation,
    generator: torch.Generator,
    loss_weight: torch.Tensor | None,
    device: torch.device,
    precision: Precision,
    scaler: torch.amp.GradScaler | None,
    dist: _Dist,
    desc: str = "train",
    progress: bool = True,
) -> dict[str, float]:
    """One pass over this rank's ``batches``; returns loss/accuracy reduced over ranks and images/s."""
    from tqdm import tqdm

    model.train()
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count
    start = time.perf_counter()
    bar = tqdm(
        batches,
        desc=desc,
        leave=False,
        unit="batch",
        disable=None if (progress and dist.is_main) else True,
    )
    for idx in bar:
        x = augment_batch(data.images[idx], aug, generator) if aug.enabled else data.images[idx]
        x = normalize_batch(x, pre).to(device).contiguous(memory_format=precision.memory_format)
        y = data.labels[idx].to(device)
        with precision.autocast(device):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, weight=loss_weight)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        n = len(idx)
        totals += torch.tensor(
            [loss.item() * n, (logits.argmax(1) == y).sum().item(), n], dtype=torch.float64
        )
        elapsed = time.perf_counter() - start
        bar.set_postfix(
            loss=f"{totals[0] / totals[2]:.4f}",
            img_s=f"{totals[2] * dist.world_size / max(elapsed, 1e-9):.1f}",
        )
    totals = _all_reduce_sum(totals, dist)
    seconds = time.perf_counter() - start
    return {
        "train_loss": float(totals[0] / max(totals[2], 1)),
        "train_acc": float(totals[1] / max(totals[2], 1)),
        "seconds": seconds,
        "images_per_s": float(totals[2]) / max(seconds, 1e-9),
    }


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    data: CropTensors,
    *,
    pre: Preprocessing,
    device: torch.device,
    precision: Precision,
    batch_size: int,
    dist: _Dist,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, C) float32 and labels (N,) of ``data``, each rank predicting a shard, gathered to all."""
    model.eval()
    logits, labels, order = [], [], []
    for idx in iter_eval_batches(len(data), batch_size, dist.rank, dist.world_size):
        x = (
            normalize_batch(data.images[idx], pre)
            .to(device)
            .contiguous(memory_format=precision.memory_format)
        )
        with precision.autocast(device):
            logits.append(model(x).float().cpu())
        labels.append(data.labels[idx])
        order.append(idx)
    num_classes = model.fc.out_features if hasattr(model, "fc") else len(CLASS_NAMES)
    out = torch.cat(logits) if logits else torch.zeros(0, num_classes)
    lab = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64)
    idx = torch.cat(order) if order else torch.zeros(0, dtype=torch.int64)
    if dist.enabled:
        import torch.distributed as tdist

        gathered: list[Any] = [None] * dist.world_size
        tdist.all_gather_object(gathered, (out, lab, idx))
        out = torch.cat([g[0] for g in gathered])
        lab = torch.cat([g[1] for g in gathered])
        idx = torch.cat([g[2] for g in gathered])
    perm = torch.argsort(idx)
    return out[perm], lab[perm]


def classification_metrics(
    logits: torch.Tensor, labels: torch.Tensor, prefix: str = "val_"
) -> dict[str, float]:
    """Loss, top-1 accuracy, one-vs-rest AUC per class (NaN where a class is absent) and their mean."""
    from sklearn.metrics import roc_auc_score

    out = {
        f"{prefix}loss": float(F.cross_entropy(logits, labels)) if len(labels) else math.nan,
        f"{prefix}acc": float((logits.argmax(1) == labels).float().mean())
        if len(labels)
        else math.nan,
    }
    probs = torch.softmax(logits, 1).numpy().astype(np.float64)
    y = labels.numpy()
    aucs = []
    for c, name in enumerate(CLASS_NAMES):
        pos = y == c
        auc = float(roc_auc_score(pos, probs[:, c])) if 0 < pos.sum() < len(y) else math.nan
        out[f"{prefix}auc_{name}"] = auc
        aucs.append(auc)
    finite = [a for a in aucs if not math.isnan(a)]
    out[f"{prefix}macro_auc"] = float(np.mean(finite)) if finite else math.nan
    return out


def evaluate(model, data, **kwargs) -> dict[str, float]:
    """Validation metrics of ``model`` on ``data`` (see ``classification_metrics``)."""
    logits, labels = predict_logits(model, data, **kwargs)
    return classification_metrics(logits, labels)


# ----------------------------------------------------------------------------------- distributed


def _all_reduce_sum(t: torch.Tensor, dist: _Dist) -> torch.Tensor:
    if not dist.enabled:
        return t
    import torch.distributed as tdist

    t = t.clone()
    tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
    return t


def _init_distributed(device: torch.device) -> _Dist:
    """Join the process group torchrun (or ``--nproc``) set up through RANK/WORLD_SIZE env vars."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as tdist

    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if device.type == "cpu":  # share the cores instead of oversubscribing them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return _Dist(rank=tdist.get_rank(), world_size=tdist.get_world_size(), local_rank=local_rank)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawned_worker(local_rank: int, cfg: TrainConfig, port: int, nproc: int) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(local_rank), LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc),
    )  # fmt: skip
    _run(cfg)


# ------------------------------------------------------------------------------------------ run


def train(cfg: TrainConfig) -> TrainResult:
    """Train as ``cfg`` says; returns where the results are. ``cfg.nproc > 1`` starts DDP processes."""
    if cfg.data is None or cfg.out is None:
        raise ConfigError("both --data DATASET_DIR and --out RUN_DIR are required")
    under_launcher = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if cfg.nproc > 1 and not under_launcher:
        import torch.multiprocessing as mp

        _check_inputs(cfg)
        mp.spawn(_spawned_worker, args=(cfg, _free_port(), cfg.nproc), nprocs=cfg.nproc, join=True)
    else:
        if cfg.nproc > 1:
            log.warning(
                "already launched by torchrun (WORLD_SIZE set); ignoring --nproc %d", cfg.nproc
            )
        _run(cfg)
    return read_run(cfg.out)


def _check_inputs(cfg: TrainConfig) -> None:
    """Fail early (before spawning anything) on a missing dataset or a run folder already in use."""
    manifest = read_manifest(cfg.data)
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


def _weights_record(weights: str) -> str:
    """How the backbone was initialised, for config and model card (file weights with their sha256)."""
    if weights.lower() == "imagenet":
        return "imagenet (torchvision ResNet18_Weights.IMAGENET1K_V1)"
    if weights.lower() == "none":
        return "none (random init)"
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()[:16]
    return f"{weights} (sha256 {digest})"


@contextlib.contextmanager
def _run_logging(run_dir: Path, dist: _Dist):
    """Rank 0: 'vcfnet' logger also writes RUN_DIR/train.log at INFO; other ranks: warnings only.

    The console keeps its own level: when it shows less than INFO (``vcfnet -q``), records reach the
    root handlers through a forwarder that applies the previous effective level.
    """
    logger = logging.getLogger("vcfnet")
    old_level, old_propagate = logger.level, logger.propagate
    console_level = logger.getEffectiveLevel()
    added: list[logging.Handler] = []
    if dist.is_main:
        handler = logging.FileHandler(run_dir / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        added.append(handler)
        if console_level > logging.INFO:
            added.append(_ConsoleForwarder(console_level))
            logger.propagate = False
            logger.setLevel(logging.INFO)
    else:
        logger.setLevel(logging.WARNING)
    for h in added:
        logger.addHandler(h)
    try:
        yield
    finally:
        logger.setLevel(old_level)
        logger.propagate = old_propagate
        for h in added:
            logger.removeHandler(h)
            h.close()


class _ConsoleForwarder(logging.Handler):
    """Pass records at or above ``level`` to the root logger's handlers (or logging's last resort)."""

    def emit(self, record: logging.LogRecord) -> None:
        handlers = logging.getLogger().handlers or [logging.lastResort]
        for h in handlers:
            if h is not None and record.levelno >= h.level:
                h.handle(record)


@contextlib.contextmanager
def _deterministic(on: bool):
    old = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(on, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old)


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
    dist = _init_distributed(device)
    run_dir = Path(cfg.out)
    try:
        if dist.is_main:
            _check_inputs(cfg)
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        _barrier(dist)
        last_path = run_dir / "checkpoints" / "last.pt"
        state: dict[str, Any] = {}
        if cfg.resume and last_path.is_file():
            ckpt = load_checkpoint(last_path)
            cfg = _resumed_config(cfg, ckpt.config)
            state = {"model": ckpt.model.state_dict(), **ckpt.extra}
        with _run_logging(run_dir, dist), _deterministic(cfg.deterministic):
            if cfg.resume and not state:
                log.warning("--resume: no %s yet, starting from scratch", last_path)
            _train_loop(cfg, device, dist, state)
    finally:
        if dist.enabled:
            import torch.distributed as tdist

            tdist.destroy_process_group()


def _average_buffers(model: nn.Module, dist: _Dist) -> None:
    """Average batch-norm running statistics over ranks (each rank saw its own shard)."""
    if not dist.enabled:
        return
    import torch.distributed as tdist

    for buf in model.buffers():
        if buf.is_floating_point():
            tdist.all_reduce(buf, op=tdist.ReduceOp.SUM)
            buf.div_(dist.world_size)


def _check_ranks_agree(model: nn.Module, dist: _Dist) -> None:
    """DDP keeps replicas identical; verify it with the weights' content hash on every rank."""
    import torch.distributed as tdist

    hashes: list[Any] = [None] * dist.world_size
    tdist.all_gather_object(hashes, state_dict_hash(model.state_dict()))
    if len(set(hashes)) != 1:
        raise RuntimeError(f"DDP replicas diverged: weight hashes per rank {hashes}")
    log.info("all %d ranks hold identical weights (hash %s)", dist.world_size, hashes[0][:12])


def _barrier(dist: _Dist) -> None:
    if dist.enabled:
        import torch.distributed as tdist

        tdist.barrier()


def _train_loop(cfg: TrainConfig, device: torch.device, dist: _Dist, state: dict[str, Any]) -> None:
    from torch.nn.parallel import DistributedDataParallel

    run_dir = Path(cfg.out)
    precision = resolve_precision(cfg.precision, device)
    info = read_dataset_info(cfg.data)
    pre = dataclasses.replace(
        Preprocessing.from_dict(info.get("preprocessing", {})), image_size=cfg.image_size
    )
    aug = Augmentation(hflip=cfg.hflip, vflip=cfg.vflip, rotation_degrees=cfg.rotation_degrees)
    manifest = read_manifest(cfg.data)
    t0 = time.perf_counter()
    train_data = load_split(
        cfg.data, "train", cfg.image_size, workers=cfg.workers, manifest=manifest
    )
    val_data = load_split(cfg.data, "val", cfg.image_size, workers=cfg.workers, manifest=manifest)
    weights_used = state.get("weights_used") or _weights_record(cfg.weights)
    log.info(
        "data %s: train %d %s, val %d %s (decoded in %.1f s); test rows never read",
        cfg.data, len(train_data), train_data.class_counts(), len(val_data), val_data.class_counts(),
        time.perf_counter() - t0,
    )  # fmt: skip
    log.info(
        "device %s, precision %s, world size %d, weights %s",
        device,
        precision.name,
        dist.world_size,
        weights_used,
    )

    torch.manual_seed(cfg.seed)
    model = build_model(len(CLASS_NAMES), weights="none" if state else cfg.weights)
    if state:
        model.load_state_dict(state["model"])
    model = model.to(device, memory_format=precision.memory_format)
    core = model
    if dist.enabled:
        model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = torch.optim.Adam(core.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.lr_schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _epoch: 1.0)
    scaler = (
        torch.amp.GradScaler("cuda") if precision.name == "fp16" and device.type == "cuda" else None
    )
    loss_weight = (
        balanced_weights(train_data.labels).to(device) if cfg.class_weights == "auto" else None
    )
    sampler = EpochBatches(
        train_data.labels, batch_size=max(2, cfg.batch_size // dist.world_size), seed=cfg.seed,
        balanced=cfg.sampler == "balanced", rank=dist.rank, world_size=dist.world_size,
    )  # fmt: skip
    start_epoch, history = 0, []
    best_metric, best_epoch = math.nan, 0
    if state:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        start_epoch, history = int(state["epoch"]), list(state["history"])
        best_metric, best_epoch = float(state["best_metric"]), int(state["best_epoch"])
        log.info("resumed from %s after epoch %d", run_dir / "checkpoints" / "last.pt", start_epoch)
    if dist.is_main:
        save_config(cfg, run_dir / "config.yaml")

    stop = (
        cfg.epochs
        if cfg.max_epochs_this_run is None
        else min(cfg.epochs, start_epoch + cfg.max_epochs_this_run)
    )
    for epoch in range(start_epoch, stop):
        lr = optimizer.param_groups[0]["lr"]
        gen = torch.Generator().manual_seed((cfg.seed * 1_000_003 + epoch) * 1009 + dist.rank)
        stats = train_one_epoch(
            model, optimizer, train_data, sampler.batches(epoch), pre=pre, aug=aug, generator=gen,
            loss_weight=loss_weight, device=device, precision=precision, scaler=scaler, dist=dist,
            desc=f"epoch {epoch + 1}/{cfg.epochs}", progress=cfg.progress,
        )  # fmt: skip
        scheduler.step()
        _average_buffers(core, dist)
        val = evaluate(
            core,
            val_data,
            pre=pre,
            device=device,
            precision=precision,
            batch_size=2 * sampler.batch_size,
            dist=dist,
        )
        row = {"epoch": epoch + 1, **{k: stats[k] for k in ("train_loss", "train_acc")}, **val, "lr": lr,
               "seconds": stats["seconds"], "images_per_s": stats["images_per_s"]}  # fmt: skip
        history.append(row)
        metric = row["val_macro_auc"] if cfg.select_metric == "macro_auc" else row["val_loss"]
        improved = _is_better(metric, best_metric, cfg.select_metric)
        if improved:
            best_metric, best_epoch = metric, epoch + 1
        log.info(
            "epoch %d/%d train loss %.4f acc %.3f | val loss %.4f acc %.3f macro AUC %.3f | %.1f s, %.1f img/s%s",
            epoch + 1, cfg.epochs, row["train_loss"], row["train_acc"], row["val_loss"], row["val_acc"],
            row["val_macro_auc"], row["seconds"], row["images_per_s"], " (best)" if improved else "",
        )  # fmt: skip
        if dist.is_main:
            extra = {
                "epoch": epoch + 1,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else {},
                "rng": {"torch": torch.get_rng_state()},
                "sampler": sampler.state_dict(),
                "best_metric": float(best_metric),
                "best_epoch": int(best_epoch),
                "select_metric": cfg.select_metric,
                "history": history,
                "weights_used": weights_used,
                "data_counts": {"train": train_data.class_counts(), "val": val_data.class_counts()},
            }
            ckpt_cfg = config_to_dict(cfg)
            save_checkpoint(
                run_dir / "checkpoints" / "last.pt",
                core,
                preprocessing=pre,
                config=ckpt_cfg,
                extra=extra,
            )
            if improved:
                save_checkpoint(
                    run_dir / "checkpoints" / "best.pt",
                    core,
                    preprocessing=pre,
                    config=ckpt_cfg,
                    extra=extra,
                )
            write_metrics(history, run_dir / "metrics.csv")
            write_model_card(
                run_dir / "model_card.md",
                cfg,
                history,
                best_epoch,
                weights_used,
                train_data,
                val_data,
            )
        _barrier(dist)
    if dist.enabled:
        _check_ranks_agree(core, dist)
    if stop < cfg.epochs:
        log.info("stopped after epoch %d of %d as asked; continue with --resume", stop, cfg.epochs)
    else:
        log.info(
            "done: best epoch %d (val %s %.4f), run folder %s",
            best_epoch,
            cfg.select_metric,
            best_metric,
            run_dir,
        )


# ---------------------------------------------------------------------------------------- outputs


def write_metrics(history: list[dict[str, float]], path: Path) -> None:
    """metrics.csv, one row per epoch, columns ``METRIC_COLUMNS`` (atomic rewrite)."""
    df = pd.DataFrame(history).reindex(columns=list(METRIC_COLUMNS))
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def read_run(run_dir: Path | str) -> TrainResult:
    """The TrainResult of a run folder written by ``train``."""
    run_dir = Path(run_dir)
    last = run_dir / "checkpoints" / "last.pt"
    ckpt = load_checkpoint(last)
    return TrainResult(
        run_dir=run_dir,
        best_checkpoint=run_dir / "checkpoints" / "best.pt",
        last_checkpoint=last,
        best_epoch=int(ckpt.extra.get("best_epoch", 0)),
        best_metric=float(ckpt.extra.get("best_metric", math.nan)),
        metrics=pd.read_csv(run_dir / "metrics.csv"),
        model_hash=ckpt.model_hash,
    )


def _fmt(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def write_model_card(
    path: Path, cfg: TrainConfig, history: list[dict], best_epoch: int, weights_used: str,
    train_data: CropTensors, val_data: CropTensors,
) -> None:  # fmt: skip
    """model_card.md: data, recipe, validation results, intended use and limits."""
    best = next((r for r in history if r["epoch"] == best_epoch), history[-1])
    counts = "\n".join(
        f"| {split} | {len(d)} | "
        + " | ".join(str(c) for c in d.class_counts())
        + f" | {d.rows['patient_id'].nunique()} |"
        for split, d in (("train", train_data), ("val", val_data))
    )
    aucs = "\n".join(f"| {c} | {_fmt(best[f'val_auc_{c}'])} |" for c in CLASS_NAMES)
    text = f"""# vcfnet model card

ResNet-18 classifier of vertebral compression fractures ({", ".join(CLASS_NAMES)}) on crops of
lateral lumbar radiographs, after Xu et al., Front. Endocrinol. 2023 (doi:10.3389/fendo.2023.1025749).

## Data
Dataset: `{cfg.data}` (split per patient by `vcfnet prepare`; the test split was not read).

| split | crops | {" | ".join(CLASS_NAMES)} | patients |
|---|---|{"---|" * len(CLASS_NAMES)}---|
{counts}

## Recipe
- Backbone weights: {weights_used}
- Input {cfg.image_size}x{cfg.image_size}, gray replicated to 3 channels, ImageNet mean/std
- Augmentation: hflip={cfg.hflip}, vflip={cfg.vflip}, rotation ±{cfg.rotation_degrees}°
- Adam lr {cfg.lr:g}, weight decay {cfg.weight_decay:g}, {cfg.lr_schedule} schedule, batch {cfg.batch_size},
  {cfg.epochs} epochs, class weights {cfg.class_weights}, sampler {cfg.sampler}, seed {cfg.seed},
  precision {cfg.precision}
- Best epoch selected on the validation split by {cfg.select_metric}: epoch {best_epoch} of {len(history)} run

## Validation results (epoch {best_epoch})
Loss {_fmt(best["val_loss"])}, top-1 accuracy {_fmt(best["val_acc"])}, macro one-vs-rest AUC {_fmt(best["val_macro_auc"])}.

| class | AUC (one-vs-rest) |
|---|---|
{aucs}

## Intended use
Research and reproduction of the paper's method. Input: a box around one fractured vertebra on a
lateral lumbar radiograph, already known to be a compression fracture. Output: probabilities of
acute, chronic and pathologic. Evaluate on held-out sites with `vcfnet evaluate` before any use.

## Limits
Not a medical device; not validated for clinical decisions. It does not detect fractures, only
classifies boxed ones. Validation-split numbers are optimistic (the epoch was chosen on them);
report test and external-site results instead. Pathologic fractures are rare (~8% in the paper),
so their estimates are the least certain. A model trained on synthetic data (`vcfnet synth`) says
nothing about real radiographs.
"""
    atomic_write_text(path, text)


# -------------------------------------------------------------------------------------------- CLI


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, TrainConfig)


def run_train(args: argparse.Namespace) -> int:
    try:
        cfg = resolve_config(TrainConfig, args)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    result = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(
            f"best epoch {result.best_epoch} (val {cfg.select_metric} {result.best_metric:.4f}); "
            f"checkpoints in {result.run_dir / 'checkpoints'}"
        )
    return 0


# -------------------------------------------------------------------------------------- benchmark


def add_bench_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--n-images", type=int, default=256, help="synthetic 256-px PNG crops to train on"
    )
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per pipeline")
    parser.add_argument("--image-size", type=int, default=224, help="model input size")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (authors: 32)")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="DataLoader workers of the reference (0: decode in the timed loop)",
    )
    parser.add_argument(
        "--parity-epochs",
        type=int,
        default=0,
        help="also train each pipeline this many epochs and compare val loss",
    )


def _write_bench_crops(folder: Path, n: int, seed: int = 0) -> tuple[list[Path], list[int]]:
    """``n`` 256-px gray PNGs, classes told apart by flip-invariant patterns; returns paths and labels.

    acute: bright centre square, chronic: bright frame, pathologic: coarse noise.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for i in range(n):
        label = i % len(CLASS_NAMES)
        img = rng.normal(100, 25, (256, 256))
        if label == 0:
            img[80:176, 80:176] += 70
        elif label == 1:
            img[:32] += 70
            img[-32:] += 70
            img[:, :32] += 70
            img[:, -32:] += 70
        else:
            img += np.kron(rng.normal(0, 45, (16, 16)), np.ones((16, 16)))
        path = folder / f"{i:05d}.png"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
        labels.append(label)
    return paths, labels


class _ReferenceDataset(torch.utils.data.Dataset):
    """The authors' pipeline: PIL-decode every PNG on every epoch + torchvision transforms."""

    def __init__(self, paths: list[Path], labels: list[int], image_size: int) -> None:
        from torchvision import transforms as T

        pre = Preprocessing()
        self.paths, self.labels = paths, labels
        self.transform = T.Compose(
            [
                T.Resize((image_size, image_size)),
                T.RandomHorizontalFlip(),
                T.RandomVerticalFlip(),
                T.RandomRotation(Augmentation().rotation_degrees),
                T.ToTensor(),
                T.Normalize(pre.mean, pre.std),
            ]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return self.transform(im.convert("RGB")), self.labels[i]


def _cycle(iterable_factory):
    """Endless iterator over ``iterable_factory()``, restarted whenever it is exhausted (new epoch)."""
    while True:
        yield from iterable_factory()


def _adam(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=2e-4, weight_decay=5e-4)


class _ReferencePipeline:
    """fp32 eager ResNet-18 fed by a DataLoader over ``_ReferenceDataset`` (batch 32, shuffled)."""

    def __init__(self, paths, labels, image_size: int, batch_size: int, workers: int) -> None:
        torch.manual_seed(0)
        self.model = build_model(len(CLASS_NAMES), "none")
        self.opt = _adam(self.model)
        self.loader = torch.utils.data.DataLoader(
            _ReferenceDataset(paths, labels, image_size), batch_size=batch_size, shuffle=True,
            num_workers=workers, persistent_workers=workers > 0, drop_last=len(paths) > batch_size,
        )  # fmt: skip

    def epoch(self):
        return iter(self.loader)

    def step(self, batch) -> int:
        self.model.train()
        x, y = batch
        loss = F.cross_entropy(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return len(y)


class _VcfnetPipeline:
    """vcfnet's training step: cached uint8 crops, tensor augmentation, bf16 autocast + channels_last."""

    def __init__(
        self, data: CropTensors, pre: Preprocessing, batch_size: int, precision: Precision
    ) -> None:
        torch.manual_seed(0)
        self.model = build_model(len(CLASS_NAMES), "none").to(memory_format=precision.memory_format)
        self.opt = _adam(self.model)
        self.data, self.pre, self.precision = data, pre, precision
        self.sampler = EpochBatches(data.labels, batch_size=batch_size)
        self.n_epochs = 0

    def epoch(self):
        self.n_epochs += 1
        return iter(self.sampler.batches(self.n_epochs))

    def step(self, idx: torch.Tensor) -> int:
        train_one_epoch(
            self.model, self.opt, self.data, [idx], pre=self.pre, aug=Augmentation(),
            generator=torch.Generator().manual_seed(int(idx[0])), loss_weight=None, device=torch.device("cpu"),
            precision=self.precision, scaler=None, dist=_Dist(), progress=False,
        )  # fmt: skip
        return len(idx)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_train(args: argparse.Namespace) -> dict[str, float]:
    """Training images/s of the authors' pipeline vs vcfnet's on the same crops, their ratio, peak RSS.

    The two pipelines' steps alternate (after two warm-up steps each), so a shared, busy CPU slows
    both alike and the ratio stays meaningful. A step's time includes fetching its batch.
    """
    import tempfile

    from vcfnet.data.dataset import decode_crops

    size, bs = args.image_size, args.batch_size
    precision = resolve_precision("auto", torch.device("cpu"))
    pre = dataclasses.replace(Preprocessing(), image_size=size)
    results: dict[str, float] = {"n_images": args.n_images, "batch_size": bs, "image_size": size}
    with tempfile.TemporaryDirectory(prefix="vcfnet-bench-train-") as tmp:
        paths, labels = _write_bench_crops(Path(tmp), args.n_images)
        t0 = time.perf_counter()
        data = CropTensors(
            torch.from_numpy(decode_crops(paths, size)), torch.tensor(labels), pd.DataFrame()
        )
        results["vcfnet_decode_once_s"] = time.perf_counter() - t0
        pipelines = {
            "reference": _ReferencePipeline(paths, labels, size, bs, args.workers),
            "vcfnet": _VcfnetPipeline(data, pre, bs, precision),
        }
        streams = {name: _cycle(p.epoch) for name, p in pipelines.items()}
        seconds = dict.fromkeys(pipelines, 0.0)
        images = dict.fromkeys(pipelines, 0)
        for i in range(2 + args.steps):
            for name, pipe in pipelines.items():
                start = time.perf_counter()
                n = pipe.step(next(streams[name]))
                if i >= 2:
                    seconds[name] += time.perf_counter() - start
                    images[name] += n
        for name in pipelines:
            results[f"{name}_images_per_s"] = images[name] / max(seconds[name], 1e-9)
        results["ratio"] = results["vcfnet_images_per_s"] / results["reference_images_per_s"]
        results["vcfnet_bf16"] = int(precision.name == "bf16")
        results["peak_rss_mb"] = _peak_rss_mb()
        results.update(_arithmetic_ceiling(results, size, precision))
        if args.parity_epochs > 0:
            results.update(_parity(paths, labels, args, pre, precision))
    return results


def _arithmetic_ceiling(results: dict, image_size: int, precision: Precision) -> dict[str, float]:
    """GFLOP/s each pipeline reaches as a fraction of this CPU's matmul peak in its number format,
    and ``ratio_at_peak``: the speed-up the peaks allow (bf16 peak / fp32 peak), data aside."""
    from vcfnet.bench import model_gflop, peak_gflop_s

    gflop = model_gflop(build_model(len(CLASS_NAMES), "none"), image_size, backward=True)
    peak_fp32 = peak_gflop_s("fp32")
    peak_fast = peak_gflop_s(precision.name) if precision.name == "bf16" else peak_fp32
    return {
        "train_gflop_per_image": gflop,
        "peak_fp32_gflop_s": peak_fp32,
        f"peak_{precision.name}_gflop_s": peak_fast,
        "reference_peak_fraction": results["reference_images_per_s"] * gflop / peak_fp32,
        "vcfnet_peak_fraction": results["vcfnet_images_per_s"] * gflop / peak_fast,
        "ratio_at_peak": peak_fast / peak_fp32,
    }


def _parity(paths, labels, args, pre: Preprocessing, precision: Precision) -> dict[str, float]:
    """Train each pipeline ``parity_epochs`` epochs on 3/4 of the crops; fp32 val loss/accuracy on the rest."""
    from vcfnet.data.dataset import decode_crops

    n_train = len(paths) * 3 // 4
    size, bs = args.image_size, args.batch_size
    val = CropTensors(
        torch.from_numpy(decode_crops(paths[n_train:], size)),
        torch.tensor(labels[n_train:]),
        pd.DataFrame(),
    )
    train_data = CropTensors(
        torch.from_numpy(decode_crops(paths[:n_train], size)),
        torch.tensor(labels[:n_train]),
        pd.DataFrame(),
    )
    pipelines = {
        "reference": _ReferencePipeline(paths[:n_train], labels[:n_train], size, bs, args.workers),
        "vcfnet": _VcfnetPipeline(train_data, pre, bs, precision),
    }
    out = {}
    for name, pipe in pipelines.items():
        for _ in range(args.parity_epochs):
            for batch in pipe.epoch():
                pipe.step(batch)
        metrics = evaluate(
            pipe.model, val, pre=pre, device=torch.device("cpu"), precision=resolve_precision("fp32", torch.device("cpu")),
            batch_size=64, dist=_Dist(),
        )  # fmt: skip
        out[f"{name}_val_loss"] = metrics["val_loss"]
        out[f"{name}_val_acc"] = metrics["val_acc"]
    return out
