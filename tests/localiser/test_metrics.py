"""evaluate-localiser's figures on a hand-built case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vcfnet.localiser.metrics import box_iou, match, score_film, summarise
from vcfnet.localiser.targets import Body


def _body(level: int, y0: float, height: float = 20.0, dx: float = 0.0) -> Body:
    pts = np.array(
        [[0, y0], [10, y0], [20, y0], [0, y0 + height], [10, y0 + height], [20, y0 + height]],
        float,
    )
    pts[:, 0] += dx
    return Body(level, np.array([dx - 1, y0 - 1, dx + 21, y0 + height + 1]), pts)


def test_box_iou():
    assert box_iou(np.array([0, 0, 10, 10]), np.array([5, 0, 15, 10])) == pytest.approx(1 / 3)
    assert box_iou(np.array([0, 0, 1, 1]), np.array([2, 2, 3, 3])) == 0.0


def test_hand_built_film():
    """Truth T12, L1, L2 (height 20 px); predicted: L1 moved 1 px right (level right), L2 called
    L3 (exact points), T12 missed, one false body far away."""
    truth = [_body(1, 0), _body(2, 30), _body(3, 60)]
    pred = [_body(2, 30, dx=1.0), _body(4, 60), _body(5, 200)]
    assert match(pred, truth) == [(0, 1), (1, 2)]
    s = score_film(pred, truth, spacing_mm=0.5)
    m = summarise([s])
    assert m.recall == pytest.approx(2 / 3)
    assert m.precision == pytest.approx(2 / 3)
    assert m.level_accuracy == pytest.approx(0.5)
    assert m.point_error_px == pytest.approx(0.5)  # six errors of 1 px, six of 0
    assert m.point_error_mm == pytest.approx(0.25)
    assert m.point_error_pct == pytest.approx(2.5)  # 0.5 px of a 20 px body


def test_genant_kappa_from_points():
    """A crushed L1 in the truth; the prediction misses the collapse: kappa < 1, exact 2/3."""
    truth = [_body(1, 0), _body(2, 30, height=12.0), _body(3, 60)]
    pred = [_body(1, 0), _body(2, 30), _body(3, 60)]
    m = summarise([score_film(pred, truth, None)])
    assert m.graded_bodies == 3
    assert m.genant_exact == pytest.approx(2 / 3)
    assert m.genant_kappa is not None and m.genant_kappa < 0.5
    assert m.point_error_mm is None
    perfect = summarise([score_film(truth, truth, None)])
    assert perfect.genant_kappa == 1.0 and perfect.recall == 1.0


def test_empty_prediction():
    m = summarise([score_film([], [_body(1, 0)], None)])
    assert m.recall == 0.0 and math.isnan(m.precision) and math.isnan(m.level_accuracy)
