"""Load a model for inference: RUN_DIR, a ``.pt`` checkpoint or a ``.onnx`` file -> Predictor."""

from __future__ import annotations

from pathlib import Path

from vcfnet.inference.onnx_backend import OnnxPredictor
from vcfnet.inference.predictor import Predictor
from vcfnet.models.paths import model_name, resolve_model_path


def load_model(
    path: Path | str,
    *,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 64,
) -> Predictor:
    """Load RUN_DIR (its checkpoints/best.pt), a ``.pt`` checkpoint or a ``.onnx`` file for ``predict``.

    ``device``/``precision`` apply to checkpoints (``auto``: bf16 + channels_last on bf16 CPUs).
    """
    resolved = resolve_model_path(path)
    if resolved.suffix.lower() == ".onnx":
        return OnnxPredictor(resolved, batch_size=batch_size)
    # torch only for checkpoints: the ONNX path runs where torch is not installed
    from vcfnet.inference.torch_backend import TorchPredictor
    from vcfnet.models.artifact import load_checkpoint

    checkpoint = load_checkpoint(resolved)
    return TorchPredictor(
        checkpoint,
        name=model_name(resolved),
        device=device,
        precision=precision,
        batch_size=batch_size,
    )
