"""Training the localiser's second stage (``vcfnet.models.refiner``): crops of the annotated films
at their own resolution around each body's box, jittered as the first stage's boxes would be
(shift, size, rotation) and in contrast, the six points as targets (L1 in crop pixels)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vcfnet.io.images import map_threads, read_radiograph
from vcfnet.localiser.crops import (
    REFINER_KEY,
    CropFrame,
    Refiner,
    RefineSpec,
    frame_for_box,
    sample_crop,
    standardise,
)
from vcfnet.localiser.targets import Body
from vcfnet.models.artifact import state_dict_hash
from vcfnet.models.refiner import arch_name, build_refiner
from vcfnet.training.distributed import (
    Dist,
    average_buffers,
    data_parallel,
    rank_share,
    rank_stream,
)
from vcfnet.training.schedule import one_cycle

log = logging.getLogger(__name__)


@dataclass
class CropSet:
    """Full-resolution films and every annotated body as (film index, body)."""

    pixels: list[np.ndarray]
    bodies: list[tuple[int, Body]]

    @classmethod
    def load(cls, films: Sequence) -> CropSet:
        """From ``FilmTruth``s (decoded with a few threads)."""
        pixels = map_threads(
            lambda f: read_radiograph(f.image).pixels, films, min(os.cpu_count() or 1, 4)
        )
        bodies = [(i, b) for i, f in enumerate(films) for b in f.bodies]
        return cls(list(pixels), bodies)


def jittered_frame(box: np.ndarray, spec: RefineSpec, rng, strength: float) -> CropFrame:
    """The box's crop frame moved as an imperfect first-stage box would move it."""
    f = frame_for_box(box, spec)
    side = f.scale * spec.crop
    shift = np.clip(rng.normal(0, 0.05, 2), -0.12, 0.12) * side * strength
    scale = f.scale * float(np.exp(rng.uniform(-0.15, 0.15) * strength))
    angle = float(np.deg2rad(rng.uniform(-8, 8) * strength))
    return CropFrame(f.centre + shift, scale, angle)


def crop_batch(
    data: CropSet, idx: Sequence[int], spec: RefineSpec, rng, strength: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Standardised float32 (B, 1, S, S) crops and their (B, 6, 2) points (crop pixels)."""
    crops, targets = [], []
    for i in idx:
        film, body = data.bodies[i]
        frame = jittered_frame(body.box, spec, rng, strength)
        c = sample_crop(data.pixels[film], frame, spec.crop)
        if strength:
            gamma = np.exp(rng.uniform(-0.4, 0.4) * strength)
            c = np.clip(c, 1e-4, 1) ** gamma * rng.uniform(0.8, 1.2)
            c = c + rng.normal(0, 0.02 * strength, c.shape)
        crops.append(c)
        targets.append(frame.to_crop(body.points, spec.crop))
    return standardise(np.stack(crops)), np.stack(targets).astype(np.float32)


def refine_errors_pct(refiner: Refiner, data: CropSet) -> np.ndarray:
    """Per-point error (% of the body's mean height) from the annotated boxes, no jitter."""
    out = []
    for film, body in data.bodies:
        b = Body(body.level, body.box.copy(), body.points.copy())
        refiner.refine(data.pixels[film], [b])
        height = float(np.mean(np.linalg.norm(body.points[3:] - body.points[:3], axis=1)))
        out += (100 * np.linalg.norm(b.points - body.points, axis=1) / height).tolist()
    return np.asarray(out)


def train_refiner(
    train: CropSet,
    spec: RefineSpec,
    steps: int,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    strength: float = 1.0,
    dist: Dist | None = None,
) -> tuple[torch.nn.Module, list[float]]:
    """The trained refine network (eval mode) and the loss of every step (mean L1, crop px).

    Under DDP (``dist``) each rank trains on its share of every step's ``batch_size`` crops and
    returns the same network; its losses are those of its share."""
    if not train.bodies:
        raise ValueError("no annotated bodies to train the refine stage on")
    dist = dist or Dist()
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 7])  # the batches' bodies: alike on every rank
    crop_rng = rank_stream(rng, [seed, 7], dist)
    core = build_refiner(spec.width)
    model = data_parallel(core, dist)
    opt = torch.optim.AdamW(core.parameters(), lr=lr, weight_decay=1e-4)
    sched = one_cycle(opt, lr, steps)
    model.train()
    losses, t0 = [], time.perf_counter()
    for step in range(steps):
        idx = rng.integers(0, len(train.bodies), batch_size)
        x, y = crop_batch(train, rank_share(idx, dist), spec, crop_rng, strength)
        pred = model(torch.from_numpy(x))
        loss = (pred - torch.from_numpy(y)).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if (step + 1) % max(1, steps // 10) == 0:
            log.info(
                "refine step %d/%d: L1 %.3f crop px (%.0f s)",
                step + 1,
                steps,
                np.mean(losses[-20:]),
                time.perf_counter() - t0,
            )
    average_buffers(core, dist)  # each rank's batch-norm statistics saw its share
    core.eval()
    return core, losses


def refiner_payload(model: torch.nn.Module, spec: RefineSpec, history: dict) -> dict:
    """What the localiser checkpoint carries of the refine stage (``extra["refiner"]``)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return {
        "arch": arch_name(spec.width),
        "spec": spec.to_dict(),
        "state": state,
        "hash": state_dict_hash(state),
        "history": history,
    }


def load_refiner_payload(payload: dict) -> Refiner:
    """A torch ``Refiner`` from a checkpoint's ``extra["refiner"]``."""
    spec = RefineSpec.from_dict(payload["spec"])
    model = build_refiner(spec.width)
    model.load_state_dict(payload["state"])
    return Refiner(spec, model.eval())


__all__ = ["REFINER_KEY", "CropSet", "load_refiner_payload", "refiner_payload", "train_refiner"]
