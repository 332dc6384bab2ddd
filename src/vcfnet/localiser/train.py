"""``vcfnet train-localiser``: train the vertebra localiser on annotated films (synth output or a
``--points`` CSV). Seeded; resumes from ``checkpoints/last.pt``; bf16 autocast where the CPU has
it (``vcfnet.device``); selects ``best.pt`` on a held-out share of the training films."""

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
    batch_size: int = field(default=8, metadata={"help": "films per batch"})
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
    threads: int = field(default=0, metadata={"help": "torch threads (0 = default)"})
    refine_steps: int = field(
        default=500,
        metadata={"help": "steps of the crop-level point refine stage (0 = no refine stage)"},
    )
    refine_width: int = field(default=12, metadata={"help": "refine network width"})
    refine_batch_size: int = field(default=32, metadata={"help": "body crops per refine step"})
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


def add_refine_stage(cfg: LocaliserConfig) -> dict | None:
    """Train the crop-level refine stage and embed it in ``best.pt`` (once: a best.pt that has
    one is left alone); its summary, or None when ``refine_steps`` is 0."""
    if cfg.refine_steps == 0:
        return None
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
    )
    history = {
        "steps": cfg.refine_steps,
        "loss": float(np.mean(losses[-20:])),
        "cpu_seconds": time.process_time() - t0,
    }
    if val:
        errors = refine_errors_pct(Refiner(rspec, model), CropSet.load(val))
        history["val_point_error_pct"] = float(np.median(errors))
    log.info("refine stage: %s", history)
    spec = LocaliserSpec.from_dict(ckpt.config[SPEC_KEY])
    extra = {**ckpt.extra, REFINER_KEY: refiner_payload(model, rspec, history)}
    _save(best, ckpt.model, cfg, spec, extra)
    return history


def validate(model, val, spec: LocaliserSpec) -> dict:
    """Recall, level accuracy and median point error (% of height) on the held-out films."""
    from vcfnet.io.images import read_radiograph
    from vcfnet.localiser.data import letterbox_pixels, to_input_bodies

    scores = []
    model.eval()
    for film in val:
        px, lb = letterbox_pixels(read_radiograph(film.image).pixels, spec.input_h, spec.input_w)
        with torch.inference_mode():
            maps = model(torch.from_numpy(spec.normalise(px[None]))).float().numpy()[0]
        pred = decode(maps, len(spec.levels), spec.stride, spec.reg_scale)
        scores.append(score_film(pred, to_input_bodies(film.bodies, lb), None))
    model.train()
    m = summarise(scores)
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
    """Train; returns a summary (best epoch, its validation figures, run folder)."""
    _check(cfg)
    spec = cfg.spec()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cfg.out.mkdir(parents=True, exist_ok=True)
    save_command_config(cfg, cfg.out)
    data, val = _split(cfg, spec)
    device = resolve_device("cpu")
    precision = resolve_precision(cfg.precision, device)
    torch.manual_seed(cfg.seed)
    model = build_localiser(len(spec.levels), cfg.width)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    total = cfg.epochs * cfg.steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=total, pct_start=0.1)
    state = {"epoch": 0, "best": -math.inf, "best_epoch": 0, "history": [], "rng": None}
    last = cfg.out / "checkpoints" / "last.pt"
    if cfg.resume and last.is_file():
        ckpt = load_checkpoint(last)
        model.load_state_dict(ckpt.model.state_dict())
        opt.load_state_dict(ckpt.extra["optimizer"])
        sched.load_state_dict(ckpt.extra["scheduler"])
        state.update({k: ckpt.extra[k] for k in ("epoch", "best", "best_epoch", "history")})
        log.info("resumed from %s at epoch %d", last, state["epoch"])
    model.train()
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        rng = np.random.default_rng([cfg.seed, epoch])
        t0, losses = time.perf_counter(), []
        for _ in range(cfg.steps_per_epoch):
            idx = rng.integers(0, len(data.pixels), cfg.batch_size)
            x, bodies = augment(data.pixels[idx], [data.bodies[i] for i in idx], rng, cfg.augment)
            with precision.autocast(device):
                out = model(normalise(x))
            grid = (spec.input_h // spec.stride, spec.input_w // spec.stride)
            loss, _parts = localiser_loss(
                out, batch_targets(bodies, grid, spec.stride, spec.reg_scale), len(spec.levels)
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        v = validate(model, val, spec) if val else {}
        row = {
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            "seconds": time.perf_counter() - t0,
            **v,
        }
        state["history"].append(row)
        log.info(
            "epoch %d: %s", epoch, ", ".join(f"{k} {x:.4g}" for k, x in row.items() if k != "epoch")
        )
        score = _selection_score(v) if val else float(epoch)
        state["epoch"] = epoch
        if score >= state["best"]:
            state.update(best=score, best_epoch=epoch)
            _save(cfg.out / "checkpoints" / "best.pt", model, cfg, spec, {"epoch": epoch})
        extra = {**state, "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
        extra.pop("rng")
        _save(last, model, cfg, spec, extra)
    _write_history(cfg.out / "metrics.csv", state["history"])
    refine = add_refine_stage(cfg)
    return {
        "run_dir": cfg.out,
        "best_epoch": state["best_epoch"],
        "history": state["history"],
        "refine": refine,
    }


def _write_history(path: Path, history: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    lines = [",".join(keys)] + [",".join(f"{row.get(k, '')}" for k in keys) for row in history]
    atomic_write_text(path, "\n".join(lines) + "\n")


__all__ = ["LEVELS", "LocaliserConfig", "train_localiser"]
