"""The model artifact: a self-contained checkpoint (weights, task and architecture, classes, input
contract, config, versions, content hash), and resolving a model path. The ONNX export's metadata
keys are in ``vcfnet.models.metadata`` (importable without torch)."""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vcfnet import __version__
from vcfnet.errors import CheckpointError
from vcfnet.io.atomic import atomic_path
from vcfnet.labels import CLASS_NAMES
from vcfnet.models.classifier import ARCH
from vcfnet.models.registry import CLASSIFY_TASK, build_for
from vcfnet.preprocess import Preprocessing

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "vcfnet-checkpoint-v1"


def state_dict_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 over parameter names and values (fp32 bytes): identical weights, identical hash."""
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode, CPU) and everything needed to use it."""

    model: nn.Module
    class_names: tuple[str, ...]
    preprocessing: Preprocessing
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model_hash(self) -> str:
        return self.meta.get("model_hash", "")


def save_checkpoint(
    path: Path | str,
    model: nn.Module,
    *,
    class_names: tuple[str, ...] = CLASS_NAMES,
    preprocessing: Preprocessing,
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
    task: str = CLASSIFY_TASK,
    arch: str = ARCH,
) -> str:
    """Write a self-contained checkpoint atomically; returns the weights' content hash.

    ``extra`` holds resumable training state (optimizer, scheduler, RNG, epoch); it must contain only
    tensors, numbers, strings, lists and dicts so that ``weights_only=True`` loading works.
    """
    module = getattr(model, "module", model)  # unwrap DDP
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    model_hash = state_dict_hash(state)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "task": task,
        "arch": arch,
        "model_state": state,
        "class_names": list(class_names),
        "preprocessing": preprocessing.to_dict(),
        "config": config,
        "meta": {
            "vcfnet_version": __version__,
            "torch_version": str(torch.__version__),
            "model_hash": model_hash,
        },
        "extra": extra or {},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return model_hash


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)``; CheckpointError with one line that never suggests
    loading the file as a pickle (which could run code)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc)
        if "Weights only load failed" in text or "weights_only" in text:
            reason = "it holds Python objects that vcfnet refuses to unpickle (they could run code)"
        else:
            reason = (text.strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path} is not a readable vcfnet checkpoint: {reason}") from exc


def _class_names(path: Path, payload: dict) -> tuple[str, ...]:
    names = payload.get("class_names")
    if (
        not isinstance(names, list | tuple)
        or not names
        or not all(isinstance(n, str) for n in names)
    ):
        raise CheckpointError(
            f"{path}: no class_names list in the checkpoint; re-save it with vcfnet"
        )
    if len(set(names)) != len(names):
        raise CheckpointError(
            f"{path}: class names repeat ({', '.join(names)}); the file is corrupt"
        )
    return tuple(names)


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Load a vcfnet checkpoint with ``weights_only=True``; CheckpointError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file {path} not found")
    payload = _torch_load(path)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a vcfnet checkpoint (train one with 'vcfnet train'; plain "
            "torchvision weights go to 'vcfnet train --weights PATH')"
        )
    class_names = _class_names(path, payload)
    model = build_for(
        payload.get("task", CLASSIFY_TASK), str(payload.get("arch")), len(class_names)
    )
    try:
        model.load_state_dict(payload["model_state"])
        preprocessing = Preprocessing.from_dict(payload["preprocessing"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: weights or input spec do not fit the model: {exc}") from exc
    model.eval()
    return Checkpoint(
        model=model,
        class_names=class_names,
        preprocessing=preprocessing,
        config=payload.get("config", {}),
        meta=payload.get("meta", {}),
        extra=payload.get("extra", {}),
    )
