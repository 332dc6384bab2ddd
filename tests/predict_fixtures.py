"""Small models for inference tests: a RUN_DIR with a random-weight checkpoint at a tiny input size."""

from __future__ import annotations

from pathlib import Path

import torch

from vcfnet.labels import CLASS_NAMES
from vcfnet.models.artifact import save_checkpoint
from vcfnet.models.classifier import build_model
from vcfnet.preprocess import CropSpec, InputSpec, Preprocessing

#: small input so that a ResNet-18 forward pass takes milliseconds in tests
TINY_PREPROCESSING = Preprocessing(CropSpec(margin=0.1, cache_size=80), InputSpec(image_size=64))


def make_run_dir(
    out: Path,
    *,
    preprocessing: Preprocessing = TINY_PREPROCESSING,
    seed: int = 0,
    model: torch.nn.Module | None = None,
    class_names: tuple[str, ...] = CLASS_NAMES,
) -> Path:
    """``out/checkpoints/best.pt`` holding ``model`` (default: random ResNet-18); returns ``out``."""
    torch.manual_seed(seed)
    model = model if model is not None else build_model()
    save_checkpoint(
        out / "checkpoints" / "best.pt",
        model.eval(),
        preprocessing=preprocessing,
        class_names=class_names,
        config={"test": True},
    )
    return out
