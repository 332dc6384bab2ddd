"""CSV files vcfnet writes: atomically, and safe to open in a spreadsheet.

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would run as a
formula in Excel or LibreOffice (CSV injection); such cells are written with a leading ``'``, the
OWASP recommendation. Numbers (a negative value included) are written as they are.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vcfnet.io.atomic import atomic_path

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value):
    """``value`` with a leading ``'`` when it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells cannot run as spreadsheet formulas."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(neutralise_cell)
    return out


def write_csv(df: pd.DataFrame, path: Path | str, **to_csv_options) -> Path:
    """Write ``df`` to ``path`` atomically, without an index, formulas neutralised."""
    path = Path(path)
    with atomic_path(path) as tmp:
        neutralise_formulas(df).to_csv(tmp, index=False, **to_csv_options)
    return path
