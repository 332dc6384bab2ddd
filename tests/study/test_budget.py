"""The demo's time budget: ladders, the rung choice, pins, and what is recorded."""

from __future__ import annotations

import json

import pytest

from vcfnet.config import build_config
from vcfnet.errors import ConfigError
from vcfnet.study.budget import (
    BudgetChoice,
    Speed,
    Workload,
    choose_rung,
    estimate_seconds,
    pick_rung,
    read_choice,
)
from vcfnet.study.config import DEFAULT_LADDER, QUICK_LADDER, DemoConfig, Rung

WORK = Workload(train=141, val=19, test=101)  # the quick demo's SITE1 and test sets, seed 0


def test_top_rungs_are_the_full_settings():
    assert QUICK_LADDER[0] == Rung(128, 12) and DEFAULT_LADDER[0] == Rung(224, 20)
    for ladder in (QUICK_LADDER, DEFAULT_LADDER):
        costs = [r.epochs * r.image_size**2 for r in ladder]
        assert costs == sorted(costs, reverse=True)  # each rung cheaper than the one above
    import dataclasses

    help_text = next(f for f in dataclasses.fields(DemoConfig) if f.name == "rung").metadata["help"]
    for ladder in (DEFAULT_LADDER, QUICK_LADDER):
        assert " ".join(f"{r.image_size}/{r.epochs}" for r in ladder) in help_text


def test_resolved_sizes_follow_the_pin_the_options_or_the_budget():
    quick = DemoConfig(quick=True).resolved()
    assert quick.needs_rung and quick.budget_s == 180 and quick.epochs is None
    assert DemoConfig().resolved().budget_s == 900
    pinned = DemoConfig(quick=True, rung=2).resolved()
    assert (pinned.epochs, pinned.image_size, pinned.needs_rung) == (8, 96, False)
    no_budget = DemoConfig(quick=True, budget_s=0).resolved()
    assert (no_budget.epochs, no_budget.image_size) == (12, 128)
    one_given = DemoConfig(epochs=3).resolved()
    assert (one_given.epochs, one_given.image_size) == (3, 224)
    assert DemoConfig(quick=True).resolved().with_rung(1).image_size == 112
    with pytest.raises(ConfigError, match="rung must be"):
        build_config(DemoConfig, {"quick": True, "rung": 5})


def test_estimate_scales_with_epochs_and_pixels():
    speed = Speed(128, 12.0, 64, 48.0)  # cost proportional to pixels
    assert speed.exponent == pytest.approx(2.0) and speed.at(64) == pytest.approx(48.0)
    assert Speed(128, 12.0, 64, 6.0).exponent == 1.0  # noise: 64 px measured slower than 128 px
    assert Speed(128, 12.0, 64, 200.0).exponent == 2.0  # noise: faster than the pixels allow
    top = estimate_seconds(Rung(128, 12), WORK, speed)
    assert top == pytest.approx((12 * (141 + 19 / 3) + 101 / 3) / 12.0)
    assert estimate_seconds(Rung(64, 12), WORK, speed) == pytest.approx(top / 4)


def test_the_localiser_step_is_reserved_at_the_measured_top_speed():
    """Its fixed cost (training images at the top size) is paid at the top-size speed, whatever
    the rung: on a slow CPU the reserve grows and a lower rung is chosen."""
    from dataclasses import replace

    from vcfnet.study.localiser import cost_in_training_images

    speed = Speed(128, 12.0, 64, 48.0)
    work = replace(WORK, fixed=cost_in_training_images(quick=True))
    for rung in (Rung(128, 12), Rung(64, 5)):
        extra = estimate_seconds(rung, work, speed) - estimate_seconds(rung, WORK, speed)
        assert extra == pytest.approx(cost_in_training_images(quick=True) / 12.0)
    slow = Speed(128, 3.5, 64, 12.0)
    assert pick_rung(QUICK_LADDER, work, slow, 120) > pick_rung(QUICK_LADDER, WORK, slow, 120)


def test_pick_rung_steps_down_until_it_fits():
    fast, slow = Speed(128, 60.0, 64, 200.0), Speed(128, 3.5, 64, 12.0)
    assert pick_rung(QUICK_LADDER, WORK, fast, 120) == 0  # today's settings on a fast CPU
    index = pick_rung(QUICK_LADDER, WORK, slow, 120)
    assert 0 < index < len(QUICK_LADDER) - 1
    assert estimate_seconds(QUICK_LADDER[index], WORK, slow) <= 120
    assert estimate_seconds(QUICK_LADDER[index - 1], WORK, slow) > 120
    assert pick_rung(QUICK_LADDER, WORK, slow, 1) == len(QUICK_LADDER) - 1  # none fits: lowest


def test_choice_is_measured_once_recorded_and_reused(tmp_path, monkeypatch):
    calls = []

    def fake_measure(size, **_kw):
        calls.append(size)
        return 6.0 * (128 / size) ** 2

    monkeypatch.setattr("vcfnet.training.throughput.measure_train_throughput", fake_measure)
    cfg = DemoConfig(quick=True, out=tmp_path).resolved()
    path = tmp_path / "budget.json"
    choice = choose_rung(cfg, WORK, elapsed_s=40.0, params={"seed": 0}, path=path)
    assert calls == [128, 64]
    assert 40 <= choice.elapsed_s < 45 and choice.seconds_left == pytest.approx(
        180 * 0.9 - choice.elapsed_s, abs=0.2
    )
    assert choice.rung == pick_rung(QUICK_LADDER, WORK, Speed(128, 6.0, 64, 24.0), 180 * 0.9 - 40)
    saved = json.loads(path.read_text())
    assert saved["rung"] == choice.rung and saved["speed"]["ips_hi"] == 6.0
    assert "training images/s measured at 128 px" in choice.describe()
    again = choose_rung(cfg, WORK, elapsed_s=0.0, params={"seed": 0}, path=path)
    assert again == choice and calls == [128, 64]  # a resumed run does not measure again
    assert read_choice(path, {"seed": 1}) is None  # other earlier steps: measure again
    assert isinstance(read_choice(path, None), BudgetChoice)


def test_throughput_measurement_runs_and_keeps_the_global_rng():
    import torch

    from vcfnet.training.throughput import measure_train_throughput

    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    ips = measure_train_throughput(32, batch_size=2, steps=1, warmup=1)
    assert ips > 0
    assert torch.equal(torch.rand(3), expected)
