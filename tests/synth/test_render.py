"""Radiograph formation: the detector's quantum noise."""

from __future__ import annotations

import numpy as np

from vcfnet.synth.render import _grain, noise_spread_px
from vcfnet.synth.sites import preset_sites


def test_noise_is_white_on_coarse_pixels_and_spread_on_fine_ones():
    profile = preset_sites("paper", 0.02)[0].profile
    coarse, fine = noise_spread_px(profile, 1280), noise_spread_px(profile, 2560)
    assert coarse < 0.4  # ~0.3 mm pixels: the phosphor spreads less than a pixel
    assert np.isclose(fine, 2 * coarse)  # fixed in mm: twice the pixels per mm, twice the sigma
    rng = np.random.default_rng(0)
    white = _grain(rng, (256, 256), coarse)
    spread = _grain(rng, (256, 256), fine)
    # spreading averages neighbouring quanta: less variance per pixel, neighbours correlated
    assert 0.9 < white.std() < 1.1
    assert spread.std() < 0.6
    assert np.corrcoef(spread[:, :-1].ravel(), spread[:, 1:].ravel())[0, 1] > 0.3
    assert abs(np.corrcoef(white[:, :-1].ravel(), white[:, 1:].ravel())[0, 1]) < 0.1
