"""What a prediction returns: per box the class probabilities, the predicted class and the
model's identity (name, version, weights hash, runtime)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vcfnet.geometry import Box


@dataclass(frozen=True)
class ModelInfo:
    """Which model made a prediction: name, vcfnet version, weights hash, runtime."""

    name: str
    version: str
    hash: str
    runtime: str  # "pytorch" | "onnxruntime" | "onnxruntime-int8"
    class_names: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "hash": self.hash,
            "runtime": self.runtime,
            "class_names": list(self.class_names),
        }


@dataclass(frozen=True)
class BoxPrediction:
    """The model's opinion on one boxed vertebra (or one pre-cut crop, ``box`` None)."""

    box: tuple[float, float, float, float] | None
    probabilities: dict[str, float]
    predicted: str
    label: str = ""  # known truth (from the XML or the crop's class folder), '' if unknown
    level: str = ""
    heatmap: str = ""  # path of the Grad-CAM PNG, if written

    @property
    def probability(self) -> float:
        """Probability of the predicted class."""
        return self.probabilities[self.predicted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": list(self.box) if self.box is not None else None,
            "level": self.level,
            "label": self.label,
            "pred": self.predicted,
            "probability": self.probability,
            "probabilities": dict(self.probabilities),
            **({"heatmap": self.heatmap} if self.heatmap else {}),
        }


@dataclass(frozen=True)
class ImagePrediction:
    """All boxes of one radiograph (or one crop file)."""

    source: str
    boxes: tuple[BoxPrediction, ...]
    model: ModelInfo
    patient_id: str = ""
    heatmap: str = ""  # full radiograph with every box's Grad-CAM, if written

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.source,
            "patient_id": self.patient_id,
            "model": self.model.to_dict(),
            "boxes": [b.to_dict() for b in self.boxes],
            **({"heatmap": self.heatmap} if self.heatmap else {}),
        }


def box_predictions(
    probs: np.ndarray,
    class_names: Sequence[str],
    boxes: Sequence[Box | None],
    labels: Sequence[str] | None = None,
    levels: Sequence[str] | None = None,
) -> tuple[BoxPrediction, ...]:
    """BoxPrediction per row of ``probs`` (N, C)."""
    out = []
    for i, row in enumerate(probs):
        box = boxes[i]
        out.append(
            BoxPrediction(
                box=tuple(float(v) for v in box) if box is not None else None,
                probabilities={c: float(p) for c, p in zip(class_names, row, strict=True)},
                predicted=class_names[int(np.argmax(row))],
                label=labels[i] if labels else "",
                level=levels[i] if levels else "",
            )
        )
    return tuple(out)
