"""``vcfnet synth``: generate a synthetic multicenter cohort."""

from __future__ import annotations

import argparse

from vcfnet.config import add_config_arguments, resolve_config, save_command_config
from vcfnet.synth.cohort import SynthConfig, generate_cohort


def add_synth_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, SynthConfig)


def run_synth(args: argparse.Namespace) -> int:
    cfg = resolve_config(SynthConfig, args)
    result = generate_cohort(cfg)
    save_command_config(cfg, result.out)
    for name, info in result.sites.items():
        c = info["counts"]
        print(
            f"{name:12s} {info['images']:5d} radiographs  {info['vertebrae']:5d} vertebrae "
            f"(acute {c['acute']}, chronic {c['chronic']}, pathologic {c['pathologic']})"
        )
    print(f"wrote {result.n_images} radiographs to {result.out} in {result.seconds:.1f} s")
    return 0
