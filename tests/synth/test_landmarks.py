"""The six morphometry points lie on the endplates the renderer draws."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from vcfnet.synth.cohort import SynthConfig, plan_site, render_task
from vcfnet.synth.landmarks import POINT_NAMES, morphometry_points
from vcfnet.synth.sites import preset_sites


def _contrast(img: np.ndarray, pts: np.ndarray, inward: np.ndarray) -> np.ndarray:
    """Mean intensity 1-3 px into the body minus 2-4 px out of it (into the disc), per point."""

    def sample(offsets):
        vals = [
            ndimage.map_coordinates(
                img, [(pts + inward * d)[:, 1], (pts + inward * d)[:, 0]], order=1
            )
            for d in offsets
        ]
        return np.mean(vals, axis=0)

    return sample((1, 2, 3)) - sample((-2, -3, -4))


@pytest.fixture(scope="module")
def renders():
    """Three radiographs from each of the four sites' profiles, 512x640."""
    cfg = SynthConfig(seed=5, size="512x640")
    out = []
    for i, site in enumerate(preset_sites("paper", 0.02)[:4]):
        for task in plan_site(site, i, cfg)[:3]:
            out.append(render_task(task))
    return out


def test_points_sit_on_the_drawn_endplate_edges(renders):
    """Bright body inside, dark disc outside: at the points the step is strong and positive;
    the same points moved 30 % of the height into the body, or 15 % out into the disc, see none."""
    res: dict[str, list[float]] = {"true": [], "inside": [], "outside": []}
    for image, _, records in renders:
        img = ndimage.gaussian_filter(image, 0.7)
        for r in records:
            p = np.asarray(r["points"])
            up, lo = p[:3], p[3:]
            h = np.linalg.norm(lo - up, axis=1, keepdims=True)
            n = (lo - up) / h  # from the upper endplate towards the lower
            inward = np.vstack([n, -n])
            for name, k in (("true", 0.0), ("inside", 0.3), ("outside", -0.15)):
                pts = np.vstack([up + k * h * n, lo - k * h * n])
                res[name].extend(_contrast(img, pts, inward))
    true, inside, outside = (np.asarray(res[k]) for k in ("true", "inside", "outside"))
    assert len(true) > 12 * 6 * 6
    assert (true > 0).mean() > 0.97
    # display contrast: the second-generation films are windowed wide and low-contrast like real
    # ones (a real crop's intensity SD is ~0.08), so an endplate step of 0.05+ is a strong edge
    assert np.median(true) > 0.05
    assert np.median(true) > 5 * abs(np.median(inside))
    assert np.median(true) > 5 * abs(np.median(outside))


def test_boxes_hold_their_points(renders):
    """Every body from T11 down is listed, and its box holds its six points."""
    _, _, records = renders[0]
    assert [r["level"] for r in records][:3] == ["T11", "T12", "L1"]
    for _, _, records in renders:
        for r in records:
            pts = np.asarray(r["points"])
            x1, y1, x2, y2 = r["box"]
            assert pts.shape == (len(POINT_NAMES), 2)
            assert (pts[:, 0] >= x1).all() and (pts[:, 0] <= x2).all()
            assert (pts[:, 1] >= y1).all() and (pts[:, 1] <= y2).all()


def test_points_of_an_intact_body_measure_its_height():
    """An intact vertebra's anterior and posterior heights are its drawn height; the middle one
    is 5 % shorter (the drawn endplates are slightly concave)."""
    from vcfnet.synth.anatomy import Vertebra
    from vcfnet.synth.fractures import NORMAL, Deformity

    vert = Vertebra("L3", 100.0, 200.0, 0.3, 20.0, 15.0, Deformity.of(NORMAL))
    pts = morphometry_points(vert)
    heights = np.linalg.norm(pts[3:] - pts[:3], axis=1)
    np.testing.assert_allclose(heights, [30.0, 28.5, 30.0], rtol=0.01)
