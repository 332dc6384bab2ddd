"""The demo's time budget: pick the training rung that lets the whole demo fit ``--budget-s``.

Before training, ``choose_rung`` measures training images/s on this machine at the ladder's top
and bottom input sizes (``vcfnet.training.throughput``, a few seconds), fits a power law
between them, and estimates each rung's remaining time: training epochs over the train split, a
validation pass per epoch, the evaluation of every test set (inference ~1/3 of a training
step per image) and the localiser step (a fixed number of training images' worth, measured), plus
a fixed reserve for the reader study and the report. It takes the highest
rung whose estimate fits what is left of the budget after the steps already done (the lowest rung
when none does). The choice and the measurement go to ``OUT/budget.json`` and the report; a
resumed run reuses them, and ``--rung N`` pins the rung so machines can reproduce each other.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vcfnet.data.manifest import read_manifest
from vcfnet.io.atomic import atomic_write_text
from vcfnet.study.config import DemoConfig, Rung

log = logging.getLogger(__name__)

#: An inference image costs about this share of a training image (forward only, no Adam).
INFERENCE_SHARE = 1 / 3
#: Share of the budget kept for the reader study, the report and the evaluation's statistics.
RESERVE_SHARE = 0.1


@dataclass(frozen=True)
class Workload:
    """Images per split the remaining steps go through."""

    train: int
    val: int
    test: int  # every site's test rows (evaluate)
    #: later work of a fixed size (the localiser step), in training images at the ladder's top size
    fixed: float = 0.0


@dataclass(frozen=True)
class Speed:
    """Measured training images/s at two input sizes; ``at(size)`` interpolates a power law."""

    size_hi: int
    ips_hi: float
    size_lo: int
    ips_lo: float

    @property
    def exponent(self) -> float:
        """k in ips(s) ~ s**-k, clamped to [1, 2]: a smaller input never costs more per pixel
        (2 = cost proportional to pixels), and a busy CPU's noisy short measurement at the low
        size (seen below 1, even below 0) must not promise speed-ups a smaller input cannot give."""
        if self.size_hi == self.size_lo or min(self.ips_hi, self.ips_lo) <= 0:
            return 2.0
        k = math.log(self.ips_lo / self.ips_hi) / math.log(self.size_hi / self.size_lo)
        return min(max(k, 1.0), 2.0)

    def at(self, size: int) -> float:
        return self.ips_hi * (self.size_hi / size) ** self.exponent


def estimate_seconds(rung: Rung, work: Workload, speed: Speed) -> float:
    """Seconds to train at ``rung`` (with a validation pass per epoch), evaluate the test sets
    and do the fixed work."""
    per_epoch = work.train + INFERENCE_SHARE * work.val
    images = rung.epochs * per_epoch + INFERENCE_SHARE * work.test
    return images / speed.at(rung.image_size) + work.fixed / speed.ips_hi


def pick_rung(ladder: tuple[Rung, ...], work: Workload, speed: Speed, seconds_left: float) -> int:
    """Index of the highest rung whose estimate fits ``seconds_left`` (the last rung if none)."""
    for i, rung in enumerate(ladder):
        if estimate_seconds(rung, work, speed) <= seconds_left:
            return i
    return len(ladder) - 1


@dataclass(frozen=True)
class BudgetChoice:
    """What ``OUT/budget.json`` records: the rung used and why."""

    rung: int
    image_size: int
    epochs: int
    budget_s: float
    elapsed_s: float  # of the demo before training: synth, prepare and this measurement
    seconds_left: float  # for training and evaluation, after the reserve
    estimate_s: float  # of the chosen rung
    speed: dict[str, float]  # the measurement: size_hi, ips_hi, size_lo, ips_lo
    precision: str
    params: dict[str, Any]  # of the steps before training; the choice is reused while they match

    def describe(self) -> str:
        return (
            f"rung {self.rung} ({self.epochs} epochs at {self.image_size} px), chosen for a "
            f"{self.budget_s:.0f} s budget from {self.speed['ips_hi']:.1f} training images/s "
            f"measured at {self.speed['size_hi']:.0f} px ({self.precision}); estimated "
            f"{self.estimate_s:.0f} s of {self.seconds_left:.0f} s left"
        )


def workload(data: Path, development: str, sites: list[str], fixed: float = 0.0) -> Workload:
    """Train/val rows of the development site and test rows of every site (``data/SITE``), and
    ``fixed`` work in training images at the ladder's top size."""
    splits = {s: read_manifest(data / s, check_files=False)["split"] for s in sites}
    return Workload(
        train=int((splits[development] == "train").sum()),
        val=int((splits[development] == "val").sum()),
        test=sum(int((split == "test").sum()) for split in splits.values()),
        fixed=fixed,
    )


def read_choice(path: Path, params: dict[str, Any] | None) -> BudgetChoice | None:
    """The saved choice (if made for the same earlier steps and budget, when ``params`` given)."""
    try:
        saved = json.loads(path.read_text())
        choice = BudgetChoice(**saved)
    except (OSError, json.JSONDecodeError, TypeError):
        return None
    return choice if params is None or choice.params == params else None


def choose_rung(
    cfg: DemoConfig, work: Workload, elapsed_s: float, params: dict[str, Any], path: Path
) -> BudgetChoice:
    """Measure this machine's training speed and pick ``cfg``'s rung; saved to ``path``."""
    from vcfnet.device import resolve_device, resolve_precision
    from vcfnet.training.throughput import measure_train_throughput

    cached = read_choice(path, params)
    if cached is not None:
        log.info("budget: reusing %s", cached.describe())
        return cached
    ladder = cfg.ladder
    hi, lo = ladder[0].image_size, min(r.image_size for r in ladder)
    t0 = time.perf_counter()
    speed = Speed(hi, measure_train_throughput(hi), lo, measure_train_throughput(lo))
    elapsed_s += time.perf_counter() - t0  # the measurement spends the budget too
    left = cfg.budget_s * (1 - RESERVE_SHARE) - elapsed_s
    index = pick_rung(ladder, work, speed, left)
    choice = BudgetChoice(
        rung=index,
        image_size=ladder[index].image_size,
        epochs=ladder[index].epochs,
        budget_s=float(cfg.budget_s),
        elapsed_s=round(elapsed_s, 1),
        seconds_left=round(left, 1),
        estimate_s=round(estimate_seconds(ladder[index], work, speed), 1),
        speed={k: round(float(v), 2) for k, v in asdict(speed).items()},
        precision=resolve_precision("auto", resolve_device("auto")).name,
        params=params,
    )
    if choice.estimate_s > left:
        log.warning("budget: even the lowest rung needs ~%.0f s of %.0f s", choice.estimate_s, left)
    log.info("budget: %s", choice.describe())
    atomic_write_text(path, json.dumps(asdict(choice), indent=2) + "\n")
    return choice
