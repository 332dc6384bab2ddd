"""Options of ``vcfnet demo`` and the layout of its output folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from vcfnet.preprocess import DEFAULT_IMAGE_SIZE

log = logging.getLogger(__name__)

#: The pseudonym key of the demo: the cohort is synthetic, so a fixed key is harmless and keeps
#: the demo from creating a key file in the user's home folder.
DEMO_ID_KEY = "vcfnet-demo-synthetic-cohort"

SYNTHETIC_NOTICE = (
    "All data in this report are SYNTHETIC: radiographs, patients, hospitals and radiologists were "
    "simulated by vcfnet. The numbers show that the pipeline works; they say nothing about real "
    "patients, real hospitals or the clinical performance of any model."
)

#: Our site names -> the paper's dataset names (Table 2).
PAPER_DATASETS = {"SITE1": "Testing", "PROSPECTIVE": "Prospective"}


@dataclass
class DemoConfig:
    """Options of ``vcfnet demo``; unset sizes follow ``--quick``."""

    out: Path = field(
        default=Path("demo-out"), metadata={"help": "output folder", "metavar": "DIR"}
    )
    scale: float | None = field(
        default=None,
        metadata={"help": "cohort size relative to the paper (default 0.3; --quick 0.1)"},
    )
    epochs: int | None = field(
        default=None, metadata={"help": "training epochs (default 20; --quick 12)"}
    )
    image_size: int | None = field(
        default=None, metadata={"help": "model input size, pixels (default 224; --quick 128)"}
    )
    size: str | None = field(
        default=None,
        metadata={
            "help": "radiograph WIDTHxHEIGHT (default 1024x1280; --quick 512x640)",
            "metavar": "WxH",
        },
    )
    quick: bool = field(default=False, metadata={"help": "a small, fast run (about 3 minutes)"})
    seed: int = field(
        default=0, metadata={"help": "seed of the cohort, split, training and readers"}
    )
    weights: str = field(
        default="none",
        metadata={"help": "backbone weights: none | imagenet | PATH (runs offline with none)"},
    )
    reader_fraction: float = field(
        default=0.3,
        metadata={
            "help": "share of the external sites read by the simulated radiologists (paper: 0.3)"
        },
    )
    samples: Path | None = field(
        default=None,
        metadata={
            "help": "real crops (ImageFolder: Acute/, Chronic/, Pathologic/) shown beside the "
            "synthetic ones in the report; only read",
            "metavar": "DIR",
        },
    )
    workers: int = field(default=0, metadata={"help": "worker processes (0 = all cores)"})
    open: bool = field(
        default=False, metadata={"help": "open the report in a web browser at the end"}
    )

    def resolved(self) -> DemoConfig:
        """Fill the sizes left unset from the --quick / default presets."""
        quick = self.quick
        return replace(
            self,
            scale=self.scale if self.scale is not None else (0.1 if quick else 0.3),
            epochs=self.epochs if self.epochs is not None else (12 if quick else 20),
            image_size=self.image_size
            if self.image_size is not None
            else (128 if quick else DEFAULT_IMAGE_SIZE),
            size=self.size or ("512x640" if quick else "1024x1280"),
        )


@dataclass
class DemoPaths:
    """Where each step writes, under ``root``."""

    root: Path

    @property
    def cohort(self) -> Path:
        return self.root / "cohort"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation"

    @property
    def readers(self) -> Path:
        return self.root / "readers"

    @property
    def reads(self) -> Path:
        return self.readers / "reads.csv"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def markers(self) -> Path:
        return self.root / ".steps"
