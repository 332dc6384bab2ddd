"""Fracture model: Genant grade, deformity shape and the class-dependent radiographic signs.

Every sign appears with a class-dependent probability and strength (``SIGNS``), so the classes
overlap the way real films do. Geometry is in a vertebra's normalised frame: ``u`` runs from the
anterior wall (-1) to the posterior wall (+1), ``v`` from the upper (-1) to the lower endplate (+1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Genant semiquantitative grades: height-loss range [lo, hi) per grade.
GENANT_RANGES: dict[int, tuple[float, float]] = {1: (0.20, 0.25), 2: (0.25, 0.40), 3: (0.40, 0.80)}

SHAPES: tuple[str, ...] = ("wedge", "biconcave", "crush")

#: class -> probabilities of (grade 1, 2, 3)
GRADE_PROBS: dict[str, tuple[float, float, float]] = {
    "acute": (0.35, 0.45, 0.20),
    "chronic": (0.25, 0.45, 0.30),
    "pathologic": (0.25, 0.35, 0.40),
}
#: class -> probabilities of (wedge, biconcave, crush)
SHAPE_PROBS: dict[str, tuple[float, float, float]] = {
    "acute": (0.55, 0.25, 0.20),
    "chronic": (0.70, 0.20, 0.10),
    "pathologic": (0.40, 0.15, 0.45),
}
#: sign -> class -> (probability, strength low, strength high). Strengths are in sign units
#: (fractions of the body's half height/depth or relative densities).
SIGNS: dict[str, dict[str, tuple[float, float, float]]] = {
    "endplate_step": {
        "acute": (0.70, 0.05, 0.14),
        "chronic": (0.10, 0.02, 0.06),
        "pathologic": (0.25, 0.03, 0.10),
    },
    "anterior_buckle": {
        "acute": (0.50, 0.06, 0.16),
        "chronic": (0.08, 0.03, 0.08),
        "pathologic": (0.20, 0.04, 0.12),
    },
    "impaction_band": {
        "acute": (0.65, 0.10, 0.30),
        "chronic": (0.08, 0.05, 0.12),
        "pathologic": (0.20, 0.08, 0.20),
    },
    "sclerosis": {
        "acute": (0.12, 0.2, 0.5),
        "chronic": (0.70, 0.4, 1.2),
        "pathologic": (0.20, 0.2, 0.8),
    },
    "osteophyte": {
        "acute": (0.20, 0.08, 0.18),
        "chronic": (0.65, 0.12, 0.32),
        "pathologic": (0.12, 0.06, 0.15),
    },
    "disc_narrowing": {
        "acute": (0.15, 0.15, 0.35),
        "chronic": (0.55, 0.25, 0.55),
        "pathologic": (0.15, 0.1, 0.3),
    },
    "cortical_destruction": {
        "acute": (0.08, 0.2, 0.4),
        "chronic": (0.02, 0.1, 0.2),
        "pathologic": (0.60, 0.3, 0.8),
    },
    "posterior_bulge": {
        "acute": (0.15, 0.04, 0.10),
        "chronic": (0.04, 0.03, 0.06),
        "pathologic": (0.50, 0.08, 0.22),
    },
    "lytic": {
        "acute": (0.04, 0.15, 0.35),
        "chronic": (0.05, 0.1, 0.25),
        "pathologic": (0.70, 0.35, 0.85),
    },
    "blastic": {
        "acute": (0.0, 0.0, 0.0),
        "chronic": (0.03, 0.1, 0.2),
        "pathologic": (0.15, 0.2, 0.5),
    },
    "pedicle_involvement": {
        "acute": (0.02, 0.2, 0.4),
        "chronic": (0.0, 0.0, 0.0),
        "pathologic": (0.35, 0.4, 0.9),
    },
}
#: class -> range of contour sharpness (1 = angular, piecewise linear; 0 = smooth, remodelled)
ANGULARITY: dict[str, tuple[float, float]] = {
    "acute": (0.55, 1.0),
    "chronic": (0.0, 0.4),
    "pathologic": (0.3, 0.9),
}
#: Where heights are measured (anterior, middle, posterior), in u.
MEASURE_U: tuple[float, float, float] = (-0.95, 0.0, 0.95)


@dataclass(frozen=True)
class FractureSpec:
    """One vertebra's deformity and signs; ``label`` ``normal`` means no fracture (grade 0)."""

    label: str = "normal"
    grade: int = 0
    shape: str = "none"
    height_loss: float = 0.0  # target Genant height loss (fraction of the normal height)
    angularity: float = 0.0
    upper_share: float = 0.7  # share of the loss taken by the upper endplate
    step_u: float = 0.0  # where an endplate step sits (u)
    signs: dict[str, float] = field(default_factory=dict)  # sign -> strength (absent = 0)

    def sign(self, name: str) -> float:
        return float(self.signs.get(name, 0.0))

    @property
    def present_signs(self) -> tuple[str, ...]:
        return tuple(k for k, v in sorted(self.signs.items()) if v > 0)


NORMAL = FractureSpec()


def grade_of(height_loss: float) -> int:
    """Genant grade (0-3) of a measured height loss fraction."""
    for grade in (3, 2, 1):
        if height_loss >= GENANT_RANGES[grade][0]:
            return grade
    return 0


def sample_fracture(rng: np.random.Generator, label: str, strength: float = 1.0) -> FractureSpec:
    """Draw grade, shape and signs for a fracture of class ``label``; ``strength`` scales the signs."""
    grade = int(rng.choice([1, 2, 3], p=GRADE_PROBS[label]))
    lo, hi = GENANT_RANGES[grade]
    loss = float(rng.uniform(lo + 0.005, (hi if grade < 3 else 0.65) - 0.005))
    shape = str(rng.choice(SHAPES, p=SHAPE_PROBS[label]))
    signs = {}
    for name, per_class in SIGNS.items():
        p, s_lo, s_hi = per_class[label]
        if rng.random() < p:
            signs[name] = float(rng.uniform(s_lo, s_hi)) * strength
    if label == "pathologic" and grade == 3 and rng.random() < 0.5:
        shape, loss = "crush", float(rng.uniform(0.55, 0.75))  # vertebra plana
    return FractureSpec(
        label=label,
        grade=grade,
        shape=shape,
        height_loss=loss,
        angularity=float(rng.uniform(*ANGULARITY[label])),
        upper_share=float(rng.uniform(0.55, 0.9)),
        step_u=float(rng.uniform(-0.55, 0.25)),
        signs=signs,
    )


def sample_background(rng: np.random.Generator, age: float) -> FractureSpec:
    """A non-fractured vertebra, with the degenerative signs of age (osteophytes, sclerosis)."""
    signs = {}
    p_degen = float(np.clip((age - 45) / 60, 0.05, 0.5))
    if rng.random() < p_degen:
        signs["osteophyte"] = float(rng.uniform(0.05, 0.2))
    if rng.random() < p_degen * 0.6:
        signs["sclerosis"] = float(rng.uniform(0.1, 0.5))
    if rng.random() < p_degen * 0.5:
        signs["disc_narrowing"] = float(rng.uniform(0.1, 0.35))
    # mild, sub-threshold deformity (< 20%: not a fracture by Genant)
    loss = float(rng.uniform(0.0, 0.12))
    return FractureSpec(
        label="normal",
        grade=0,
        shape="wedge" if loss > 0 else "none",
        height_loss=loss,
        angularity=0.0,
        signs=signs,
    )


def _depression(spec: FractureSpec, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unscaled inward displacement of the upper and lower endplates at ``u`` (any shape)."""
    a = spec.angularity
    if spec.shape == "wedge":
        lin = np.clip((0.7 - u) / 1.7, 0.0, 1.0)
        smooth = np.clip((1.0 - u) / 2.0, 0.0, 1.0) ** 1.6
        w = a * lin + (1 - a) * smooth
        top, bot = spec.upper_share * w, (1 - spec.upper_share) * w
    elif spec.shape == "biconcave":
        uc = np.clip(u, -1.0, 1.0)
        w = a * (1 - np.abs(uc)) + (1 - a) * (1 - uc**2) ** 1.5
        w = 0.4 + 0.6 * w
        top, bot = 0.55 * w, 0.45 * w
    elif spec.shape == "crush":
        w = 0.85 + 0.15 * np.clip((1.0 - u) / 2.0, 0.0, 1.0)
        top, bot = 0.5 * w, 0.5 * w
    else:
        return np.zeros_like(u), np.zeros_like(u)
    step = spec.sign("endplate_step")
    if step > 0:
        top = top + step * (u < spec.step_u)
    return top, bot


@dataclass(frozen=True)
class Deformity:
    """Endplate displacement of one vertebra, scaled so the measured height loss equals the target."""

    spec: FractureSpec
    scale: float

    @classmethod
    def of(cls, spec: FractureSpec) -> Deformity:
        top, bot = _depression(spec, _measure_columns())
        peak = float(np.max(top + bot))
        return cls(spec, spec.height_loss / peak if peak > 0 else 0.0)

    def endplates(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Upper and lower endplate positions (v) at ``u``; -1 and +1 for an intact vertebra."""
        top, bot = _depression(self.spec, u)
        return -1.0 + 2.0 * self.scale * top, 1.0 - 2.0 * self.scale * bot

    def heights(self, u: np.ndarray) -> np.ndarray:
        """Body height at ``u`` as a fraction of the normal height."""
        top, bot = self.endplates(np.asarray(u, dtype=float))
        return (bot - top) / 2.0

    def measured_height_loss(self, n: int = 41) -> float:
        """Genant height loss: 1 - min(anterior, middle, posterior height) / normal height.

        Each height is the minimum over a small window of ``n`` columns around MEASURE_U, as a
        reader's calipers would sit on the lowest point.
        """
        return float(np.max(1.0 - self.heights(_measure_columns(n))))


def _measure_columns(n: int = 41) -> np.ndarray:
    """The columns (u) where a reader measures heights: small windows around MEASURE_U."""
    return np.concatenate([np.linspace(u0 - 0.04, u0 + 0.04, n) for u0 in MEASURE_U])
