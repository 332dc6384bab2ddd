"""``vcfnet evaluate-localiser``: the localiser's figures per site on annotated films."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vcfnet.io.images import read_radiograph
from vcfnet.localiser.data import FilmTruth, read_films
from vcfnet.localiser.metrics import FilmScore, LocaliserMetrics, score_film, summarise
from vcfnet.localiser.model import Localiser

log = logging.getLogger(__name__)

#: the issue's targets (synthetic external sites)
TARGETS = {"recall": 0.98, "level_accuracy": 0.95, "point_error_pct": 2.0, "genant_kappa": 0.8}


@dataclass
class EvaluateLocaliserConfig:
    """Options of ``vcfnet evaluate-localiser``."""

    model: Path | None = field(
        default=None, metadata={"help": "localiser RUN_DIR, .pt or .onnx", "metavar": "LOC"}
    )
    data: list[Path] = field(
        default_factory=list,
        metadata={"help": "vcfnet synth output folders, comma-separated", "metavar": "DIR"},
    )
    points: Path | None = field(
        default=None, metadata={"help": "a vertebrae.csv of your own films", "metavar": "CSV"}
    )
    images: Path | None = field(
        default=None, metadata={"help": "folder the --points CSV's images are in", "metavar": "DIR"}
    )
    sites: list[str] = field(
        default_factory=lambda: ["all"],
        metadata={"help": "evaluate these sites (comma-separated; 'all' = every site)"},
    )
    out: Path = field(
        default=Path("localiser-eval"), metadata={"help": "output folder", "metavar": "DIR"}
    )
    threshold: float = field(default=0.3, metadata={"help": "centre heatmap threshold"})
    refine: bool = field(
        default=True, metadata={"help": "use the checkpoint's refine stage (if it has one)"}
    )


@dataclass
class SiteResult:
    site: str
    metrics: LocaliserMetrics
    seconds_per_film: float


def evaluate_films(localiser: Localiser, films: Sequence[FilmTruth]) -> list[SiteResult]:
    """Per-site metrics (sites in first-seen order) plus ``ALL`` pooled when > 1 site."""
    scores: dict[str, list[FilmScore]] = {}
    seconds: dict[str, float] = {}
    for film in films:
        radiograph = read_radiograph(film.image)
        t0 = time.perf_counter()
        pred = localiser.predict_pixels(radiograph.pixels)
        seconds[film.site] = seconds.get(film.site, 0.0) + time.perf_counter() - t0
        scores.setdefault(film.site, []).append(
            score_film(pred, film.bodies, radiograph.pixel_spacing_mm)
        )
    out = [SiteResult(site, summarise(s), seconds[site] / len(s)) for site, s in scores.items()]
    if len(out) > 1:
        pooled = [x for s in scores.values() for x in s]
        out.append(SiteResult("ALL", summarise(pooled), sum(seconds.values()) / len(pooled)))
    return out


def evaluate_localiser(cfg: EvaluateLocaliserConfig) -> list[SiteResult]:
    films = read_films([*cfg.data, *([cfg.points] if cfg.points else [])], cfg.images)
    if [s.lower() for s in cfg.sites] != ["all"]:
        films = [f for f in films if f.site in cfg.sites]
    localiser = Localiser(cfg.model, threshold=cfg.threshold, refine=cfg.refine)
    return evaluate_films(localiser, films)


def _f(v, pct: bool = False) -> str:
    if v is None or v != v:
        return "-"
    return f"{100 * v:.1f} %" if pct else f"{v:.2f}"


TABLE_HEADER = (
    "site",
    "films",
    "bodies",
    "recall@0.5",
    "precision@0.5",
    "level acc.",
    "point err. px",
    "point err. mm",
    "point err. % height",
    "Genant κ (linear)",
    "κ (quadratic)",
    "s/film",
)


def table_rows(results: Sequence[SiteResult]) -> list[list[str]]:
    """One row of formatted cells per site (``TABLE_HEADER`` order)."""
    rows = []
    for r in results:
        m = r.metrics
        rows.append(
            [
                r.site,
                str(m.films),
                str(m.bodies),
                _f(m.recall, True),
                _f(m.precision, True),
                _f(m.level_accuracy, True),
                _f(m.point_error_px),
                _f(m.point_error_mm),
                _f(m.point_error_pct),
                _f(m.genant_kappa),
                _f(m.genant_kappa_quadratic),
                f"{r.seconds_per_film:.3f}",
            ]
        )
    return rows


def markdown_table(results: Sequence[SiteResult]) -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    return "\n".join(lines) + "\n"
