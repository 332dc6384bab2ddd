"""What a study read records besides the class (chosen in the protocol, frozen at launch):
``none``; ``sliders`` (a confidence per class, 0-100, summing to 100); ``five_point`` (a rating
per class, 1 = surely not that class ... 5 = surely that class). Either becomes the reads table's
scores, which the MRMC analysis ranks the cases by instead of the single read class."""

from __future__ import annotations

from collections.abc import Mapping

from vcfnet.evaluation.predictions import PROB_COLUMNS
from vcfnet.labels import CLASS_NAMES
from vcfnet.reader_study.reads import RATING_COLUMNS
from vcfnet.serve.crud import InvalidInputError

RATING_SCALES: tuple[str, ...] = ("none", "sliders", "five_point")
RATING_LABELS: dict[str, str] = {
    "none": "the class only",
    "sliders": "a confidence per class (sliders summing to 100)",
    "five_point": "a 5-point rating per class (1 surely not ... 5 surely)",
}
FIVE_POINT: tuple[int, ...] = (1, 2, 3, 4, 5)


def check_scale(scale: str) -> str:
    if scale not in RATING_SCALES:
        raise InvalidInputError(f"ratings {scale!r} is not one of {', '.join(RATING_SCALES)}")
    return scale


def check_ratings(
    scale: str, box: int, values: Mapping[str, float] | None
) -> dict[str, float] | None:
    """The stored ratings of one box under ``scale`` (None for ``none``); InvalidInputError
    saying what to fix."""
    if scale == "none":
        return None
    what = "confidence (sum 100)" if scale == "sliders" else "rating from 1 to 5"
    if not values or set(values) != set(CLASS_NAMES):
        raise InvalidInputError(f"box {box + 1}: give a {what} for each class")
    out = {c: float(values[c]) for c in CLASS_NAMES}
    if scale == "sliders":
        if any(not 0 <= v <= 100 for v in out.values()) or abs(sum(out.values()) - 100) > 0.5:
            raise InvalidInputError(f"box {box + 1}: the confidences must be 0-100 and sum to 100")
        return out
    if any(v not in FIVE_POINT for v in out.values()):
        raise InvalidInputError(f"box {box + 1}: each class needs a rating from 1 to 5")
    return {c: int(v) for c, v in out.items()}


def score_columns(scale: str) -> tuple[str, ...]:
    """The reads table's score columns under ``scale`` (the layout ``vcfnet readers`` reads)."""
    return {"none": (), "sliders": PROB_COLUMNS, "five_point": RATING_COLUMNS}[scale]


def score_values(scale: str, stored: Mapping[str, float] | None) -> dict[str, float]:
    """A read's stored ratings as the reads table's score columns (sliders: /100)."""
    columns = score_columns(scale)
    if not columns:
        return {}
    div = 100.0 if scale == "sliders" else 1.0
    return {col: stored[c] / div for col, c in zip(columns, CLASS_NAMES, strict=True)}
