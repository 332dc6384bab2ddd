"""Report building blocks: figures (PNG + SVG) and a self-contained HTML / Markdown report."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: footnote sign of an AUC whose interval is a small-sample one (or not estimable), in every table
SMALL_SAMPLE_MARK = "†"


def json_safe(value: Any) -> Any:
    """Plain JSON data, recursively: numpy numbers/arrays to Python, NaN/inf to None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    return value
