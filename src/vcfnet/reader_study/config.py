"""Options of ``vcfnet readers`` and ``vcfnet synth-readers``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)


@dataclass
class SynthReadersConfig:
    truth: Path | None = field(
        default=None, metadata={"help": "predictions.csv with case_id, label, p_* (required)"}
    )
    out: Path | None = field(default=None, metadata={"help": "reads CSV to write (required)"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    fraction: float = field(
        default=1.0,
        metadata={"help": "class-stratified fraction of cases to read (the paper used 0.3)"},
    )


@dataclass
class ReadersConfig:
    truth: Path | None = field(
        default=None,
        metadata={"help": "predictions.csv (or manifest) with case_id, label (required)"},
    )
    reads: Path | None = field(default=None, metadata={"help": "reads CSV (required)"})
    out: Path | None = field(default=None, metadata={"help": "output folder (required)"})
    cov: Literal["delong", "jackknife"] = field(
        default="delong", metadata={"help": "MRMC covariance estimator"}
    )
    level: float = field(default=0.95, metadata={"help": "confidence level"})
    figures: bool = field(default=True, metadata={"help": "draw Figure 6 and the bar chart"})
