"""Preset ``paper`` reproduces the paper's Table 1; ``--scale`` shrinks counts but keeps every class."""

from __future__ import annotations

import pytest

from vcfnet.errors import ConfigError
from vcfnet.synth.sites import preset_sites

# Table 1 of Xu et al. 2023: vertebrae (acute, chronic, pathologic) and patients per cohort
TABLE_1 = {
    "SITE1": ((802 + 201, 688 + 173, 133 + 34), 1168 + 292),
    "GZFPH": ((62, 40, 9), 97),
    "WHTH": ((113, 95, 9), 147),
    "HB672H": ((94, 57, 25), 143),
    "PROSPECTIVE": ((38, 31, 5), 57),
}


def test_paper_preset_matches_table_1():
    sites = {s.name: s for s in preset_sites("paper")}
    assert {name: (s.counts, s.patients) for name, s in sites.items()} == TABLE_1
    assert sites["SITE1"].n_vertebrae == 2031
    assert [sites[n].n_vertebrae for n in ("GZFPH", "WHTH", "HB672H", "PROSPECTIVE")] == [
        111,
        217,
        176,
        74,
    ]
    assert sites["SITE1"].split == "8:2" and sites["GZFPH"].split == "none"


def test_external_sites_image_differently():
    sites = {s.name: s.profile for s in preset_sites("paper")}
    assert len({p.photometric for p in sites.values()}) == 2
    assert {"explicit", "rle", "jpeg2000"} <= {p.transfer_syntax for p in sites.values()}
    assert (
        len({(p.blur_px, p.photons, p.bits_stored) for p in sites.values()}) == 4
    )  # prospective = site 1
    assert sites["PROSPECTIVE"] == sites["SITE1"]


@pytest.mark.parametrize("scale", [0.001, 0.05, 0.3])
def test_scale_keeps_every_class_and_enough_vertebrae(scale):
    for site in preset_sites("paper", scale):
        assert all(c >= 1 for c in site.counts)
        assert 3 <= site.patients <= site.n_vertebrae


def test_scale_multiplies_counts():
    site1 = preset_sites("paper", 0.5)[0]
    assert site1.counts == (502, 430, 84) and site1.patients == 730


def test_bad_preset_and_scale():
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_sites("nope")
    with pytest.raises(ConfigError, match="scale"):
        preset_sites("paper", 0)
