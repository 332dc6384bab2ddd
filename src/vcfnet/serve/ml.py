"""The platform's only door to vcfnet's inference code (repoint these imports after a refactor).

``ModelService`` loads the model once per process (at the server's start-up, else on first
use) and analyses a radiograph's boxes: per box the class probabilities and the predicted class,
the model's identity, and with a PyTorch model a Grad-CAM heatmap drawn on the radiograph.
Grad-CAM hooks the model's last stage for the calling thread only, so concurrent analyses on one
model stay independent.
onnxruntime sessions are thread-safe (no heatmap: ONNX has no gradients).

The backend (``--backend auto|torch|onnx|onnx-int8``): a run folder's checkpoint and its ONNX
exports beside ``checkpoints/`` are timed on a few single crops when the model loads, and the
fastest answers (``vcfnet.inference.fastest``); Grad-CAM then still comes from the checkpoint.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vcfnet.errors import CheckpointError, InputError
from vcfnet.geometry import Box
from vcfnet.inference.explain import explain_pixels
from vcfnet.inference.results import ImagePrediction

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
    """One model per process, loaded by the first ``predictor()`` call (the app's start-up)."""

    def __init__(
        self, model_path: Path | str | None, backend: str = "auto", model_id: str | None = None
    ):
        self.model_path = Path(model_path) if model_path else None
        self.backend = backend
        self.model_id = model_id  # the admin-installed model's id (``serve.model_admin``), if any
        self._predictor = None
        self._choice = None  # vcfnet.inference.fastest.BackendChoice, once loaded
        self._load_lock = threading.Lock()

    @classmethod
    def loaded(
        cls, model_path: Path | str, model_id: str | None = None, backend: str = "auto"
    ) -> ModelService:
        """A service with its model loaded now (a bad file raises here, before it is used)."""
        service = cls(model_path, backend, model_id)
        service.predictor()
        return service

    @property
    def available(self) -> bool:
        return self.model_path is not None

    @property
    def is_loaded(self) -> bool:
        return self._predictor is not None

    def predictor(self):
        if self.model_path is None:
            raise ModelUnavailableError(
                "no model is loaded; restart with 'vcfnet serve --model RUN_DIR' (or model.onnx)"
            )
        with self._load_lock:
            if self._predictor is None:
                from vcfnet.inference.fastest import load_fastest  # on first use: fast start-up

                self._choice = load_fastest(self.model_path, self.backend)
                self._predictor = self._choice.predictor
                log.info(
                    "loaded model %s (%s), backend %s",
                    self._predictor.info.name,
                    self.model_path,
                    self._choice.backend,
                )
        return self._predictor

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.predictor().class_names)

    def info(self) -> dict[str, Any]:
        """The model's identity and, under ``backend``, which backend answers and why."""
        return _model_dict(self.predictor(), self._choice)

    def analyse(
        self, pixels: np.ndarray, boxes: Sequence[Box], levels: Sequence[str], heatmap: bool = True
    ) -> AnalysisResult:
        """Classify ``boxes`` on display pixels uint8 (H, W); InputError for a bad box."""
        predictor = self.predictor()
        explainer = predictor if predictor.explainable else getattr(self._choice, "explainer", None)
        if not (heatmap and explainer is not None):
            prediction = predictor.predict(pixels, list(boxes), levels=levels)
            return _result(predictor, prediction, None, self._choice)
        exp = explain_pixels(predictor, pixels, list(boxes), levels=levels, cam_predictor=explainer)
        prediction = ImagePrediction(source="<array>", boxes=exp.predictions, model=predictor.info)
        return _result(predictor, prediction, exp.radiograph_rgb, self._choice)


def _model_dict(predictor, choice) -> dict[str, Any]:
    info = predictor.info.to_dict()
    if choice is not None:
        info["backend"] = choice.to_dict()
    return info


def _result(predictor, prediction, heatmap_rgb, choice=None) -> AnalysisResult:
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
        model=_model_dict(predictor, choice),
        heatmap_rgb=heatmap_rgb,
        prediction=prediction.to_dict(),
    )


def error_types() -> tuple[type[Exception], ...]:
    """Exceptions of the inference code that mean bad input or a bad model (not a server bug)."""
    return (InputError, CheckpointError)


_services: dict[str, ModelService] = {}
_services_lock = threading.Lock()


def model_service(model_path: Path | str | None, backend: str = "auto") -> ModelService:
    """The process-wide service of ``model_path`` (so several apps in one process share it)."""
    key = str(Path(model_path).resolve()) if model_path else ""
    if backend != "auto":
        key = f"{key}#{backend}"
    with _services_lock:
        if key not in _services:
            _services[key] = ModelService(model_path, backend)
        return _services[key]
