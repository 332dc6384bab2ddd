"""Options of ``vcfnet evaluate``, ``vcfnet metrics`` and ``vcfnet compare``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vcfnet.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class ReportConfig:
    """Options shared by ``evaluate`` and ``metrics``."""

    out: Path | None = field(
        default=None, metadata={"help": "report folder to write", "metavar": "REPORT_DIR"}
    )
    ci: Literal["auto", "delong", "bootstrap", "newcombe"] = field(
        default="auto",
        metadata={
            "help": "per-class AUC interval: auto = DeLong, or Newcombe's score interval where a "
            "class has < 10 cases or the AUC is 0 or 1; bootstrap resamples patients"
        },
    )
    n_boot: int = field(default=2000, metadata={"help": "bootstrap replicates"})
    level: float = field(default=0.95, metadata={"help": "confidence level of all intervals"})
    seed: int = field(default=0, metadata={"help": "bootstrap seed"})
    n_bins: int = field(default=10, metadata={"help": "bins of the reliability diagram"})

    def __post_init__(self) -> None:
        if not 0 < self.level < 1:
            raise ConfigError(f"--level must be between 0 and 1 (e.g. 0.95), got {self.level}")
        if self.n_boot < 100:
            raise ConfigError(f"--n-boot must be at least 100, got {self.n_boot}")


@dataclass
class MetricsConfig(ReportConfig):
    """Options of ``vcfnet metrics``."""

    predictions: Path | None = field(
        default=None, metadata={"help": "predictions.csv", "metavar": "CSV"}
    )


@dataclass
class EvaluateConfig(ReportConfig):
    """Options of ``vcfnet evaluate``."""

    model: Path | None = field(
        default=None,
        metadata={"help": "run folder or checkpoint (.pt) of 'vcfnet train'", "metavar": "MODEL"},
    )
    data: tuple[Path, ...] = field(
        default=(), metadata={"help": "dataset folder(s) made by 'vcfnet prepare'"}
    )
    split: Literal["train", "val", "test", "all"] = field(
        default="test",
        metadata={"help": "manifest split to evaluate ('--split none' datasets are all 'test')"},
    )
    site: tuple[str, ...] = field(default=(), metadata={"help": "only these sites (default all)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N"})
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        default="auto", metadata={"help": "inference precision"}
    )
    batch_size: int = field(default=64, metadata={"help": "inference batch size"})
    workers: int = field(default=2, metadata={"help": "threads decoding crops"})


@dataclass
class CompareConfig:
    """Options of ``vcfnet compare``."""

    predictions_a: Path | None = field(default=None, metadata={"help": "predictions of model A"})
    predictions_b: Path | None = field(default=None, metadata={"help": "predictions of model B"})
    out: Path | None = field(default=None, metadata={"help": "folder to write", "metavar": "DIR"})
    level: float = field(default=0.95, metadata={"help": "confidence level"})
