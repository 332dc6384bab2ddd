"""A stand-in vertebra localiser for the platform's Suggest boxes tests: fixed bodies on a
200x240 film (T12, a crushed L1 graded >= 1, L2), so the tests do not depend on training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vcfnet.localiser.targets import LEVELS, Body


def _body(level: str, y0: float, height: float) -> Body:
    pts = np.array(
        [[60, y0], [100, y0], [140, y0], [60, y0 + height], [100, y0 + height], [140, y0 + height]],
        float,
    )
    return Body(LEVELS.index(level), np.array([55.0, y0 - 3, 145.0, y0 + height + 3]), pts, 0.9)


class FakeLocaliser:
    levels = LEVELS

    def predict_pixels(self, pixels: np.ndarray) -> list[Body]:
        return [_body("T12", 20, 50), _body("L1", 90, 30), _body("L2", 140, 52)]


def untrained_localiser(folder: Path) -> Path:
    """A real (random-weight, width 8) localiser checkpoint: RUN_DIR."""
    from vcfnet.localiser.train import LocaliserConfig, _save
    from vcfnet.models.localiser import build_localiser

    cfg = LocaliserConfig(data=[folder], width=8, input_size="128x160")
    spec = cfg.spec()
    _save(folder / "checkpoints" / "best.pt", build_localiser(8, 8).eval(), cfg, spec, {})
    return folder
