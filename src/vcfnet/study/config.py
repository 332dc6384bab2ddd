"""Options of ``vcfnet demo`` and the layout of its output folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from vcfnet.preprocess import DEFAULT_IMAGE_SIZE
from vcfnet.synth.cohort import DEFAULT_SIZE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rung:
    """One training size of the demo's ladder."""

    image_size: int
    epochs: int


#: Training sizes of ``--quick`` and of the default demo, top first. The top rung is the full
#: setting (what the demo trained at before budgets existed); a slower CPU steps down the ladder
#: until the estimated run fits ``--budget-s``.
QUICK_LADDER: tuple[Rung, ...] = (
    Rung(128, 12),
    Rung(112, 10),
    Rung(96, 8),
    Rung(80, 6),
    Rung(64, 5),
)
DEFAULT_LADDER: tuple[Rung, ...] = (
    Rung(DEFAULT_IMAGE_SIZE, 20),
    Rung(192, 16),
    Rung(160, 14),
    Rung(128, 12),
    Rung(112, 10),
    Rung(96, 8),
    Rung(80, 6),
)

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
        default=None,
        metadata={
            "help": "training epochs (default: from the ladder rung; top rung 20, --quick 12)"
        },
    )
    image_size: int | None = field(
        default=None,
        metadata={
            "help": "model input size, pixels (default: from the ladder rung; top rung 224, --quick 128)"
        },
    )
    budget_s: float | None = field(
        default=None,
        metadata={
            "help": "seconds the whole demo may take: picks the highest training rung that fits, "
            "from a short speed measurement (default 900; --quick 180; 0 = always the top rung)"
        },
    )
    rung: int | None = field(
        default=None,
        metadata={
            "help": "pin the training rung (0 = top = the full settings) instead of choosing it "
            "from --budget-s; rungs px/epochs: 224/20 192/16 160/14 128/12 112/10 96/8 80/6, "
            "--quick 128/12 112/10 96/8 80/6 64/5; demo-config.yaml records the rung used"
        },
    )
    size: str | None = field(
        default=None,
        metadata={
            "help": f"radiograph WIDTHxHEIGHT (default {DEFAULT_SIZE}; --quick 512x640)",
            "metavar": "WxH",
        },
    )
    quick: bool = field(
        default=False,
        metadata={
            "help": "a small, fast run (about a minute on a fast 2-core CPU; within --budget-s 180 on slower ones)"
        },
    )
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

    def __post_init__(self) -> None:
        if self.rung is not None and not 0 <= self.rung < len(self.ladder):
            raise ValueError(f"rung must be 0..{len(self.ladder) - 1} (0 = top, the full settings)")
        if self.budget_s is not None and self.budget_s < 0:
            raise ValueError("budget_s must be >= 0 (0 = no budget: the top rung)")

    @property
    def ladder(self) -> tuple[Rung, ...]:
        """The training rungs of this preset, top (the full settings) first."""
        return QUICK_LADDER if self.quick else DEFAULT_LADDER

    @property
    def needs_rung(self) -> bool:
        """True when the training size is still to be chosen from the budget."""
        return self.epochs is None or self.image_size is None

    def resolved(self) -> DemoConfig:
        """Fill the sizes left unset from the --quick / default presets.

        Training epochs and input size come from the pinned ``rung``, or from the top rung when
        only one of them is given or the budget is 0; otherwise they stay unset until
        ``with_rung`` (``vcfnet.study.budget`` picks the rung from a speed measurement).
        """
        quick = self.quick
        cfg = replace(
            self,
            scale=self.scale if self.scale is not None else (0.1 if quick else 0.3),
            size=self.size or ("512x640" if quick else DEFAULT_SIZE),
            budget_s=self.budget_s if self.budget_s is not None else (180.0 if quick else 900.0),
        )
        given = (self.epochs is not None) + (self.image_size is not None)
        if self.rung is not None or given == 1 or cfg.budget_s == 0:
            top = self.ladder[self.rung or 0]
            cfg = replace(
                cfg,
                epochs=self.epochs if self.epochs is not None else top.epochs,
                image_size=self.image_size if self.image_size is not None else top.image_size,
            )
        return cfg

    def with_rung(self, rung: int) -> DemoConfig:
        """This config training at ``rung`` of its ladder."""
        step = self.ladder[rung]
        return replace(self, rung=rung, epochs=step.epochs, image_size=step.image_size)


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
    def localiser(self) -> Path:
        return self.root / "localiser"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def budget(self) -> Path:
        """The training rung chosen for the budget and the speed it was chosen from."""
        return self.root / "budget.json"

    @property
    def markers(self) -> Path:
        return self.root / ".steps"
