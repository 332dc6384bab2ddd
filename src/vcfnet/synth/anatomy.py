"""Spine geometry of a lateral lumbar radiograph: T11-S1 along a lordotic curve, in image pixels.

Patients face left: anterior is towards column 0. Each vertebra has a centre, a tilt (the curve's
direction there) and half depth/height; its normalised frame is ``u`` (anterior -1 .. posterior +1)
and ``v`` (upper endplate -1 .. lower endplate +1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcfnet.synth.fractures import NORMAL, Deformity, FractureSpec

SPINE_LEVELS: tuple[str, ...] = ("T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")
#: Levels a fracture may be placed at, with their prior probability (most at T12-L2).
FRACTURE_LEVEL_PROBS: dict[str, float] = {
    "T11": 0.07,
    "T12": 0.24,
    "L1": 0.30,
    "L2": 0.15,
    "L3": 0.11,
    "L4": 0.08,
    "L5": 0.05,
}
_HEIGHT_MM = (23.0, 24.0, 25.5, 26.5, 27.5, 27.5, 26.5, 28.0)
_DEPTH_MM = (29.0, 31.0, 33.0, 35.0, 37.0, 38.0, 38.0, 40.0)
_DISC_MM = (5.5, 6.5, 7.5, 8.5, 9.5, 10.5, 9.5)  # below each level


@dataclass(frozen=True)
class Vertebra:
    """One vertebra placed on the image: centre (x, y) px, tilt (radians), half sizes (px)."""

    level: str
    cx: float
    cy: float
    angle: float  # body axis angle: +: caudal direction leans anterior (left)
    half_depth: float
    half_height: float
    deformity: Deformity
    rim_offset: float = 0.0  # endplate double contour (projected ring), in v units

    @property
    def spec(self) -> FractureSpec:
        return self.deformity.spec

    def to_image(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image (x, y) of normalised points (u, v)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        du, dv = np.asarray(u) * self.half_depth, np.asarray(v) * self.half_height
        return self.cx + du * c - dv * s, self.cy + du * s + dv * c

    def to_local(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised (u, v) of image points (x, y)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        dx, dy = x - self.cx, y - self.cy
        return (dx * c + dy * s) / self.half_depth, (-dx * s + dy * c) / self.half_height

    def drawn_endplates(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Upper and lower endplate positions (v) at ``u`` as rendered: the deformity's endplates
        made slightly concave (5 % of the height at the middle, nothing at the walls)."""
        top, bot = self.deformity.endplates(u)
        cup = 0.05 * np.clip(1.0 - u**2, 0, None)
        return top + cup, bot - cup

    def walls(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Anterior and posterior wall positions (u) at ``v`` as rendered: a concave waist, the
        buckled anterior cortex and the bulging posterior wall of the fracture signs."""
        spec = self.spec
        waist = np.clip(1.0 - v**2, 0, None)
        u_ant = (
            -1.0
            + 0.07 * waist
            - spec.sign("anterior_buckle") * np.clip(1.0 - np.abs(v - 0.1) / 0.45, 0, None)
        )
        u_post = 1.0 - 0.03 * waist + spec.sign("posterior_bulge") * waist
        return u_ant, u_post

    def outline(self, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Image (x, y) of the body outline: upper endplate, posterior wall, lower endplate, anterior."""
        u = np.linspace(-1.0, 1.0, n)
        top, bot = self.deformity.endplates(u)
        uu = np.concatenate([u, u[::-1]])
        vv = np.concatenate([top, bot[::-1]])
        return self.to_image(uu, vv)

    def body_box(self) -> tuple[float, float, float, float]:
        """Tight (x1, y1, x2, y2) of the vertebral body (with osteophytes and bulges)."""
        x, y = self.outline()
        pad = (
            self.spec.sign("osteophyte") + self.spec.sign("anterior_buckle") * 0.5
        ) * self.half_depth
        return (
            float(x.min() - pad * 0.5),
            float(y.min()),
            float(x.max() + pad * 0.2),
            float(y.max()),
        )


def build_spine(
    rng: np.random.Generator,
    shape: tuple[int, int],
    pixel_spacing: float,
    specs: dict[str, FractureSpec],
    *,
    sex: str = "F",
) -> list[Vertebra]:
    """Place T11-S1 on an image of ``shape`` (H, W) with ``pixel_spacing`` mm; ``specs`` per level."""
    h_img, w_img = shape
    size = float(rng.normal(1.0, 0.05)) * (1.05 if sex == "M" else 1.0) / pixel_spacing  # px per mm
    alpha = np.deg2rad(rng.uniform(6, 16))  # thoracolumbar lean (anterior going down)
    beta = np.deg2rad(rng.uniform(18, 34))  # lordosis towards the sacrum
    n = len(SPINE_LEVELS)
    deformities = [Deformity.of(specs.get(lv, NORMAL)) for lv in SPINE_LEVELS]
    heights = [_HEIGHT_MM[i] * size for i in range(n)]
    narrowing = [specs.get(lv, NORMAL).sign("disc_narrowing") for lv in SPINE_LEVELS]
    # arc length positions of body centres; a collapsed body shortens the stack by its posterior loss
    s_centres, s = [], 0.0
    for i in range(n):
        h_eff = heights[i] * float(deformities[i].heights(np.array([0.9]))[0])
        s_centres.append(s + h_eff / 2)
        if i < n - 1:
            narrow = min(0.7, narrowing[i] + narrowing[i + 1] + rng.uniform(0, 0.15))
            s += h_eff + _DISC_MM[i] * size * (1 - narrow)
    total = s_centres[-1]
    t = np.asarray(s_centres) / total
    angles = alpha - (alpha + beta) * t**1.3
    angles[-1] -= np.deg2rad(rng.uniform(8, 18))  # sacral slope
    # integrate the centreline: direction (-sin a, cos a)
    grid = np.linspace(0.0, total, 400)
    a_grid = alpha - (alpha + beta) * (grid / total) ** 1.3
    x_grid = np.concatenate([[0.0], np.cumsum(-np.sin(a_grid[:-1]) * np.diff(grid))])
    y_grid = np.concatenate([[0.0], np.cumsum(np.cos(a_grid[:-1]) * np.diff(grid))])
    xs = np.interp(s_centres, grid, x_grid)
    ys = np.interp(s_centres, grid, y_grid)
    xs = xs - xs.mean() + w_img * rng.uniform(0.40, 0.52)
    ys = ys - ys[0] + heights[0] / 2 + h_img * rng.uniform(0.06, 0.14)
    centre_row = h_img / 2
    spine = []
    for i, level in enumerate(SPINE_LEVELS):
        # beam divergence: endplates away from the central ray project as rings (double contour)
        rim = 0.02 + 0.10 * abs(ys[i] - centre_row) / h_img + rng.uniform(0, 0.04)
        spine.append(
            Vertebra(
                level=level,
                cx=float(xs[i]),
                cy=float(ys[i]),
                angle=float(angles[i]),
                half_depth=_DEPTH_MM[i] * size / 2,
                half_height=heights[i] / 2,
                deformity=deformities[i],
                rim_offset=float(rim),
            )
        )
    return spine


def choose_fracture_levels(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct levels for a patient's fractures, most at T12-L2, contiguous when possible."""
    levels = list(FRACTURE_LEVEL_PROBS)
    p = np.asarray(list(FRACTURE_LEVEL_PROBS.values()))
    first = int(rng.choice(len(levels), p=p / p.sum()))
    chosen = {first}
    while len(chosen) < min(n, len(levels)):
        if rng.random() < 0.6:  # neighbour of one already chosen
            k = int(rng.choice(sorted(chosen))) + int(rng.choice([-1, 1]))
            if 0 <= k < len(levels):
                chosen.add(k)
        else:
            chosen.add(int(rng.choice(len(levels), p=p / p.sum())))
    return [levels[k] for k in sorted(chosen)]
