"""The platform's only door to vcfnet's inference code (repoint these imports after a refactor).

``ModelService`` loads the model once per process (on first use) and analyses a radiograph's
boxes: per box the class probabilities and the predicted class, the model's identity, and with a
PyTorch model a Grad-CAM heatmap drawn on the radiograph. Grad-CAM hooks the model's last stage,
so two analyses at once on one model would see each other's activations; a lock serialises them
on the PyTorch path (a ResNet-18 already uses every core, so nothing is lost). onnxruntime
sessions are thread-safe and run without the lock (no heatmap: ONNX has no gradients).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vcfnet.geometry import Box

log = logging.getLogger(__name__)


class ModelUnavailableError(RuntimeError):
    """No model is configured: start the server with --model RUN_DIR or model.onnx."""


@dataclass(frozen=True)
class BoxResult:
    box: Box
    level: str
    probabilities: dict[str, float]
    predicted: str


@dataclass(frozen=True)
class AnalysisResult:
    """What the model says about one radiograph's boxes."""

    boxes: tuple[BoxResult, ...]
    model: dict[str, Any]  # name, version, hash, runtime, class_names
    heatmap_rgb: np.ndarray | None  # (H, W, 3) uint8: the radiograph with each box's Grad-CAM
    prediction: dict[str, Any]  # the ``vcfnet predict --format json`` object of this image


class ModelService:
    """One model per process, loaded on first use."""

    def __init__(self, model_path: Path | str | None):
        self.model_path = Path(model_path) if model_path else None
        self._predictor = None
        self._load_lock = threading.Lock()
        self._gradcam_lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.model_path is not None

    def predictor(self):
        if self.model_path is None:
            raise ModelUnavailableError(
                "no model is loaded; restart with 'vcfnet serve --model RUN_DIR' (or model.onnx)"
            )
        with self._load_lock:
            if self._predictor is None:
                from vcfnet.inference.loading import load_model

                self._predictor = load_model(self.model_path)
                log.info("loaded model %s (%s)", self._predictor.info.name, self.model_path)
        return self._predictor

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.predictor().class_names)

    def info(self) -> dict[str, Any]:
        return self.predictor().info.to_dict()

    def analyse(
        self, pixels: np.ndarray, boxes: Sequence[Box], levels: Sequence[str], heatmap: bool = True
    ) -> AnalysisResult:
        """Classify ``boxes`` on display pixels uint8 (H, W); InputError for a bad box."""
        predictor = self.predictor()
        if not _has_grad_cam(predictor):
            return _result(predictor, predictor.predict(pixels, list(boxes), levels=levels), None)
        with self._gradcam_lock:
            prediction = predictor.predict(pixels, list(boxes), levels=levels)
            rgb = _grad_cam_overlay(predictor, pixels, boxes, prediction) if heatmap else None
        return _result(predictor, prediction, rgb)


def _has_grad_cam(predictor) -> bool:
    return hasattr(predictor, "grad_cam")


def _grad_cam_overlay(predictor, pixels: np.ndarray, boxes: Sequence[Box], prediction):
    from vcfnet.inference.explain import caption_text, heatmap_on_radiograph

    crops = predictor.crops_for(pixels, list(boxes))
    indices = [predictor.class_names.index(b.predicted) for b in prediction.boxes]
    cams, _ = predictor.grad_cam(crops, class_indices=indices)
    captions = [caption_text(b.predicted, b.probability, b.level) for b in prediction.boxes]
    return heatmap_on_radiograph(
        pixels, list(boxes), cams, captions, predictor.preprocessing.margin
    )


def _result(predictor, prediction, heatmap_rgb) -> AnalysisResult:
    boxes = tuple(
        BoxResult(
            box=tuple(b.box),
            level=b.level,
            probabilities=dict(b.probabilities),
            predicted=b.predicted,
        )
        for b in prediction.boxes
    )
    return AnalysisResult(
        boxes=boxes,
        model=predictor.info.to_dict(),
        heatmap_rgb=heatmap_rgb,
        prediction=prediction.to_dict(),
    )


def error_types() -> tuple[type[Exception], ...]:
    """Exceptions of the inference code that mean bad input or a bad model (not a server bug)."""
    from vcfnet.errors import CheckpointError, InputError

    return (InputError, CheckpointError)


_services: dict[str, ModelService] = {}
_services_lock = threading.Lock()


def model_service(model_path: Path | str | None) -> ModelService:
    """The process-wide service of ``model_path`` (so several apps in one process share it)."""
    key = str(Path(model_path).resolve()) if model_path else ""
    with _services_lock:
        if key not in _services:
            _services[key] = ModelService(model_path)
        return _services[key]
