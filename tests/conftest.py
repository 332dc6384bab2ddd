"""Shared fixtures: paths to the real reference data in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real samples, aSAH, Van Dyke); tests needing it skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_samples(shared_data: Path) -> Path:
    """The 15 real ROI crops in the authors' ImageFolder layout (Acute/, Chronic/, Pathologic/)."""
    return shared_data / "vcfnet-samples"
