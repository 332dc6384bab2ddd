"""``vcfnet train-localiser``: train the vertebra localiser on annotated films (synth output or a
``--points`` CSV). Seeded; resumes from ``checkpoints/last.pt``; bf16 autocast where the CPU has
it (``vcfnet.device``); selects ``best.pt`` on a held-out share of the training films.

Data-parallel (``--nproc N``, or ``torchrun --nproc-per-node N -m vcfnet train-localiser ...``;
gloo, one CPU process per rank with cores // N threads each): every rank draws the same seeded
global batch of ``--batch-size`` films (and, in the refine stage, ``--refine-batch-size`` crops)
each step and trains on its rank-strided share of it (``rank_share``), augmented from its own
seeded stream; DistributedDataParallel averages the gradients, so the effective batch is the
per-rank batch x N = ``--batch-size``, with the same learning rate, schedule and steps as one
process: a run with ``--nproc N`` is the same recipe as one without, on the same films and
batches. What differs: the augmentation draws, batch-norm statistics computed over each rank's
share (running statistics averaged over ranks every epoch) and the losses normalised per rank
(by that share's bodies) before the gradients are averaged. Validation films are split over the
ranks and their scores gathered; rank 0 alone writes checkpoints, ``metrics.csv`` and
``train.log``; the ranks are checked to hold identical weights after each stage.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from vcfnet.config import config_to_dict, save_command_config
from vcfnet.device import resolve_device, resolve_precision
from vcfnet.errors import ConfigError, InputError
from vcfnet.io.atomic import atomic_write_text
from vcfnet.localiser.crops import REFINER_KEY, Refiner, RefineSpec
from vcfnet.localiser.data import FilmArrays, load_film_arrays, read_films
from vcfnet.localiser.losses import augment, batch_targets, localiser_loss, normalise
from vcfnet.localiser.metrics import score_film, summarise
from vcfnet.localiser.model import SPEC_KEY, LocaliserSpec
from vcfnet.localiser.refine import CropSet, refine_errors_pct, refiner_payload, train_refiner
from vcfnet.localiser.targets import LEVELS, decode
from vcfnet.models.artifact import load_checkpoint, save_checkpoint
from vcfnet.models.localiser import (
    LOCALISE_TASK,
    REG_SCALE,
    STRIDE,
    WIDTHS,
    arch_name,
    build_localiser,
)
from vcfnet.models.refiner import WIDTHS as REFINE_WIDTHS
from vcfnet.preprocess import CropSpec, InputSpec, Preprocessing
from vcfnet.training.distributed import (
    Dist,
    all_gather_list,
    all_reduce_sum,
    average_buffers,
    barrier,
    check_ranks_agree,
    data_parallel,
    destroy_distributed,
    init_distributed,
    rank_share,
    rank_stream,
    run_ranks,
    will_spawn,
)
from vcfnet.training.runlog import run_logging
from vcfnet.training.schedule import one_cycle

log = logging.getLogger(__name__)


@dataclass
class LocaliserConfig:
    """Options of ``vcfnet train-localiser``."""

    data: list[Path] = field(
        default_factory=list,
        metadata={
            "help": "vcfnet synth output folders (cohort or site), comma-separated",
            "metavar": "DIR",
        },
    )
    points: Path | None = field(
        default=None,
        metadata={
            "help": "a vertebrae.csv of your own films (docs/localisation.md)",
            "metavar": "CSV",
        },
    )
    images: Path | None = field(
        default=None, metadata={"help": "folder the --points CSV's images are in", "metavar": "DIR"}
    )
    sites: list[str] = field(
        default_factory=lambda: ["SITE1"],
        metadata={"help": "train on these sites only (comma-separated; 'all' for every site)"},
    )
    out: Path = field(
        default=Path("runs/localiser"), metadata={"help": "run folder", "metavar": "DIR"}
    )
    input_size: str = field(default="256x320", metadata={"help": "model input WIDTHxHEIGHT"})
    width: int = field(default=16, metadata={"help": f"network width, one of {WIDTHS}"})
    epochs: int = field(default=30, metadata={"help": "epochs"})
    steps_per_epoch: int = field(default=40, metadata={"help": "batches per epoch"})
    batch_size: int = field(
        default=8, metadata={"help": "films per batch (global: split over the --nproc ranks)"}
    )
    lr: float = field(default=2e-3, metadata={"help": "AdamW learning rate (cosine decay)"})
    max_films: int = field(
        default=0, metadata={"help": "train on at most this many films (0 = all; seeded pick)"}
    )
    val_fraction: float = field(
        default=0.1, metadata={"help": "share of films held out for best.pt"}
    )
    augment: float = field(default=1.0, metadata={"help": "augmentation strength (0 = none)"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    precision: Literal["auto", "fp32", "bf16"] = field(
        default="auto", metadata={"help": "auto = bf16 autocast where the CPU supports it"}
    )
    resume: bool = field(default=True, metadata={"help": "continue from checkpoints/last.pt"})
    threads: int = field(
        default=0, metadata={"help": "torch threads per process (0 = cores // processes)"}
    )
    nproc: int = field(
        default=1,
        metadata={"help": "train in N data-parallel processes (DDP, gloo); 1 = this process"},
    )
    refine_steps: int = field(
        default=500,
        metadata={"help": "steps of the crop-level point refine stage (0 = no refine stage)"},
    )
    refine_width: int = field(default=12, metadata={"help": "refine network width"})
    refine_batch_size: int = field(
        default=32, metadata={"help": "body crops per refine step (global, like --batch-size)"}
    )
    refine_crop: int = field(default=64, metadata={"help": "refine crop side in pixels"})

    def spec(self) -> LocaliserSpec:
        try:
            w, h = (int(v) for v in self.input_size.lower().split("x"))
        except ValueError:
            raise ConfigError(
                f"--input-size {self.input_size!r}: expected WIDTHxHEIGHT, e.g. 256x320"
            ) from None
        if w % 32 or h % 32 or w < 64 or h < 64:
            raise ConfigError(
                f"--input-size {self.input_size}: both sides must be multiples of 32, >= 64"
            )
        return LocaliserSpec(input_h=h, input_w=w, stride=STRIDE, reg_scale=REG_SCALE)


def _check(cfg: LocaliserConfig) -> None:
    if not cfg.data and cfg.points is None:
        raise ConfigError("train-localiser needs --data SYNTH_DIR or --points CSV")
    if cfg.width not in WIDTHS:
        raise ConfigError(f"--width {cfg.width}: use one of {', '.join(map(str, WIDTHS))}")
    if cfg.epochs < 1 or cfg.steps_per_epoch < 1 or cfg.batch_size < 1:
        raise ConfigError("--epochs, --steps-per-epoch and --batch-size must be at least 1")
    if not 0 <= cfg.val_fraction < 1:
        raise ConfigError("--val-fraction must be in [0, 1)")
    if cfg.refine_steps < 0 or cfg.refine_width not in REFINE_WIDTHS or cfg.refine_crop % 8:
        raise ConfigError(
            f"--refine-steps must be >= 0, --refine-width one of {REFINE_WIDTHS}, "
            "--refine-crop a multiple of 8"
        )
    if cfg.nproc < 1:
        raise ConfigError("--nproc must be at least 1")
    check_batch_split(cfg, cfg.nproc)


def check_batch_split(cfg: LocaliserConfig, world_size: int) -> None:
    """Every rank gets an equal share of each global batch (per-rank batch x ranks = batch)."""
    uneven = cfg.batch_size % world_size or (
        cfg.refine_steps and cfg.refine_batch_size % world_size
    )
    if uneven:
        raise ConfigError(
            f"--batch-size {cfg.batch_size} and --refine-batch-size {cfg.refine_batch_size} are "
            f"split over {world_size} processes: make both multiples of {world_size}"
        )


def _films(cfg: LocaliserConfig) -> tuple[list, list]:
    """(training films, validation films), a seeded split."""
    films = read_films([*cfg.data, *([cfg.points] if cfg.points else [])], cfg.images)
    if [s.lower() for s in cfg.sites] != ["all"]:
        films = [f for f in films if f.site in cfg.sites]
    if not films:
        raise InputError(f"no annotated films of sites {', '.join(cfg.sites)}; check --sites")
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(films))
    n_val = round(cfg.val_fraction * len(films)) if len(films) > 4 else 0
    val = [films[i] for i in order[:n_val]]
    train = [films[i] for i in order[n_val:]]
    if cfg.max_films > 0:
        train = train[: cfg.max_films]
    log.info("train-localiser: %d training films, %d validation films", len(train), len(val))
    return train, val


def _split(cfg: LocaliserConfig, spec: LocaliserSpec) -> tuple[FilmArrays, list]:
    train, val = _films(cfg)
    return load_film_arrays(train, spec.input_h, spec.input_w), val


def add_refine_stage(cfg: LocaliserConfig, dist: Dist | None = None) -> dict | None:
    """Train the crop-level refine stage and embed it in ``best.pt`` (once: a best.pt that has
    one is left alone); its summary, or None when ``refine_steps`` is 0. Under DDP every rank
    trains on its share of each step's crops; rank 0 alone validates and writes."""
    if cfg.refine_steps == 0:
        return None
    dist = dist or Dist()
    best = cfg.out / "checkpoints" / "best.pt"
    ckpt = load_checkpoint(best)
    if REFINER_KEY in ckpt.extra:
        return ckpt.extra[REFINER_KEY]["history"]
    train, val = _films(cfg)
    rspec = RefineSpec(crop=cfg.refine_crop, width=cfg.refine_width)
    t0 = time.process_time()
    model, losses = train_refiner(
        CropSet.load(train),
        rspec,
        cfg.refine_steps,
        cfg.refine_batch_size,
        cfg.lr,
        cfg.seed,
        cfg.augment,
        dist,
    )
    if dist.enabled:
        check_ranks_agree(model, dist)
    local = torch.tensor([np.mean(losses[-20:]), time.process_time() - t0], dtype=torch.float64)
    loss, cpu_seconds = all_reduce_sum(local, dist).tolist()
    history = {
        "steps": cfg.refine_steps,
        "loss": loss / dist.world_size,
        "cpu_seconds": cpu_seconds,  # all ranks together
    }
    if not dist.is_main:
        return history
    if val:
        errors = refine_errors_pct(Refiner(rspec, model), CropSet.load(val))
        history["val_point_error_pct"] = float(np.median(errors))
    log.info("refine stage: %s", ", ".join(f"{k} {v:.4g}" for k, v in history.items()))
    spec = LocaliserSpec.from_dict(ckpt.config[SPEC_KEY])
    extra = {**ckpt.extra, REFINER_KEY: refiner_payload(model, rspec, history)}
    _save(best, ckpt.model, cfg, spec, extra)
    return history


def validate(model, val, spec: LocaliserSpec, dist: Dist | None = None) -> dict:
    """Recall, level accuracy and median point error (% of height) on the held-out films (under
    DDP each rank scores its share of them; every rank gets the figures of all)."""
    from vcfnet.io.images import read_radiograph
    from vcfnet.localiser.data import letterbox_pixels, to_input_bodies

    dist = dist or Dist()
    scores = []
    model.eval()
    for film in rank_share(val, dist):
        px, lb = letterbox_pixels(read_radiograph(film.image).pixels, spec.input_h, spec.input_w)
        with torch.inference_mode():
            maps = model(torch.from_numpy(spec.normalise(px[None]))).float().numpy()[0]
        pred = decode(maps, len(spec.levels), spec.stride, spec.reg_scale)
        scores.append(score_film(pred, to_input_bodies(film.bodies, lb), None))
    model.train()
    m = summarise(all_gather_list(scores, dist))
    return {
        "recall": m.recall,
        "level_accuracy": m.level_accuracy,
        "point_error_pct": m.point_error_pct,
    }


def _selection_score(v: dict) -> float:
    """Higher is better: recall and level accuracy first, then point error."""
    if not v or any(math.isnan(x) for x in v.values()):
        return -math.inf
    return v["recall"] + v["level_accuracy"] - v["point_error_pct"] / 100


def _save(path, model, cfg, spec, extra):
    return save_checkpoint(
        path,
        model,
        class_names=tuple(spec.levels),
        preprocessing=Preprocessing(
            CropSpec(), InputSpec(max(spec.input_h, spec.input_w), (spec.mean,), (spec.std,), 1)
        ),
        config={**config_to_dict(cfg), SPEC_KEY: spec.to_dict()},
        extra=extra,
        task=LOCALISE_TASK,
        arch=arch_name(cfg.width),
    )


def train_localiser(cfg: LocaliserConfig) -> dict:
    """Train (in ``cfg.nproc`` data-parallel processes when > 1); returns a summary (best epoch,
    the history, the refine stage's summary, run folder) read back from the checkpoints."""
    _check(cfg)
    cfg.spec()  # a bad --input-size fails here, before any process starts
    if will_spawn(cfg.nproc):
        _films(cfg)  # and missing films or sites
    _check_resumable(cfg)
    run_ranks(_train_rank, cfg, cfg.nproc)
    extra = load_checkpoint(cfg.out / "checkpoints" / "last.pt").extra
    refine = None
    if cfg.refine_steps:
        best = load_checkpoint(cfg.out / "checkpoints" / "best.pt").extra
        refine = best.get(REFINER_KEY, {}).get("history")
    return {
        "run_dir": cfg.out,
        "best_epoch": extra["best_epoch"],
        "history": extra["history"],
        "refine": refine,
    }


def _check_resumable(cfg: LocaliserConfig) -> None:
    """A run to resume must have the same number of steps: its one-cycle schedule was fixed when
    it started."""
    last = cfg.out / "checkpoints" / "last.pt"
    if not (cfg.resume and last.is_file()):
        return
    started = load_checkpoint(last).extra["scheduler"]["total_steps"]
    if started != cfg.epochs * cfg.steps_per_epoch:
        raise ConfigError(
            f"{cfg.out} was started with {started} steps (epochs x steps per epoch), not "
            f"{cfg.epochs * cfg.steps_per_epoch}: resume with its --epochs/--steps-per-epoch, "
            "or train into a new --out"
        )


def _train_rank(cfg: LocaliserConfig) -> None:
    """One process's part (all of it without DDP): the detector's epochs, then the refine stage."""
    dist = init_distributed(torch.device("cpu"))
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        check_batch_split(cfg, dist.world_size)
        if dist.is_main:
            cfg.out.mkdir(parents=True, exist_ok=True)
            save_command_config(cfg, cfg.out)
        barrier(dist)
        with run_logging(cfg.out, dist):
            _train_detector(cfg, dist)
            add_refine_stage(cfg, dist)
        barrier(dist)  # best.pt is complete before any rank reads the summary
    finally:
        destroy_distributed(dist)


@dataclass
class _Detector:
    """One rank's first-stage training: the network (``model`` wraps ``core`` in DDP when
    distributed), its optimiser and schedule, and where the run stands (``state``)."""

    core: torch.nn.Module
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    state: dict


def _build_detector(cfg: LocaliserConfig, spec: LocaliserSpec, dist: Dist) -> _Detector:
    """The seeded network, AdamW and one-cycle schedule, resumed from ``last.pt`` if asked."""
    torch.manual_seed(cfg.seed)
    core = build_localiser(len(spec.levels), cfg.width)
    opt = torch.optim.AdamW(core.parameters(), lr=cfg.lr, weight_decay=1e-4)
    total = cfg.epochs * cfg.steps_per_epoch
    sched = one_cycle(opt, cfg.lr, total)
    state = {"epoch": 0, "best": -math.inf, "best_epoch": 0, "history": []}
    last = cfg.out / "checkpoints" / "last.pt"
    if cfg.resume and last.is_file():
        ckpt = load_checkpoint(last)
        core.load_state_dict(ckpt.model.state_dict())
        opt.load_state_dict(ckpt.extra["optimizer"])
        sched.load_state_dict(ckpt.extra["scheduler"])
        state.update({k: ckpt.extra[k] for k in ("epoch", "best", "best_epoch", "history")})
        log.info("resumed from %s at epoch %d", last, state["epoch"])
    return _Detector(core, data_parallel(core, dist), opt, sched, state)


def _train_detector(cfg: LocaliserConfig, dist: Dist) -> None:
    """The first stage's epochs: train, validate, rank 0 saves last.pt (and best.pt)."""
    spec = cfg.spec()
    data, val = _split(cfg, spec)
    device = resolve_device("cpu")
    precision = resolve_precision(cfg.precision, device)
    det = _build_detector(cfg, spec, dist)
    log.info(
        "%d process(es), %d films per process per step, %d torch threads each",
        dist.world_size,
        cfg.batch_size // dist.world_size,
        torch.get_num_threads(),
    )
    det.model.train()
    for epoch in range(det.state["epoch"] + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        loss = _train_epoch(cfg, spec, det, data, epoch, dist, precision, device)
        average_buffers(det.core, dist)  # each rank's batch-norm statistics saw its share
        v = validate(det.core, val, spec, dist) if val else {}
        row = {"epoch": epoch, "loss": loss, "seconds": time.perf_counter() - t0, **v}
        _end_epoch(cfg, spec, det, row, _selection_score(v) if val else float(epoch), dist)
    if dist.enabled:
        check_ranks_agree(det.core, dist)
    if dist.is_main:
        _write_history(cfg.out / "metrics.csv", det.state["history"])
    barrier(dist)


def _train_epoch(cfg, spec, det: _Detector, data: FilmArrays, epoch, dist, precision, device):
    """One epoch's steps, each on this rank's share of the step's films; the mean loss over the
    steps and the ranks."""
    rng = np.random.default_rng([cfg.seed, epoch])  # which films: alike on every rank
    aug_rng = rank_stream(rng, [cfg.seed, epoch], dist)
    grid = (spec.input_h // spec.stride, spec.input_w // spec.stride)
    losses = []
    for _ in range(cfg.steps_per_epoch):
        idx = rank_share(rng.integers(0, len(data.pixels), cfg.batch_size), dist)
        x, bodies = augment(data.pixels[idx], [data.bodies[i] for i in idx], aug_rng, cfg.augment)
        with precision.autocast(device):
            out = det.model(normalise(x))
        loss, _parts = localiser_loss(
            out, batch_targets(bodies, grid, spec.stride, spec.reg_scale), len(spec.levels)
        )
        det.opt.zero_grad(set_to_none=True)
        loss.backward()  # DDP: the gradients are averaged over the ranks here
        torch.nn.utils.clip_grad_norm_(det.core.parameters(), 5.0)
        det.opt.step()
        det.sched.step()
        losses.append(float(loss.detach()))
    return float(all_reduce_sum(torch.tensor(np.mean(losses)), dist)) / dist.world_size


def _end_epoch(cfg, spec, det: _Detector, row: dict, score: float, dist: Dist) -> None:
    """Log the epoch's row; rank 0 writes last.pt, and best.pt when ``score`` is the best yet."""
    state = det.state
    state["history"].append(row)
    log.info(
        "epoch %d: %s",
        row["epoch"],
        ", ".join(f"{k} {x:.4g}" for k, x in row.items() if k != "epoch"),
    )
    state["epoch"] = row["epoch"]
    improved = score >= state["best"]
    if improved:
        state.update(best=score, best_epoch=row["epoch"])
    if not dist.is_main:
        return
    if improved:
        _save(cfg.out / "checkpoints" / "best.pt", det.core, cfg, spec, {"epoch": row["epoch"]})
    extra = {**state, "optimizer": det.opt.state_dict(), "scheduler": det.sched.state_dict()}
    _save(cfg.out / "checkpoints" / "last.pt", det.core, cfg, spec, extra)


def _write_history(path: Path, history: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    lines = [",".join(keys)] + [",".join(f"{row.get(k, '')}" for k in keys) for row in history]
    atomic_write_text(path, "\n".join(lines) + "\n")


__all__ = ["LEVELS", "LocaliserConfig", "train_localiser"]
