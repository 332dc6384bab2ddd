"""The localiser's geometry, training targets and decoding (pure numpy, no torch).

Coordinates are pixels, ``x`` = column, ``y`` = row, ``(0, 0)`` the centre of the top-left pixel
(as in the vertebrae JSON). A film is letterboxed into the model input (``Letterbox``); the output
grid has one cell per ``stride`` input pixels, and a point at input pixel ``p`` sits at grid
coordinate ``(p + 0.5) / stride - 0.5`` (cell centres are integers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: the levels the synthetic films show, cranial to caudal (the localiser's classes)
LEVELS: tuple[str, ...] = ("T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")


def head_channels(n_levels: int) -> dict[str, int]:
    """Channel count of each output head of the localiser network, in output order."""
    return {
        "centre": 1,  # body-centre heatmap logit (class-agnostic)
        "centre_offset": 2,  # sub-cell (x, y) offset of the centre
        "level": n_levels,  # level logits (T11..S1), read at a centre
        "points": 12,  # six (x, y) points relative to the centre, in regression units
        "box": 4,  # centre -> left, top, right, bottom edge, in regression units
        "point_heat": 6,  # one heatmap logit per point type
        "point_offset": 12,  # sub-cell (x, y) offset of each point type
    }


@dataclass(frozen=True)
class Letterbox:
    """How a (rows, cols) film maps into an (in_h, in_w) input: one scale, top-left aligned."""

    rows: int
    cols: int
    in_h: int
    in_w: int

    @property
    def scale(self) -> float:
        return min(self.in_h / self.rows, self.in_w / self.cols)

    @property
    def resized(self) -> tuple[int, int]:
        """(h, w) of the resized film inside the input."""
        return max(1, round(self.rows * self.scale)), max(1, round(self.cols * self.scale))

    def _factors(self) -> np.ndarray:
        h, w = self.resized
        return np.array([w / self.cols, h / self.rows])

    def to_input(self, xy: np.ndarray) -> np.ndarray:
        """Film (..., 2) (x, y) -> input pixels."""
        return (np.asarray(xy, dtype=float) + 0.5) * self._factors() - 0.5

    def to_film(self, xy: np.ndarray) -> np.ndarray:
        """Input (..., 2) (x, y) -> film pixels."""
        return (np.asarray(xy, dtype=float) + 0.5) / self._factors() - 0.5


@dataclass
class Body:
    """One vertebral body: level index, box (x1, y1, x2, y2) and six (x, y) points."""

    level: int
    box: np.ndarray  # (4,)
    points: np.ndarray  # (6, 2)
    confidence: float = 1.0
    level_probs: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def centre(self) -> np.ndarray:
        return self.points.mean(axis=0)


def _gaussian(grid_h: int, grid_w: int, cx: float, cy: float, sigma: float) -> np.ndarray:
    ys = np.arange(grid_h)[:, None]
    xs = np.arange(grid_w)[None, :]
    return np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))


def encode_targets(
    bodies: list[Body], grid_hw: tuple[int, int], stride: int, reg_scale: float
) -> dict[str, np.ndarray]:
    """Training targets for one input image's bodies (input-pixel coordinates).

    Returns ``centre`` (1, h, w) and ``point_heat`` (6, h, w) gaussians, and per body (K rows):
    ``cell`` (K, 2) int (row, col) of its centre, ``centre_offset`` (K, 2), ``level`` (K,),
    ``points`` (K, 12), ``box`` (K, 4), ``point_cell`` (K, 6, 2) int, ``point_offset`` (K, 6, 2),
    ``valid`` (K,) bool (centre inside the grid).
    """
    gh, gw = grid_hw
    heat = np.zeros((1, gh, gw), np.float32)
    pheat = np.zeros((6, gh, gw), np.float32)
    k = len(bodies)
    out = {
        "cell": np.zeros((k, 2), np.int64),
        "centre_offset": np.zeros((k, 2), np.float32),
        "level": np.zeros(k, np.int64),
        "points": np.zeros((k, 12), np.float32),
        "box": np.zeros((k, 4), np.float32),
        "point_cell": np.zeros((k, 6, 2), np.int64),
        "point_offset": np.zeros((k, 6, 2), np.float32),
        "valid": np.zeros(k, bool),
    }
    for i, b in enumerate(bodies):
        c = b.centre
        g = (c + 0.5) / stride - 0.5
        col, row = int(np.floor(g[0] + 0.5)), int(np.floor(g[1] + 0.5))
        if not (0 <= col < gw and 0 <= row < gh):
            continue
        height = float(np.median(np.linalg.norm(b.points[3:] - b.points[:3], axis=1)))
        sigma = max(0.8, height / stride / 6.0)
        heat[0] = np.maximum(heat[0], _gaussian(gh, gw, g[0], g[1], sigma))
        pg = (b.points + 0.5) / stride - 0.5
        pcell = np.clip(np.floor(pg + 0.5).astype(np.int64), 0, [gw - 1, gh - 1])
        for j in range(6):
            pheat[j] = np.maximum(pheat[j], _gaussian(gh, gw, pg[j, 0], pg[j, 1], 0.8))
        out["cell"][i] = (row, col)
        out["centre_offset"][i] = g - (col, row)
        out["level"][i] = b.level
        out["points"][i] = ((b.points - c) / reg_scale).reshape(-1)
        x1, y1, x2, y2 = b.box
        out["box"][i] = np.array([c[0] - x1, c[1] - y1, x2 - c[0], y2 - c[1]]) / reg_scale
        out["point_cell"][i] = pcell[:, ::-1]  # (row, col)
        out["point_offset"][i] = pg - pcell
        out["valid"][i] = True
    heat[0][tuple(out["cell"][out["valid"]].T)] = 1.0
    for j in range(6):
        cells = out["point_cell"][out["valid"], j]
        pheat[j][tuple(cells.T)] = 1.0
    return {"centre": heat, "point_heat": pheat, **out}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _peaks(heat: np.ndarray, threshold: float, k: int) -> list[tuple[int, int, float]]:
    """(row, col, score) of 3x3 local maxima above ``threshold``, best first, at most ``k``."""
    pad = np.pad(heat, 1, constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(pad, (3, 3))
    is_max = heat >= windows.max(axis=(2, 3))
    rows, cols = np.nonzero(is_max & (heat > threshold))
    order = np.argsort(-heat[rows, cols])[:k]
    return [(int(rows[i]), int(cols[i]), float(heat[rows[i], cols[i]])) for i in order]


def assign_levels(log_probs: np.ndarray) -> np.ndarray:
    """Strictly increasing level indices for bodies ordered cranio-caudally, maximising the summed
    log-probability (n bodies, L levels, n <= L; dynamic programming): one body per level."""
    n, n_lv = log_probs.shape
    best = np.full((n, n_lv), -np.inf)
    back = np.zeros((n, n_lv), np.int64)
    best[0] = log_probs[0]
    for i in range(1, n):
        prefix = np.maximum.accumulate(best[i - 1])
        arg = np.array([int(np.argmax(best[i - 1][: j + 1])) for j in range(n_lv)])
        best[i, 1:] = prefix[:-1] + log_probs[i, 1:]
        back[i, 1:] = arg[:-1]
    out = np.zeros(n, np.int64)
    out[-1] = int(np.argmax(best[-1]))
    for i in range(n - 1, 0, -1):
        out[i - 1] = back[i, out[i]]
    return out


def _refine_point(pheat: np.ndarray, poff: np.ndarray, guess: np.ndarray, radius: float) -> tuple:
    """The point-type heatmap's maximum within ``radius`` cells of ``guess`` (grid x, y), refined
    by its offset; ``guess`` when the heatmap is flat there."""
    gh, gw = pheat.shape
    c0, r0 = round(guess[0]), round(guess[1])
    rad = int(np.ceil(radius))
    r_lo, r_hi = max(0, r0 - rad), min(gh, r0 + rad + 1)
    c_lo, c_hi = max(0, c0 - rad), min(gw, c0 + rad + 1)
    if r_lo >= r_hi or c_lo >= c_hi:
        return guess, 0.0
    win = pheat[r_lo:r_hi, c_lo:c_hi]
    r, c = np.unravel_index(int(np.argmax(win)), win.shape)
    score = float(win[r, c])
    if score < 0.1:
        return guess, score
    row, col = r_lo + r, c_lo + c
    return np.array([col + poff[0, row, col], row + poff[1, row, col]]), score


def decode(
    maps: np.ndarray,
    n_levels: int,
    stride: int,
    reg_scale: float,
    threshold: float = 0.3,
    max_bodies: int | None = None,
) -> list[Body]:
    """Bodies (input-pixel coordinates, cranial first) from one image's raw output (C, h, w)."""
    max_bodies = max_bodies or n_levels
    i = 0
    parts = {}
    for name, n in head_channels(n_levels).items():
        parts[name] = maps[i : i + n]
        i += n
    heat = _sigmoid(parts["centre"][0])
    pheat = _sigmoid(parts["point_heat"])
    poff = parts["point_offset"].reshape(6, 2, *heat.shape)
    found = _peaks(heat, threshold, max_bodies)
    bodies = []
    for row, col, score in found:
        g = np.array([col, row]) + parts["centre_offset"][:, row, col]
        centre = (g + 0.5) * stride - 0.5
        rel = parts["points"][:, row, col].reshape(6, 2) * reg_scale
        pts = centre + rel
        for j in range(6):
            guess = (pts[j] + 0.5) / stride - 0.5
            ref, _ = _refine_point(pheat[j], poff[j], guess, radius=1.5)
            pts[j] = (ref + 0.5) * stride - 0.5
        left, top, right, bottom = parts["box"][:, row, col] * reg_scale
        box = np.array([centre[0] - left, centre[1] - top, centre[0] + right, centre[1] + bottom])
        probs = _softmax(parts["level"][:, row, col])
        bodies.append(Body(int(np.argmax(probs)), box, pts, score, probs))
    bodies.sort(key=lambda b: b.centre[1])
    if bodies:
        levels = assign_levels(np.log(np.stack([b.level_probs for b in bodies]) + 1e-9))
        for b, lv in zip(bodies, levels, strict=True):
            b.level = int(lv)
    return bodies
