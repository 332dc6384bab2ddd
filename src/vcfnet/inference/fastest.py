"""Pick the fastest inference backend of a model on this CPU, from a short measurement.

A training run folder can hold the PyTorch checkpoint and its ONNX exports (``vcfnet export``:
fp32, and int8 with ``--quantize``). Which one answers a single crop fastest depends on the CPU
(bf16 and VNNI kernels, core count), so ``load_fastest`` times a few single-crop predictions of
every candidate and keeps the fastest; ``backend`` other than ``auto`` pins one. ONNX files count
only when their metadata names the checkpoint's weights hash (an export of another run is ignored).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vcfnet.cpu import int8_kernels_saturate
from vcfnet.errors import CheckpointError
from vcfnet.inference.loading import load_model
from vcfnet.inference.predictor import Predictor
from vcfnet.models.paths import resolve_model_path

log = logging.getLogger(__name__)

#: backend name -> the ``ModelInfo.runtime`` of its predictor
BACKEND_RUNTIMES = {"torch": "pytorch", "onnx": "onnxruntime", "onnx-int8": "onnxruntime-int8"}
BACKENDS = ("auto", *BACKEND_RUNTIMES)


@dataclass
class BackendChoice:
    """The predictor in use and how it was chosen (what the platform shows as model info)."""

    predictor: Predictor
    backend: str  # torch | onnx | onnx-int8
    mode: str  # auto | the pinned backend
    single_crop_ms: dict[str, float] = field(default_factory=dict)  # measured per candidate
    explainer: Predictor | None = None  # a PyTorch predictor for Grad-CAM, if one was loaded

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "mode": self.mode,
            "single_crop_ms": {k: round(v, 2) for k, v in self.single_crop_ms.items()},
        }


def _backend_of(predictor: Predictor) -> str:
    return {v: k for k, v in BACKEND_RUNTIMES.items()}[predictor.info.runtime]


def candidates(path: Path | str) -> dict[str, Predictor]:
    """backend -> loaded predictor: the model itself and, for a checkpoint in a run folder, the
    ``*.onnx`` files beside ``checkpoints/`` that export these weights (first of each kind)."""
    resolved = resolve_model_path(path)
    main = load_model(resolved)
    found = {_backend_of(main): main}
    if resolved.parent.name != "checkpoints":
        return found
    for onnx in sorted(resolved.parent.parent.glob("*.onnx")):
        try:
            other = load_model(onnx)
        except CheckpointError as exc:
            log.warning("ignoring %s: %s", onnx, exc)
            continue
        if other.info.hash == main.info.hash:
            found.setdefault(_backend_of(other), other)
        else:
            log.info("ignoring %s: it exports other weights", onnx)
    return found


def single_crop_ms(predictor: Predictor, repeats: int = 5, warmup: int = 2) -> float:
    """Median milliseconds of ``predict_crops`` on one mid-gray crop (the platform's unit of work)."""
    size = predictor.input.image_size
    crop = np.full((size, size), 128, dtype=np.uint8)
    for _ in range(warmup):
        predictor.predict_crops([crop])
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predictor.predict_crops([crop])
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def load_fastest(path: Path | str, backend: str = "auto", repeats: int = 5) -> BackendChoice:
    """The predictor of ``backend`` (``auto``: the fastest single-crop candidate) for ``path``."""
    if backend not in BACKENDS:
        raise CheckpointError(f"unknown backend {backend!r}; use {', '.join(BACKENDS)}")
    found = candidates(path)
    if backend != "auto" and backend not in found:
        raise CheckpointError(
            f"{path} has no {backend} model; export one beside checkpoints/ "
            "('vcfnet export --model RUN_DIR --out RUN_DIR/model.onnx'; for int8 "
            "'--out RUN_DIR/model_int8.onnx --quantize int8 --calibration DATASET_DIR') "
            f"or use --backend {' or '.join(found)}"
        )
    timings = {}
    if backend == "auto" and len(found) > 1:
        timings = {name: single_crop_ms(p, repeats) for name, p in found.items()}
        chosen = min(timings, key=timings.get)
    else:
        chosen = backend if backend != "auto" else next(iter(found))
    explainer = found.get("torch")
    if chosen == "onnx-int8" and int8_kernels_saturate():
        log.info(
            "this CPU has no VNNI: the int8 model runs onnxruntime's exact uint8 x uint8 "
            "kernels, slower than its saturating default (docs/inference.md)"
        )
    log.info(
        "inference backend %s (%s)%s",
        chosen,
        backend,
        "; single crop " + ", ".join(f"{k} {v:.1f} ms" for k, v in timings.items())
        if timings
        else "",
    )
    return BackendChoice(found[chosen], chosen, backend, timings, explainer)
