"""A tiny synthetic cohort and the options of a localiser trained on it for seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from vcfnet.cli import main

#: train-localiser options for a run of seconds (its figures are meaningless)
TINY_LOCALISER = [
    "--width",
    "8",
    "--input-size",
    "128x160",
    "--epochs",
    "2",
    "--steps-per-epoch",
    "2",
    "--refine-steps",
    "2",
    "--refine-width",
    "8",
    "--refine-crop",
    "32",
    "--batch-size",
    "2",
    "--val-fraction",
    "0.2",
]


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Path:
    """``vcfnet synth --scale 0.005`` at 256x320: a few films per site, all bodies annotated."""
    out = tmp_path_factory.mktemp("loc") / "cohort"
    args = ["-q", "synth", "--out", str(out), "--scale", "0.005", "--size", "256x320"]
    assert main([*args, "--workers", "1", "--seed", "5"]) == 0
    return out
