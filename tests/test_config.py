import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from vcfnet.config import (
    add_config_arguments,
    build_config,
    config_to_dict,
    resolve_config,
    save_config,
)
from vcfnet.errors import ConfigError


@dataclass
class DemoConfig:
    epochs: int = field(default=25, metadata={"help": "epochs"})
    lr: float = 2e-4
    weights: str = "none"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    hflip: bool = True
    out: Path | None = None
    mean: tuple[float, ...] = (0.5, 0.5)


def _parse(argv):
    p = argparse.ArgumentParser()
    add_config_arguments(p, DemoConfig)
    return p.parse_args(argv)


def test_defaults_yaml_and_cli_layering(tmp_path):
    yml = tmp_path / "c.yaml"
    yml.write_text("epochs: 3\nlr: 0.1\nhflip: false\n")
    cfg = resolve_config(DemoConfig, _parse(["--config", str(yml), "--lr", "0.5", "--mean", "1,2"]))
    assert cfg.epochs == 3 and cfg.lr == 0.5 and cfg.hflip is False and cfg.mean == (1.0, 2.0)
    assert cfg.weights == "none"


def test_bool_flags_and_choices():
    assert resolve_config(DemoConfig, _parse(["--no-hflip"])).hflip is False
    with pytest.raises(SystemExit):
        _parse(["--precision", "fp64"])


def test_unknown_and_bad_values_raise_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown option"):
        build_config(DemoConfig, {"epoch": 3})
    with pytest.raises(ConfigError, match="epochs"):
        build_config(DemoConfig, {"epochs": "many"})


def test_round_trip_through_yaml(tmp_path):
    cfg = build_config(DemoConfig, {"out": "x/y", "epochs": 7})
    save_config(cfg, tmp_path / "config.yaml")
    p = _parse(["--config", str(tmp_path / "config.yaml")])
    assert resolve_config(DemoConfig, p) == cfg
    assert config_to_dict(cfg)["out"] == "x/y"
