"""``vcfnet demo``: the paper's multicenter study end to end on a synthetic cohort.

synth -> prepare (per site; external sites are pure test sets) -> train -> evaluate (all sites)
-> synth-readers -> readers -> one report (Tables 1-3, Figures 5-6, training curves, model card).
Each step writes into its own subfolder of ``--out`` and a marker holding its parameters when it
finishes; re-running skips finished steps with the same parameters and resumes the rest.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from vcfnet import __version__
from vcfnet.config import add_config_arguments, resolve_config, save_config
from vcfnet.errors import ConfigError
from vcfnet.io.atomic import atomic_write_text

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
            image_size=self.image_size if self.image_size is not None else (128 if quick else 224),
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


@dataclass
class Step:
    name: str
    description: str
    params: dict[str, Any]
    run: Callable[[], None]


def _marker(paths: DemoPaths, step: Step) -> Path:
    return paths.markers / f"{step.name}.json"


def step_is_done(paths: DemoPaths, step: Step) -> bool:
    """True if ``step`` finished before with the same parameters."""
    marker = _marker(paths, step)
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("params") == step.params
    except (json.JSONDecodeError, OSError):
        return False


def _mark_done(paths: DemoPaths, step: Step, seconds: float) -> None:
    record = {"params": step.params, "seconds": round(seconds, 1), "finished": _now()}
    atomic_write_text(_marker(paths, step), json.dumps(record, indent=2) + "\n")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --------------------------------------------------------------------------------------- steps


def _site_roles(cohort_dir: Path) -> dict[str, str]:
    """site -> development | external | prospective, from cohort.json."""
    info = json.loads((cohort_dir / "cohort.json").read_text())
    roles = {}
    for name, site in info["sites"].items():
        if site.get("split", "none") != "none":
            roles[name] = "development"
        elif "PROSPECTIVE" in name.upper():
            roles[name] = "prospective"
        else:
            roles[name] = "external"
    return roles


def _split_option(cohort_dir: Path, site: str) -> str:
    """The cohort's '8:2' split -> prepare's train fraction '0.8'; 'none' stays."""
    split = json.loads((cohort_dir / "cohort.json").read_text())["sites"][site].get("split", "none")
    if split == "none":
        return "none"
    train, test = (float(x) for x in split.split(":"))
    return f"{train / (train + test):g}"


def step_synth(cfg: DemoConfig, paths: DemoPaths) -> None:
    from vcfnet.synth.cohort import SynthConfig, generate_cohort

    generate_cohort(
        SynthConfig(
            out=paths.cohort, scale=cfg.scale, seed=cfg.seed, size=cfg.size, workers=cfg.workers
        )
    )


def step_prepare(cfg: DemoConfig, paths: DemoPaths) -> None:
    from vcfnet.data.prepare import PrepareConfig, prepare_dataset

    for site in _site_roles(paths.cohort):
        src = paths.cohort / site
        prepare_dataset(
            PrepareConfig(
                images=src / "images",
                annotations=src / "annotations",
                patients=src / "patients.csv",
                site=site,
                split=_split_option(paths.cohort, site),
                seed=cfg.seed,
                out=paths.data / site,
                workers=cfg.workers,
                id_key=DEMO_ID_KEY,
            )
        )


def _development_site(paths: DemoPaths) -> str:
    roles = _site_roles(paths.cohort)
    dev = [s for s, r in roles.items() if r == "development"]
    if len(dev) != 1:
        raise ConfigError(f"the cohort must have exactly one development site, found {dev}")
    return dev[0]


def step_train(cfg: DemoConfig, paths: DemoPaths) -> None:
    from vcfnet.train import TrainConfig, train

    resume = (paths.run / "checkpoints" / "last.pt").is_file()
    train(
        TrainConfig(
            data=paths.data / _development_site(paths),
            out=paths.run,
            epochs=cfg.epochs,
            image_size=cfg.image_size,
            weights=cfg.weights,
            seed=cfg.seed,
            resume=resume,
        )
    )


def step_evaluate(cfg: DemoConfig, paths: DemoPaths) -> None:
    from vcfnet.evaluate import evaluate_model

    sites = list(_site_roles(paths.cohort))
    evaluate_model(
        paths.run,
        [paths.data / s for s in sites],
        paths.evaluation,
        split="test",
        seed=cfg.seed,
        workers=max(1, cfg.workers or 2),
    )


def _reader_truth(paths: DemoPaths) -> pd.DataFrame:
    """The external sites' predictions: the pool the collaboration dataset is drawn from."""
    roles = _site_roles(paths.cohort)
    predictions = pd.read_csv(paths.evaluation / "predictions.csv", keep_default_na=False)
    external = [s for s, r in roles.items() if r == "external"]
    return predictions[predictions["site"].isin(external)].reset_index(drop=True)


def step_synth_readers(cfg: DemoConfig, paths: DemoPaths) -> None:
    from vcfnet.readers import write_simulated_reads

    write_simulated_reads(
        _reader_truth(paths), paths.reads, seed=cfg.seed, fraction=cfg.reader_fraction
    )


def step_readers(cfg: DemoConfig, paths: DemoPaths) -> None:
    from vcfnet.readers import run_reader_study

    reads = pd.read_csv(paths.reads, keep_default_na=False)
    truth = _reader_truth(paths)
    truth = truth[truth["case_id"].isin(set(reads["case_id"]))]
    run_reader_study(truth, reads, paths.readers, simulated=True)


def step_report(cfg: DemoConfig, paths: DemoPaths) -> None:
    from vcfnet.report.demo_report import build_demo_report

    build_demo_report(paths, cfg, _site_roles(paths.cohort)).write(paths.root, stem="report")


def plan_steps(cfg: DemoConfig, paths: DemoPaths) -> list[Step]:
    """The steps in order, each with the parameters that decide whether it must run again."""
    synth = {"scale": cfg.scale, "seed": cfg.seed, "size": cfg.size, "version": __version__}
    prepare = {**synth, "id_key": "demo"}
    train = {
        **prepare,
        "epochs": cfg.epochs,
        "image_size": cfg.image_size,
        "weights": str(cfg.weights),
    }
    readers = {**train, "reader_fraction": cfg.reader_fraction}
    return [
        Step(
            "synth",
            "generate the synthetic four-hospital cohort",
            synth,
            lambda: step_synth(cfg, paths),
        ),
        Step(
            "prepare",
            "crop, pseudonymise and split each site by patient",
            prepare,
            lambda: step_prepare(cfg, paths),
        ),
        Step(
            "train",
            "train ResNet-18 on the development site",
            train,
            lambda: step_train(cfg, paths),
        ),
        Step(
            "evaluate",
            "validate on the internal test set, external sites and prospective set",
            train,
            lambda: step_evaluate(cfg, paths),
        ),
        Step(
            "synth-readers",
            "simulate three radiologists, unaided and aided",
            readers,
            lambda: step_synth_readers(cfg, paths),
        ),
        Step(
            "readers",
            "analyse the reader study (Table 3, Figure 6, MRMC)",
            readers,
            lambda: step_readers(cfg, paths),
        ),
        Step(
            "report", "write the report", {**readers, "report": 1}, lambda: step_report(cfg, paths)
        ),
    ]


def run_study(cfg: DemoConfig, console=None) -> Path:
    """Run (or resume) the whole study; returns the report's path."""
    from rich.console import Console

    console = console or Console(stderr=True)
    cfg = cfg.resolved()
    paths = DemoPaths(Path(cfg.out))
    paths.root.mkdir(parents=True, exist_ok=True)
    save_config(cfg, paths.root / "demo-config.yaml")
    steps = plan_steps(cfg, paths)
    # a changed step invalidates every later one
    stale = False
    t_start = time.perf_counter()
    for i, step in enumerate(steps, 1):
        stale = stale or not step_is_done(paths, step)
        header = f"[{i}/{len(steps)}] {step.name}: {step.description}"
        if not stale:
            console.print(f"[dim]{header} — done before, skipped[/dim]")
            continue
        _marker(paths, step).unlink(missing_ok=True)
        console.rule(f"[bold]{header}", align="left")
        t0 = time.perf_counter()
        step.run()
        seconds = time.perf_counter() - t0
        _mark_done(paths, step, seconds)
        console.print(
            f"[green]✓ {step.name}[/green] in {seconds:.0f} s (total {time.perf_counter() - t_start:.0f} s)"
        )
    _print_summary(console, paths, time.perf_counter() - t_start)
    return paths.report


def _print_summary(console, paths: DemoPaths, seconds: float) -> None:
    from rich.table import Table

    metrics = pd.read_csv(paths.evaluation / "metrics.csv")
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
    console.print(f"Report: [bold]{paths.report.resolve()}[/bold]  ({seconds / 60:.1f} min)")


# ----------------------------------------------------------------------------------------- CLI


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, DemoConfig)


def run_demo(args: argparse.Namespace) -> int:
    cfg = resolve_config(DemoConfig, args)
    report = run_study(cfg)
    if cfg.open:
        webbrowser.open(report.resolve().as_uri())
    return 0


__all__ = ["DemoConfig", "add_demo_arguments", "run_demo", "run_study"]
