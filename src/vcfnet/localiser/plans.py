"""``vcfnet predict --localize``: the boxes to classify come from the localiser (every body whose
morphometric Genant grade is >= 1), not from the user."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vcfnet.errors import InputError
from vcfnet.geometry import Box
from vcfnet.io.images import read_radiograph
from vcfnet.localiser.model import Localiser
from vcfnet.localiser.results import body_records, fractured_boxes


@dataclass(frozen=True)
class LocalisedImage:
    """A radiograph with the boxes the localiser graded fractured (``BoxedImage``'s fields)."""

    path: Path
    boxes: tuple[Box, ...]
    labels: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    patient_id: str = ""  # in memory only; outputs use keyed pseudonyms


def plan_localised(
    model: Path | str, inputs: Sequence[Path], min_grade: int = 1
) -> list[LocalisedImage]:
    """One plan per radiograph, its boxes the bodies graded >= ``min_grade`` (may be none)."""
    for path in inputs:
        if not Path(path).is_file():
            raise InputError(f"{path}: image not found")
    localiser = Localiser(model)
    plans = []
    for path in inputs:
        radiograph = read_radiograph(path)
        bodies = localiser.predict_pixels(radiograph.pixels)
        record = {"vertebrae": body_records(bodies, localiser.levels, radiograph.pixel_spacing_mm)}
        boxes, levels = fractured_boxes(record, min_grade)
        pid = radiograph.patient.patient_id
        plans.append(LocalisedImage(Path(path), tuple(boxes), (), tuple(levels), pid))
    return plans
