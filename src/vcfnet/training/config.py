"""Options of ``vcfnet train`` (``TrainConfig``) and what a finished run returns (``TrainResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from vcfnet.labels import CLASS_NAMES
from vcfnet.preprocess import DEFAULT_IMAGE_SIZE

METRIC_COLUMNS: tuple[str, ...] = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    *(f"val_auc_{c}" for c in CLASS_NAMES),
    "val_macro_auc",
    "lr",
    "seconds",
    "images_per_s",
)

#: Columns that measure time and so differ between otherwise identical runs.
TIME_COLUMNS: tuple[str, ...] = ("seconds", "images_per_s")

#: Options that may change when a run is resumed; all others are taken from the checkpoint.
RESUME_OVERRIDABLE: tuple[str, ...] = (
    "epochs",
    "resume",
    "max_epochs_this_run",
    "device",
    "workers",
    "nproc",
    "progress",
    "data",
    "out",
)


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
        default=DEFAULT_IMAGE_SIZE, metadata={"help": "square model input, pixels (paper: 224)"}
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
