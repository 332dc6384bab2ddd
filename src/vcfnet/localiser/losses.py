"""The localiser's augmentation (batched affine + intensity) and losses (CenterNet-style)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from vcfnet.localiser.targets import Body, encode_targets, head_channels


def random_affines(n: int, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """(n, 2, 3) ``affine_grid`` thetas: scale 0.85-1.15, rotation +-8 deg, shift +-8 %."""
    s = np.exp(rng.uniform(-0.15, 0.15, n) * strength)
    a = np.deg2rad(rng.uniform(-8, 8, n) * strength)
    t = rng.uniform(-0.16, 0.16, (n, 2)) * strength
    cos, sin = np.cos(a) / s, np.sin(a) / s
    return np.stack(
        [np.stack([cos, -sin, t[:, 0]], 1), np.stack([sin, cos, t[:, 1]], 1)], 1
    ).astype(np.float32)


def _move(xy: np.ndarray, theta: np.ndarray, h: int, w: int) -> np.ndarray:
    """Input-pixel points (..., 2) -> where ``theta``'s warp puts them."""
    size = np.array([w, h], float)
    u = (2 * np.asarray(xy) + 1) / size - 1  # align_corners=False normalised
    a, t = theta[:, :2].astype(float), theta[:, 2].astype(float)
    out = (u - t) @ np.linalg.inv(a).T
    return ((out + 1) * size - 1) / 2


def augment(
    pixels: np.ndarray, bodies: list[list[Body]], rng: np.random.Generator, strength: float = 1.0
) -> tuple[torch.Tensor, list[list[Body]]]:
    """Warped, contrast-jittered float (N, 1, H, W) in [0, 1] and the moved bodies."""
    n, h, w = pixels.shape
    x = torch.from_numpy(pixels).float().div_(255.0).unsqueeze(1)
    thetas = random_affines(n, rng, strength)
    grid = F.affine_grid(torch.from_numpy(thetas), [n, 1, h, w], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gamma = torch.from_numpy(np.exp(rng.uniform(-0.4, 0.4, n) * strength)).float().view(n, 1, 1, 1)
    gain = torch.from_numpy(rng.uniform(0.8, 1.2, n)).float().view(n, 1, 1, 1)
    x = (x.clamp(1e-4, 1) ** gamma) * gain
    x = x + torch.from_numpy(rng.normal(0, 0.02, x.shape)).float() * strength
    moved = []
    for th, film in zip(thetas, bodies, strict=True):
        out = []
        for b in film:
            corners = b.box[[0, 1, 2, 1, 0, 3, 2, 3]].reshape(4, 2)
            c = _move(corners, th, h, w)
            box = np.array([c[:, 0].min(), c[:, 1].min(), c[:, 0].max(), c[:, 1].max()])
            out.append(Body(b.level, box, _move(b.points, th, h, w)))
        moved.append(out)
    return x.clamp_(0, 1), moved


def normalise(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] film -> the network's input (mean 0.5, std 0.25)."""
    return (x - 0.5) / 0.25


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, summed (normalise by the positives outside)."""
    p = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg = 1 - pos
    pos_loss = torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = torch.log(1 - p) * p**2 * (1 - target) ** 4 * neg
    return -(pos_loss.sum() + neg_loss.sum())


def batch_targets(bodies: list[list[Body]], grid_hw, stride: int, reg_scale: float) -> list[dict]:
    return [encode_targets(b, grid_hw, stride, reg_scale) for b in bodies]


def localiser_loss(
    out: torch.Tensor, targets: list[dict], n_levels: int
) -> tuple[torch.Tensor, dict]:
    """Total loss and its parts for raw maps ``out`` (N, C, h, w)."""
    parts, i = {}, 0
    for name, k in head_channels(n_levels).items():
        parts[name] = out[:, i : i + k].float()
        i += k
    heat_t = torch.from_numpy(np.stack([t["centre"] for t in targets]))
    pheat_t = torch.from_numpy(np.stack([t["point_heat"] for t in targets]))
    n_pos = max(1.0, float(sum(t["valid"].sum() for t in targets)))
    loss_heat = focal_loss(parts["centre"], heat_t) / n_pos
    loss_pheat = focal_loss(parts["point_heat"], pheat_t) / (6 * n_pos)
    img, rows, cols, pimg, prow, pcol, ptype = [], [], [], [], [], [], []
    for k, t in enumerate(targets):
        v = np.flatnonzero(t["valid"])
        img += [k] * len(v)
        rows += t["cell"][v, 0].tolist()
        cols += t["cell"][v, 1].tolist()
        for j in range(6):
            pimg += [k] * len(v)
            prow += t["point_cell"][v, j, 0].tolist()
            pcol += t["point_cell"][v, j, 1].tolist()
            ptype += [j] * len(v)
    cat = lambda key: torch.from_numpy(np.concatenate([t[key][t["valid"]] for t in targets]))  # noqa: E731
    at = lambda name: parts[name][img, :, rows, cols]  # noqa: E731  (K, channels)
    loss_off = F.l1_loss(at("centre_offset"), cat("centre_offset"))
    loss_level = F.cross_entropy(at("level"), cat("level"))
    loss_pts = F.smooth_l1_loss(at("points"), cat("points"), beta=0.05)
    loss_box = F.smooth_l1_loss(at("box"), cat("box"), beta=0.05)
    poff = parts["point_offset"].reshape(out.shape[0], 6, 2, *out.shape[2:])
    pred_poff = poff[pimg, ptype, :, prow, pcol]
    true_poff = torch.from_numpy(
        np.concatenate(
            [t["point_offset"][t["valid"]].transpose(1, 0, 2).reshape(-1, 2) for t in targets]
        )
    )
    loss_poff = F.l1_loss(pred_poff, true_poff)
    total = (
        loss_heat + loss_pheat + loss_off + 0.5 * loss_level + 2 * loss_pts + loss_box + loss_poff
    )
    if not math.isfinite(float(total.detach())):
        raise FloatingPointError("localiser loss is not finite")
    return total, {
        "heat": float(loss_heat.detach()),
        "point_heat": float(loss_pheat.detach()),
        "level": float(loss_level.detach()),
        "points": float(loss_pts.detach()),
    }
