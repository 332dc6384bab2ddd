"""The localiser's geometry, targets and decoding: encode -> ideal maps -> decode is the identity."""

from __future__ import annotations

import numpy as np

from vcfnet.localiser.targets import (
    LEVELS,
    Body,
    Letterbox,
    assign_levels,
    decode,
    encode_targets,
    head_channels,
)

STRIDE, SCALE, GRID = 4, 16.0, (40, 32)


def _bodies() -> list[Body]:
    out = []
    for i, lv in enumerate(range(1, 5)):  # T12..L3
        y0 = 20 + 30 * i
        pts = np.array(
            [[40, y0], [52, y0 + 1], [64, y0 + 2], [41, y0 + 20], [53, y0 + 21], [65, y0 + 22]],
            float,
        )
        pts += np.array([0.3, 0.7])  # off the grid
        box = np.array([38, y0 - 1, 67, y0 + 23], float)
        out.append(Body(lv, box, pts))
    return out


def _ideal_maps(bodies: list[Body]) -> np.ndarray:
    """Raw maps a perfect network would output for ``bodies`` (logits, offsets)."""
    t = encode_targets(bodies, GRID, STRIDE, SCALE)
    ch = head_channels(len(LEVELS))
    maps = {k: np.zeros((n, *GRID), np.float32) for k, n in ch.items()}
    logit = lambda p: np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))  # noqa: E731
    maps["centre"] = logit(t["centre"] * 0.999)
    maps["point_heat"] = logit(t["point_heat"] * 0.999)
    maps["level"][:] = -5
    for k in np.flatnonzero(t["valid"]):
        r, c = t["cell"][k]
        maps["centre_offset"][:, r, c] = t["centre_offset"][k]
        maps["level"][t["level"][k], r, c] = 5
        maps["points"][:, r, c] = t["points"][k]
        maps["box"][:, r, c] = t["box"][k]
        for j in range(6):
            pr, pc = t["point_cell"][k, j]
            maps["point_offset"][2 * j : 2 * j + 2, pr, pc] = t["point_offset"][k, j]
    return np.concatenate([maps[k] for k in ch])


def test_decode_inverts_encode():
    bodies = _bodies()
    got = decode(_ideal_maps(bodies), len(LEVELS), STRIDE, SCALE)
    assert [b.level for b in got] == [b.level for b in bodies]
    for g, b in zip(got, bodies, strict=True):
        np.testing.assert_allclose(g.points, b.points, atol=1e-3)
        np.testing.assert_allclose(g.box, b.box, atol=1e-3)


def test_assign_levels_is_increasing_and_fixes_a_confused_body():
    probs = np.full((3, 8), 0.01)
    probs[0, 2], probs[1, 2], probs[2, 4] = 0.9, 0.5, 0.9  # body 1 also says L1
    probs[1, 3] = 0.4
    assert assign_levels(np.log(probs)).tolist() == [2, 3, 4]


def test_letterbox_round_trip():
    lb = Letterbox(1280, 1000, 320, 256)
    xy = np.array([[0.0, 0.0], [999.0, 1279.0], [500.5, 640.25]])
    np.testing.assert_allclose(lb.to_film(lb.to_input(xy)), xy)
    assert lb.resized == (320, 250)
