"""Vertebral morphometry from six points per vertebral body: heights, ratios, Genant grade and shape.

Six-point quantitative morphometry (QM) marks each body's upper and lower endplate at the anterior
corner, the middle and the posterior corner (``POINT_NAMES``). From them:

* heights ``Ha``, ``Hm``, ``Hp``: distances between the paired upper and lower points (mm when a
  pixel spacing is given, else pixels);
* ratios: ``Ha/Hp`` (wedge), ``Hm/Hp`` (biconcave) and ``Hp/Href`` (crush), where ``Href`` is the mean
  posterior height of the neighbouring bodies (the one above and the one below, where measured);
  each height against ``Href`` too;
* the Genant semi-quantitative grade of the height loss: the shortest height against the height
  the body should have, ``1 - min(Ha/ra, Hm/rm, Hp) / max(Hp, Href)``, graded 0 (< 20 %),
  1 mild (20-25 %), 2 moderate (25-40 %), 3 severe (>= 40 %) (Genant et al., J Bone Miner Res
  1993;8:1137-48); ``ra``/``rm`` are the normal ``Ha/Hp`` and ``Hm/Hp`` of the population
  (``Reference``, 1.0 by default: the raw ratios);
* the shape: the most reduced of the three ratios (wedge, biconcave, crush; Eastell et al.,
  J Bone Miner Res 1991;6:207-15), ``none`` for grade 0.

Pure numpy; no torch, no I/O beyond ``read_points_json``. See docs/morphometry.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vcfnet.errors import InputError

POINT_NAMES: tuple[str, ...] = (
    "upper_anterior",
    "upper_middle",
    "upper_posterior",
    "lower_anterior",
    "lower_middle",
    "lower_posterior",
)
#: Genant grade -> lowest height loss of that grade
GENANT_THRESHOLDS: dict[int, float] = {1: 0.20, 2: 0.25, 3: 0.40}
SHAPES: tuple[str, ...] = ("wedge", "biconcave", "crush")
#: the spine's levels, cranial to caudal: neighbours are consecutive levels that were measured
SPINE_ORDER: tuple[str, ...] = (
    *(f"C{i}" for i in range(1, 8)),
    *(f"T{i}" for i in range(1, 13)),
    *(f"L{i}" for i in range(1, 6)),
    "S1",
)
#: measured but neither graded nor used as a neighbour (the sacrum is not a vertebral body's shape)
NOT_GRADED: frozenset[str] = frozenset({"S1"})


@dataclass(frozen=True)
class Reference:
    """Normal shape ratios of an intact body (anterior and middle height over posterior height)."""

    ha_hp: float = 1.0
    hm_hp: float = 1.0


@dataclass(frozen=True)
class Morphometry:
    """One body's measurements; heights in ``unit`` (``mm`` or ``px``)."""

    level: str
    ha: float
    hm: float
    hp: float
    unit: str
    wedge: float  # Ha / Hp
    biconcave: float  # Hm / Hp
    crush: float | None  # Hp / Href (None without a measured neighbour)
    href: float | None  # mean posterior height of the neighbours
    ha_ref: float | None  # Ha / Href
    hm_ref: float | None  # Hm / Href
    height_loss: float | None  # None when not graded (S1)
    grade: int | None
    shape: str  # wedge, biconcave, crush; none for grade 0 or not graded

    def to_dict(self) -> dict:
        return asdict(self)


def genant_grade(height_loss: float) -> int:
    """Genant semi-quantitative grade (0-3) of a height-loss fraction."""
    for grade in (3, 2, 1):
        if height_loss >= GENANT_THRESHOLDS[grade]:
            return grade
    return 0


def heights(
    points: np.ndarray | Sequence[Sequence[float]],
    pixel_spacing: tuple[float, float] | None = None,
) -> tuple[float, float, float]:
    """(Ha, Hm, Hp) of six (x, y) points in ``POINT_NAMES`` order; mm when ``pixel_spacing``
    (row spacing, column spacing in mm, as DICOM PixelSpacing) is given, else pixels."""
    p = np.asarray(points, dtype=float)
    if p.shape != (6, 2) or not np.isfinite(p).all():
        raise InputError(f"six (x, y) morphometry points are needed, got shape {p.shape}")
    d = p[3:] - p[:3]
    if pixel_spacing is not None:
        d = d * np.array([float(pixel_spacing[1]), float(pixel_spacing[0])])
    ha, hm, hp = (float(h) for h in np.hypot(d[:, 0], d[:, 1]))
    return ha, hm, hp


def _neighbours(levels: list[str], hp: list[float]) -> list[list[int]]:
    """Indices of each body's reference neighbours: the nearest measured level above and below,
    skipping (once, per side) a neighbour that is itself collapsed (posterior height below
    ``1 - 20 %`` of the film's median), as QM takes its reference from intact neighbours."""
    known = all(lv in SPINE_ORDER for lv in levels)
    graded = [h for lv, h in zip(levels, hp, strict=True) if lv not in NOT_GRADED]
    floor = (1.0 - GENANT_THRESHOLDS[1]) * float(np.median(graded)) if graded else 0.0

    def usable(i: int, j: int, step: int) -> bool:
        if not 0 <= j < len(levels) or levels[j] in NOT_GRADED:
            return False
        return not known or abs(SPINE_ORDER.index(levels[j]) - SPINE_ORDER.index(levels[i])) == step

    out = []
    for i in range(len(levels)):
        mine = []
        for side in (-1, 1):
            near, far = i + side, i + 2 * side
            if usable(i, near, 1) and hp[near] >= floor:
                mine.append(near)
            elif usable(i, far, 2) and hp[far] >= floor:
                mine.append(far)
            elif usable(i, near, 1):
                mine.append(near)
        out.append(mine)
    return out


def measure_spine(
    vertebrae: Sequence[tuple[str, np.ndarray | Sequence[Sequence[float]]]],
    pixel_spacing: tuple[float, float] | None = None,
    reference: Reference = Reference(),
) -> list[Morphometry]:
    """Morphometry of each (level, six points) of one radiograph, in the order given."""
    levels = [str(lv) for lv, _ in vertebrae]
    if len(set(levels)) != len(levels):
        raise InputError(f"each level once per radiograph, got {levels}")
    hs = [heights(p, pixel_spacing) for _, p in vertebrae]
    unit = "mm" if pixel_spacing is not None else "px"
    out = []
    for i, nbrs in enumerate(_neighbours(levels, [h[2] for h in hs])):
        ha, hm, hp = hs[i]
        if min(hs[i]) <= 0 or hp <= 0:
            raise InputError(f"{levels[i]}: a height is zero (coincident points)")
        href = float(np.mean([hs[j][2] for j in nbrs])) if nbrs else None
        wedge, bicon = ha / hp, hm / hp
        crush = hp / href if href else None
        loss, grade, shape = None, None, "none"
        if levels[i] not in NOT_GRADED:
            expected = max(hp, href) if href else hp
            shortest = min(ha / reference.ha_hp, hm / reference.hm_hp, hp)
            loss = max(0.0, 1.0 - shortest / expected)
            grade = genant_grade(loss)
            if grade > 0:
                ratios = [wedge / reference.ha_hp, bicon / reference.hm_hp]
                ratios.append(crush if crush is not None else np.inf)
                shape = SHAPES[int(np.argmin(ratios))]
        out.append(
            Morphometry(
                level=levels[i],
                ha=ha,
                hm=hm,
                hp=hp,
                unit=unit,
                wedge=wedge,
                biconcave=bicon,
                crush=crush,
                href=href,
                ha_ref=ha / href if href else None,
                hm_ref=hm / href if href else None,
                height_loss=loss,
                grade=grade,
                shape=shape,
            )
        )
    return out


def read_points_json(path: Path | str) -> tuple[list[tuple[str, np.ndarray]], tuple | None]:
    """(level, points) per body and the pixel spacing (or None) of a ``vertebrae`` JSON document
    (the format ``vcfnet synth`` writes, docs/morphometry.md); InputError naming the file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        verts = [(str(v["level"]), np.asarray(v["points"], dtype=float)) for v in doc["vertebrae"]]
        spacing = doc.get("pixel_spacing_mm")
        spacing = (float(spacing[0]), float(spacing[1])) if spacing else None
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise InputError(f"{path}: not a vertebrae points JSON document ({exc!r})") from exc
    return verts, spacing
