"""Shared fixtures: paths to the real reference data in ../shared/data; optional-dependency gate.

Tests whose data or tool is optional call :func:`require_or_skip`: a skip (reason printed by
pytest's ``-ra``) on a developer machine, a failure under CI (``CI=true``), where everything must be
present. A hardware feature that CI may lack (bf16, a GPU) is a plain ``pytest.skip`` instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = Path(__file__).resolve().parents[1]
#: real samples, aSAH, Van Dyke; ``VCFNET_TEST_DATA`` points elsewhere (e.g. on a CI runner)
SHARED_DATA = Path(os.environ.get("VCFNET_TEST_DATA") or REPO_ROOT.parent / "shared" / "data")


def in_ci() -> bool:
    """True under CI: the ``CI`` environment variable is ``true`` (GitHub, GitLab...) or ``1``."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def require_or_skip(condition: bool, reason: str) -> None:
    """Return if ``condition``; else skip the calling test with ``reason``, or fail it under CI."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"CI=true, and {reason}: CI must provide it", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real samples, aSAH, Van Dyke); skip without it, fail under CI."""
    require_or_skip(SHARED_DATA.is_dir(), f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_samples(shared_data: Path) -> Path:
    """The 15 real ROI crops in the authors' ImageFolder layout (Acute/, Chronic/, Pathologic/)."""
    return shared_data / "vcfnet-samples"


@pytest.fixture(autouse=True)
def _private_config_home(tmp_path_factory, monkeypatch):
    """Tests never write the user's ~/.config (e.g. the pseudonym key file)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.getbasetemp() / "config-home"))
