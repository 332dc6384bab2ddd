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


def test_bowel_gas_loops_only_remove_attenuation_and_reach_centimetres_of_gas(monkeypatch):
    from dataclasses import replace

    from vcfnet.synth import render
    from vcfnet.synth.anatomy import build_spine

    shape = (1280, 1024)
    spine = build_spine(np.random.default_rng(0), shape, 400.0 / 1280, {})

    def tissue(appearance):
        monkeypatch.setattr(render, "APPEARANCE", appearance)
        return render.soft_tissue(np.random.default_rng(1), shape, spine)

    gas = tissue(render.APPEARANCE) - tissue(replace(render.APPEARANCE, gas_loops=(0.0, 0.0)))
    assert gas.max() < 1e-5  # gas only lowers the log-attenuation
    # colonic gas is centimetres deep (a log deficit of 0.2 per cm of soft tissue replaced): the
    # deepest pocket of this film is over 2 cm (the second generation's loops reached ~1.5 cm)
    assert gas.min() < -0.4
