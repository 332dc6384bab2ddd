"""Fracture model: measured Genant height loss, class-dependent signs and shapes."""

from __future__ import annotations

import numpy as np
import pytest

from vcfnet.synth.fractures import (
    GENANT_RANGES,
    NORMAL,
    SIGNS,
    Deformity,
    grade_of,
    sample_background,
    sample_fracture,
)


def _sample(label: str, n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [sample_fracture(rng, label) for _ in range(n)]


@pytest.mark.parametrize("label", ["acute", "chronic", "pathologic"])
def test_measured_height_loss_matches_genant_grade(label):
    for spec in _sample(label, 300):
        loss = Deformity.of(spec).measured_height_loss()
        lo, hi = GENANT_RANGES[spec.grade]
        assert lo <= loss < hi, (spec.grade, spec.shape, loss)
        assert grade_of(loss) == spec.grade


def test_genant_grades():
    assert [grade_of(x) for x in (0.1, 0.2, 0.24, 0.25, 0.39, 0.4, 0.7)] == [0, 1, 1, 2, 2, 3, 3]


def test_background_vertebrae_are_not_fractures():
    rng = np.random.default_rng(1)
    for _ in range(100):
        spec = sample_background(rng, age=80)
        assert spec.label == "normal" and grade_of(Deformity.of(spec).measured_height_loss()) == 0


def test_intact_vertebra_has_flat_endplates():
    top, bot = Deformity.of(NORMAL).endplates(np.linspace(-1, 1, 5))
    assert np.allclose(top, -1) and np.allclose(bot, 1)
    assert Deformity.of(NORMAL).measured_height_loss() == 0


def _rate(specs, sign):
    return np.mean([s.sign(sign) > 0 for s in specs])


def test_signs_are_class_dependent_and_overlap():
    by_class = {c: _sample(c, 600, seed=2) for c in ("acute", "chronic", "pathologic")}
    # characteristic signs are most frequent in their own class ...
    assert _rate(by_class["acute"], "endplate_step") > 2 * _rate(
        by_class["chronic"], "endplate_step"
    )
    assert _rate(by_class["acute"], "impaction_band") > 2 * _rate(
        by_class["chronic"], "impaction_band"
    )
    assert _rate(by_class["chronic"], "osteophyte") > 2 * _rate(by_class["acute"], "osteophyte")
    assert _rate(by_class["chronic"], "sclerosis") > 2 * _rate(by_class["pathologic"], "sclerosis")
    assert _rate(by_class["pathologic"], "lytic") > 4 * _rate(by_class["acute"], "lytic")
    assert _rate(by_class["pathologic"], "posterior_bulge") > 2 * _rate(
        by_class["acute"], "posterior_bulge"
    )
    # ... but not exclusive: some cases carry another class's sign (genuinely ambiguous films)
    assert 0 < _rate(by_class["chronic"], "endplate_step") < 0.3
    assert 0 < _rate(by_class["acute"], "lytic") < 0.3
    # and each rate follows its table within sampling error
    for label, specs in by_class.items():
        for sign, per_class in SIGNS.items():
            assert abs(_rate(specs, sign) - per_class[label][0]) < 0.07, (label, sign)
    # acute contours are angular, chronic smooth (remodelled); pathologic collapses more
    assert min(s.angularity for s in by_class["acute"]) > max(
        s.angularity for s in by_class["chronic"]
    )
    mean_grade = {c: np.mean([s.grade for s in specs]) for c, specs in by_class.items()}
    assert mean_grade["pathologic"] > mean_grade["acute"]


def test_shapes_follow_the_class():
    shapes = {
        c: [s.shape for s in _sample(c, 500, seed=3)] for c in ("acute", "chronic", "pathologic")
    }
    assert shapes["chronic"].count("wedge") > shapes["pathologic"].count("wedge")
    assert shapes["pathologic"].count("crush") > 2 * shapes["chronic"].count("crush")
