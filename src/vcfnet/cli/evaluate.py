"""``vcfnet evaluate``, ``vcfnet metrics`` and ``vcfnet compare``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from vcfnet.config import add_config_arguments, resolve_config, save_command_config
from vcfnet.errors import ConfigError
from vcfnet.evaluation.compare import write_comparison
from vcfnet.evaluation.config import CompareConfig, EvaluateConfig, MetricsConfig
from vcfnet.evaluation.evaluate import evaluate_model
from vcfnet.evaluation.predictions import read_predictions
from vcfnet.evaluation.report import write_metrics_report


def _require(value: Any, option: str) -> Any:
    if value in (None, (), []):
        raise ConfigError(f"{option} is required")
    return value


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, EvaluateConfig, skip=("data", "site"))
    parser.add_argument(
        "--data",
        nargs="+",
        type=Path,
        default=None,
        metavar="DATASET_DIR",
        help="dataset folder(s) made by 'vcfnet prepare'",
    )
    parser.add_argument(
        "--site", nargs="+", default=None, metavar="NAME", help="only these sites (default: all)"
    )


def run_evaluate(args: argparse.Namespace) -> int:
    cfg = resolve_config(EvaluateConfig, args)
    metrics = evaluate_model(
        _require(cfg.model, "--model"),
        _require(cfg.data, "--data"),
        _require(cfg.out, "--out"),
        split=cfg.split,
        sites=tuple(cfg.site),
        ci=cfg.ci,
        n_boot=cfg.n_boot,
        level=cfg.level,
        seed=cfg.seed,
        n_bins=cfg.n_bins,
        device=cfg.device,
        precision=cfg.precision,
        batch_size=cfg.batch_size,
        workers=cfg.workers,
    )
    save_command_config(cfg, cfg.out)
    _print_summary(metrics, cfg.out)
    return 0


def add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "predictions",
        type=Path,
        metavar="PREDICTIONS_CSV",
        help="predictions.csv written by 'vcfnet evaluate'",
    )
    add_config_arguments(parser, MetricsConfig, skip=("predictions",))


def run_metrics(args: argparse.Namespace) -> int:
    cfg = resolve_config(MetricsConfig, args)
    preds = read_predictions(_require(cfg.predictions, "PREDICTIONS_CSV"))
    out = _require(cfg.out, "--out")
    metrics = write_metrics_report(
        preds,
        out,
        ci=cfg.ci,
        n_boot=cfg.n_boot,
        level=cfg.level,
        seed=cfg.seed,
        n_bins=cfg.n_bins,
        provenance={"predictions": str(cfg.predictions)},
    )
    save_command_config(cfg, out)
    _print_summary(metrics, out)
    return 0


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("predictions_a", type=Path, metavar="PREDICTIONS_A")
    parser.add_argument("predictions_b", type=Path, metavar="PREDICTIONS_B")
    add_config_arguments(parser, CompareConfig, skip=("predictions_a", "predictions_b"))


def run_compare(args: argparse.Namespace) -> int:
    cfg = resolve_config(CompareConfig, args)
    out = _require(cfg.out, "--out")
    auc, mc = write_comparison(cfg.predictions_a, cfg.predictions_b, out, level=cfg.level)
    save_command_config(cfg, out)
    with pd.option_context("display.width", 140, "display.max_columns", 20):
        print(auc.round(4).to_string(index=False))
        print(mc.round(4).to_string(index=False))
    print(f"wrote {Path(out) / 'report.html'}")
    return 0


def _print_summary(metrics: pd.DataFrame, out: Path) -> None:
    overall = metrics[metrics["class"] == "overall"]
    cols = ["site", "n", "macro_auc", "top1_accuracy", "accuracy", "sensitivity", "specificity"]
    with pd.option_context("display.width", 140):
        print(overall.loc[:, cols].round(3).to_string(index=False))
    print(f"wrote {Path(out) / 'report.html'}")
