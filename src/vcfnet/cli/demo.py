"""``vcfnet demo``: the whole study end to end on a synthetic cohort, with a progress display."""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from vcfnet.config import add_config_arguments, resolve_config
from vcfnet.study.config import DemoConfig
from vcfnet.study.demo import StepEvent, run_study


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, DemoConfig)


def _show_step(console: Console, event: StepEvent) -> None:
    header = f"[{event.index}/{event.total}] {event.name}: {event.description}"
    if event.status == "skipped":
        console.print(f"[dim]{header} — done before, skipped[/dim]")
    elif event.status == "started":
        console.rule(f"[bold]{header}", align="left")
    else:
        console.print(
            f"[green]✓ {event.name}[/green] in {event.seconds:.0f} s (total {event.elapsed:.0f} s)"
        )


def _show_summary(console: Console, metrics_csv: Path, report: Path) -> None:
    metrics = pd.read_csv(metrics_csv)
    overall = metrics[metrics["class"] == "overall"]
    table = Table(title="Headline numbers per site (synthetic data)")
    for col in ("site", "cases", "top-1 accuracy", "macro AUC (95% CI)"):
        table.add_column(col, justify="left" if col == "site" else "right")
    for row in overall.itertuples(index=False):
        table.add_row(
            str(row.site),
            str(int(row.n)),
            f"{row.top1_accuracy:.3f}",
            f"{row.macro_auc:.3f} ({row.auc_ci_low:.3f}-{row.auc_ci_high:.3f})",
        )
    console.print(table)
    console.print(f"Report: [bold]{report.resolve()}[/bold]")


def run_demo(args: argparse.Namespace) -> int:
    cfg = resolve_config(DemoConfig, args)  # run_study saves it as OUT/demo-config.yaml
    console = Console(stderr=True)
    report = run_study(cfg, on_step=lambda event: _show_step(console, event))
    _show_summary(console, report.parent / "evaluation" / "metrics.csv", report)
    if cfg.open:
        webbrowser.open(report.resolve().as_uri())
    return 0
