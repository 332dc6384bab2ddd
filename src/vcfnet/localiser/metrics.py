"""How well a localiser did on annotated films (pure: bodies in, numbers out).

Per film, predicted bodies are matched to annotated ones greedily by IoU (>= 0.5, best first).
Recall = matched / annotated, precision = matched / predicted; level accuracy, point errors and
Genant grades over the matched pairs. Point error is the distance between a predicted point and
the annotated one, in pixels, millimetres (with a pixel spacing) and % of the annotated body's
mean height ((Ha + Hm + Hp) / 3). Grades are computed by ``vcfnet.morphometry`` from the predicted
and from the annotated points of each film (S1 is not graded); agreement is Cohen's weighted kappa
(linear weights, scikit-learn).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import cohen_kappa_score

from vcfnet.localiser.targets import LEVELS, Body
from vcfnet.morphometry import measure_spine

IOU_THRESHOLD = 0.5


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def match(pred: Sequence[Body], truth: Sequence[Body], threshold: float = IOU_THRESHOLD):
    """[(pred index, truth index)] matched greedily by IoU >= ``threshold``."""
    pairs = [(box_iou(p.box, t.box), i, j) for i, p in enumerate(pred) for j, t in enumerate(truth)]
    used_p, used_t, out = set(), set(), []
    for iou, i, j in sorted(pairs, reverse=True):
        if iou < threshold or i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        out.append((i, j))
    return sorted(out, key=lambda ij: ij[1])


def _grades(bodies: Sequence[Body]) -> dict[str, int]:
    """level -> morphometric Genant grade (graded levels only)."""
    verts = [(LEVELS[b.level], b.points) for b in bodies]
    if len({lv for lv, _ in verts}) != len(verts):
        return {}
    try:
        return {m.level: m.grade for m in measure_spine(verts) if m.grade is not None}
    except ValueError:
        return {}


@dataclass
class FilmScore:
    """The raw tallies of one film (summed into ``LocaliserMetrics``)."""

    n_truth: int
    n_pred: int
    n_matched: int
    level_correct: int
    errors_px: list[float]
    errors_mm: list[float]
    errors_pct: list[float]
    grades_true: list[int]
    grades_pred: list[int]


def score_film(pred: Sequence[Body], truth: Sequence[Body], spacing_mm: float | None) -> FilmScore:
    """Tallies of one film; ``spacing_mm`` (pixel spacing) or None for no millimetres."""
    pairs = match(pred, truth)
    err_px, err_mm, err_pct, gt, gp = [], [], [], [], []
    g_true, g_pred = _grades(truth), _grades(pred)
    correct = 0
    for i, j in pairs:
        p, t = pred[i], truth[j]
        correct += int(p.level == t.level)
        d = np.linalg.norm(p.points - t.points, axis=1)
        height = float(np.mean(np.linalg.norm(t.points[3:] - t.points[:3], axis=1)))
        err_px += d.tolist()
        err_pct += (100 * d / height).tolist()
        if spacing_mm:
            err_mm += (d * spacing_mm).tolist()
        lt, lp = LEVELS[t.level], LEVELS[p.level]
        if lt in g_true and lp in g_pred:
            gt.append(g_true[lt])
            gp.append(g_pred[lp])
    return FilmScore(len(truth), len(pred), len(pairs), correct, err_px, err_mm, err_pct, gt, gp)


@dataclass
class LocaliserMetrics:
    """The localiser's figures over a set of films (one site, or all)."""

    films: int
    bodies: int
    recall: float
    precision: float
    level_accuracy: float
    point_error_px: float  # median
    point_error_mm: float | None  # median
    point_error_pct: float  # median, % of the body's mean height
    point_error_pct_p90: float
    genant_kappa: float | None  # linear-weighted (the headline figure: docs/localisation.md)
    genant_exact: float | None
    graded_bodies: int
    genant_kappa_quadratic: float | None = None  # beside the linear one (older files lack it)

    def to_dict(self) -> dict:
        return asdict(self)


def _kappa(gt: list[int], gp: list[int], weights: str) -> float | None:
    """Weighted Cohen's kappa of the Genant grades 0-3 (None without graded bodies)."""
    if gt and len(set(gt) | set(gp)) > 1:
        return float(cohen_kappa_score(gt, gp, weights=weights, labels=[0, 1, 2, 3]))
    if gt:
        return 1.0 if gt == gp else 0.0
    return None


def summarise(scores: Sequence[FilmScore]) -> LocaliserMetrics:
    """Pool the films' tallies."""
    n_t = sum(s.n_truth for s in scores)
    n_p = sum(s.n_pred for s in scores)
    n_m = sum(s.n_matched for s in scores)
    px = [e for s in scores for e in s.errors_px]
    mm = [e for s in scores for e in s.errors_mm]
    pct = [e for s in scores for e in s.errors_pct]
    gt = [g for s in scores for g in s.grades_true]
    gp = [g for s in scores for g in s.grades_pred]
    kappa, kappa2 = _kappa(gt, gp, "linear"), _kappa(gt, gp, "quadratic")
    nan = float("nan")
    return LocaliserMetrics(
        films=len(scores),
        bodies=n_t,
        recall=n_m / n_t if n_t else nan,
        precision=n_m / n_p if n_p else nan,
        level_accuracy=sum(s.level_correct for s in scores) / n_m if n_m else nan,
        point_error_px=float(np.median(px)) if px else nan,
        point_error_mm=float(np.median(mm)) if mm else None,
        point_error_pct=float(np.median(pct)) if pct else nan,
        point_error_pct_p90=float(np.percentile(pct, 90)) if pct else nan,
        genant_kappa=kappa,
        genant_kappa_quadratic=kappa2,
        genant_exact=float(np.mean(np.equal(gt, gp))) if gt else None,
        graded_bodies=len(gt),
    )
