"""``vcfnet demo``: the paper's multicenter study end to end on a synthetic cohort.

synth -> prepare (per site; external sites are pure test sets) -> train -> evaluate (all sites)
-> synth-readers -> readers -> one report (Tables 1-3, Figures 5-6, training curves, model card).
Each step writes into its own subfolder of ``--out`` and a marker holding its parameters when it
finishes; re-running skips finished steps with the same parameters and resumes the rest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from vcfnet import __version__
from vcfnet.config import save_config
from vcfnet.data.config import PrepareConfig
from vcfnet.data.prepare import prepare_dataset
from vcfnet.errors import ConfigError
from vcfnet.evaluation.evaluate import evaluate_model
from vcfnet.io.atomic import atomic_write_text
from vcfnet.reader_study.report import run_reader_study
from vcfnet.study.budget import choose_rung, workload
from vcfnet.study.config import DEMO_ID_KEY, DemoConfig, DemoPaths
from vcfnet.study.localiser import DEFAULT, QUICK, cost_in_training_images, run_localiser_step
from vcfnet.study.report import build_demo_report
from vcfnet.synth.cohort import SynthConfig, generate_cohort
from vcfnet.synth.readers import write_simulated_reads
from vcfnet.training.config import TrainConfig
from vcfnet.training.loop import train

log = logging.getLogger(__name__)


@dataclass
class Step:
    name: str
    description: str
    params: dict[str, Any]
    run: Callable[[], None]
    #: folders the step writes and resumes from: emptied when it runs again with other parameters
    outputs: tuple[Path, ...] = ()


def _marker(paths: DemoPaths, step: Step) -> Path:
    return paths.markers / f"{step.name}.json"


def _finished_params(paths: DemoPaths, step: Step) -> dict[str, Any] | None:
    """The parameters ``step`` last finished with (None: it never finished)."""
    try:
        params = json.loads(_marker(paths, step).read_text()).get("params")
    except (json.JSONDecodeError, OSError, AttributeError):  # AttributeError: not an object
        return None
    return params if isinstance(params, dict) else None


def step_is_done(paths: DemoPaths, step: Step) -> bool:
    """True if ``step`` finished before with the same parameters."""
    return _finished_params(paths, step) == step.params


def _mark_done(paths: DemoPaths, step: Step, seconds: float) -> None:
    record = {"params": step.params, "seconds": round(seconds, 1), "finished": _now()}
    atomic_write_text(_marker(paths, step), json.dumps(record, indent=2) + "\n")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


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
    generate_cohort(
        SynthConfig(
            out=paths.cohort, scale=cfg.scale, seed=cfg.seed, size=cfg.size, workers=cfg.workers
        )
    )


def step_prepare(cfg: DemoConfig, paths: DemoPaths) -> None:
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
    write_simulated_reads(
        _reader_truth(paths), paths.reads, seed=cfg.seed, fraction=cfg.reader_fraction
    )


def step_readers(cfg: DemoConfig, paths: DemoPaths) -> None:
    reads = pd.read_csv(paths.reads, keep_default_na=False)
    truth = _reader_truth(paths)
    truth = truth[truth["case_id"].isin(set(reads["case_id"]))]
    run_reader_study(truth, reads, paths.readers, simulated=True)


def step_localiser(cfg: DemoConfig, paths: DemoPaths) -> None:
    run_localiser_step(cfg, paths.cohort, paths.localiser, _development_site(paths))


def step_report(cfg: DemoConfig, paths: DemoPaths) -> None:
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
    localiser = {**synth, "localiser": QUICK if cfg.quick else DEFAULT}
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
            outputs=(paths.run,),
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
            "localiser",
            "train the vertebra localiser, evaluate it on every site",
            localiser,
            lambda: step_localiser(cfg, paths),
            outputs=(paths.localiser,),
        ),
        Step(
            "report",
            "write the report",
            {**readers, **localiser, "report": 2},
            lambda: step_report(cfg, paths),
        ),
    ]


@dataclass(frozen=True)
class StepEvent:
    """A step of the study starting, finishing or skipped (done before), for a progress display."""

    index: int  # 1-based
    total: int
    name: str
    description: str
    status: str  # "skipped" | "started" | "done"
    seconds: float = 0.0  # this step (done)
    elapsed: float = 0.0  # since the study started


def _seconds_taken(paths: DemoPaths, steps: list[Step]) -> float:
    """Seconds the finished ``steps`` took when they ran (from their markers)."""
    total = 0.0
    for step in steps:
        with contextlib.suppress(OSError, json.JSONDecodeError, ValueError):
            total += float(json.loads(_marker(paths, step).read_text()).get("seconds", 0.0))
    return total


def _fit_budget(cfg: DemoConfig, paths: DemoPaths, done: list[Step]) -> DemoConfig:
    """``cfg`` at the training rung that fits its budget after the ``done`` steps."""
    params = {**done[-1].params, "budget_s": cfg.budget_s, "quick": cfg.quick}
    sites = list(_site_roles(paths.cohort))
    work = workload(paths.data, _development_site(paths), sites, cost_in_training_images(cfg.quick))
    choice = choose_rung(cfg, work, _seconds_taken(paths, done), params, paths.budget)
    cfg = cfg.with_rung(choice.rung)
    save_config(cfg, paths.root / "demo-config.yaml")
    return cfg


def run_study(cfg: DemoConfig, on_step: Callable[[StepEvent], None] | None = None) -> Path:
    """Run (or resume) the whole study; returns the report's path. ``on_step`` hears each step.

    Unless the training size is given (``--rung``, ``--epochs`` and ``--image-size``), it is
    chosen just before training from the budget (``vcfnet.study.budget``).
    """
    notify = on_step or (lambda _event: None)
    cfg = cfg.resolved()
    paths = DemoPaths(Path(cfg.out))
    paths.root.mkdir(parents=True, exist_ok=True)
    save_config(cfg, paths.root / "demo-config.yaml")
    if not cfg.needs_rung:  # the size is pinned: no measurement, and none left from a past run
        paths.budget.unlink(missing_ok=True)
    steps = plan_steps(cfg, paths)
    stale = False  # a changed step invalidates every later one
    t_start = time.perf_counter()
    for i in range(1, len(steps) + 1):
        if steps[i - 1].name == "train" and cfg.needs_rung:
            cfg = _fit_budget(cfg, paths, steps[: i - 1])
            steps = steps[: i - 1] + plan_steps(cfg, paths)[i - 1 :]
        step = steps[i - 1]
        stale = stale or not step_is_done(paths, step)
        event = StepEvent(i, len(steps), step.name, step.description, "started")
        if not stale:
            notify(replace(event, status="skipped"))
            continue
        before = _finished_params(paths, step)
        if before not in (None, step.params):  # not a resume
            changed = sorted(
                k for k in {*before, *step.params} if before.get(k) != step.params.get(k)
            )
            log.info(
                "%s: %s changed since it finished; running it again", step.name, ", ".join(changed)
            )
            for folder in step.outputs:
                shutil.rmtree(folder, ignore_errors=True)
        _marker(paths, step).unlink(missing_ok=True)
        notify(event)
        t0 = time.perf_counter()
        step.run()
        seconds = time.perf_counter() - t0
        _mark_done(paths, step, seconds)
        notify(
            replace(event, status="done", seconds=seconds, elapsed=time.perf_counter() - t_start)
        )
    log.info("demo finished in %.0f s: %s", time.perf_counter() - t_start, paths.report)
    return paths.report
