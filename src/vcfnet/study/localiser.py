"""The demo's localiser step (train on the development site, evaluate on every site, draw one
overlay) and its report section (the per-site table and the overlay figure)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from vcfnet.io.atomic import atomic_write_text
from vcfnet.localiser.data import read_films
from vcfnet.localiser.evaluate import (
    TABLE_HEADER,
    TARGETS,
    evaluate_films,
    markdown_table,
    table_rows,
)
from vcfnet.localiser.model import Localiser
from vcfnet.localiser.results import draw_overlay, localise_image
from vcfnet.localiser.train import LocaliserConfig, train_localiser
from vcfnet.report.html import Report
from vcfnet.study.config import DemoConfig

#: (quick, default) sizes of the demo's localiser: 15 s and 64 s on the idle 2-core AMD EPYC
#: (training + evaluation on the external sites; docs/localisation.md has the figures they reach)
QUICK = {
    "width": 8,
    "epochs": 16,
    "steps_per_epoch": 16,
    "batch_size": 8,
    "input_size": "128x160",
    "max_films": 48,
    "refine_steps": 0,
}
DEFAULT = {
    "width": 8,
    "epochs": 20,
    "steps_per_epoch": 16,
    "batch_size": 8,
    "max_films": 160,
    "refine_steps": 60,
    "refine_width": 8,
    "refine_batch_size": 16,
}


#: (quick, default) cost of the localiser step in training images of the demo's classifier at
#: its top rung (128 px quick, 224 px default), so the budget can reserve it on any CPU: measured
#: on the idle AMD EPYC (bf16) on 2026-12-01: 15.2 s at 66.9 images/s quick, 63.7 s at 23.3 default
COST_IN_TRAINING_IMAGES = (1017.0, 1484.0)


def cost_in_training_images(quick: bool) -> float:
    """The localiser step's cost for the demo's time budget (``vcfnet.study.budget``)."""
    return COST_IN_TRAINING_IMAGES[0 if quick else 1]


def localiser_config(cfg: DemoConfig, cohort: Path, out: Path, site: str) -> LocaliserConfig:
    sizes = QUICK if cfg.quick else DEFAULT
    return LocaliserConfig(
        data=[cohort], sites=[site], out=out / "run", seed=cfg.seed, val_fraction=0.0, **sizes
    )


def run_localiser_step(cfg: DemoConfig, cohort: Path, out: Path, site: str) -> None:
    """Train, evaluate per site (``out/metrics.json``, ``metrics.md``), one overlay PNG."""
    train_localiser(localiser_config(cfg, cohort, out, site))
    localiser = Localiser(out / "run")
    everything = read_films([cohort])
    films = [f for f in everything if f.site != site] or everything  # never trained on
    results = evaluate_films(localiser, films)
    metrics = [
        {"site": r.site, "seconds_per_film": r.seconds_per_film, **r.metrics.to_dict()}
        for r in results
    ]
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    atomic_write_text(out / "metrics.md", markdown_table(results))
    record, pixels = localise_image(localiser, films[0].image, None)
    draw_overlay(pixels, record, max_side=640).save(out / "overlay.png")


def localiser_section(report: Report, out: Path, site: str) -> None:
    """The report's localiser table (per site) and overlay figure, when the step ran."""
    if not (out / "metrics.json").is_file():
        return
    from vcfnet.localiser.evaluate import SiteResult
    from vcfnet.localiser.metrics import LocaliserMetrics

    rows = json.loads((out / "metrics.json").read_text())
    results = [
        SiteResult(
            r["site"],
            LocaliserMetrics(
                **{k: v for k, v in r.items() if k not in ("site", "seconds_per_film")}
            ),
            r["seconds_per_film"],
        )
        for r in rows
    ]
    report.heading("Vertebra localiser (boxes, levels, six points, Genant grade)")
    report.paragraph(
        f"A small heatmap network trained on the {site} films only (docs/localisation.md) finds "
        "each vertebral body T11-S1, names its level and places its six morphometry points; the "
        "Genant grade is computed from the points. Evaluated on the sites it never saw. Recall and precision at IoU 0.5; point error "
        "as median distance and % of the body's height; Genant agreement as linear-weighted kappa "
        "(quadratic beside it) against the grade from the annotated points. Targets on the external sites: recall "
        f">= {TARGETS['recall']:.2f}, level accuracy >= {TARGETS['level_accuracy']:.2f}, point "
        f"error <= {TARGETS['point_error_pct']:.0f} % of height, kappa >= {TARGETS['genant_kappa']}. "
        "The demo's localiser is trained for seconds to minutes: its figures are synthetic and "
        "far from what a longer training reaches."
    )
    report.table(
        pd.DataFrame(table_rows(results), columns=list(TABLE_HEADER)), "Localiser per site"
    )
    if (out / "overlay.png").is_file():
        report.figure(
            out / "overlay.png",
            "The localiser on an external-site film: box coloured by Genant grade (green 0, yellow 1, orange 2, red 3), level, grade and the six points",
        )
