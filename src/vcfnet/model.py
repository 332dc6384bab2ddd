"""The classifier (torchvision ResNet-18 with a new head) and its self-contained checkpoints."""

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
from vcfnet.data.transforms import Preprocessing
from vcfnet.errors import CheckpointError, WeightsUnavailableError
from vcfnet.io.atomic import atomic_path
from vcfnet.labels import CLASS_NAMES

log = logging.getLogger(__name__)

ARCH = "resnet18"
CHECKPOINT_FORMAT = "vcfnet-checkpoint-v1"


def imagenet_weights_path() -> Path:
    """Where torchvision's ImageNet ResNet-18 weights sit in the torch hub cache."""
    from torchvision.models import ResNet18_Weights

    url = ResNet18_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def load_backbone_weights(weights: str | Path) -> dict[str, torch.Tensor] | None:
    """State dict for ``weights``: ``none`` -> None, ``imagenet`` (torchvision API, cache only), PATH.

    Raises WeightsUnavailableError at once when ImageNet weights are not cached (no download).
    """
    if str(weights).lower() == "none":
        return None
    if str(weights).lower() == "imagenet":
        from torchvision.models import ResNet18_Weights

        if not imagenet_weights_path().is_file():
            raise WeightsUnavailableError(
                f"ImageNet weights are not cached at {imagenet_weights_path()} and vcfnet never "
                "downloads at run time: put torchvision's resnet18-f37072fd.pth there, pass "
                "--weights PATH (a torchvision state dict file) or train from scratch with --weights none"
            )
        return ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True)
    path = Path(weights)
    if not path.is_file():
        raise WeightsUnavailableError(
            f"weights file {path} not found; pass an existing torchvision state dict, "
            "--weights imagenet or --weights none"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnavailableError(f"cannot read weights file {path}: {exc}") from exc
    if isinstance(state, dict) and "model_state" in state:  # a vcfnet checkpoint
        state = state["model_state"]
    if not isinstance(state, dict) or "conv1.weight" not in state:
        raise WeightsUnavailableError(
            f"{path} is not a ResNet-18 state dict (no 'conv1.weight'); pass a torchvision "
            "resnet18 state dict file"
        )
    return state


def build_model(num_classes: int = len(CLASS_NAMES), weights: str | Path = "none") -> nn.Module:
    """ResNet-18 with a fresh ``num_classes`` head; backbone from ``weights`` (none|imagenet|PATH)."""
    from torchvision.models import resnet18

    model = resnet18(weights=None)
    state = load_backbone_weights(weights)
    if state is not None:
        backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = model.load_state_dict(backbone, strict=False)
        if unexpected or set(missing) - {"fc.weight", "fc.bias"}:
            raise WeightsUnavailableError(
                f"weights {weights} do not fit ResNet-18 (missing {missing}, unexpected {unexpected})"
            )
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


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
        "arch": ARCH,
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


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Load a vcfnet checkpoint with ``weights_only=True``; CheckpointError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file {path} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # one line for the CLI
        raise CheckpointError(f"{path} is not a readable vcfnet checkpoint: {reason}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a vcfnet checkpoint (train one with 'vcfnet train'; plain "
            "torchvision weights go to 'vcfnet train --weights PATH')"
        )
    class_names = tuple(payload["class_names"])
    if payload.get("arch") != ARCH:
        raise CheckpointError(f"{path}: unsupported architecture {payload.get('arch')!r}")
    model = build_model(num_classes=len(class_names), weights="none")
    try:
        model.load_state_dict(payload["model_state"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the model: {exc}") from exc
    model.eval()
    return Checkpoint(
        model=model,
        class_names=class_names,
        preprocessing=Preprocessing.from_dict(payload["preprocessing"]),
        config=payload.get("config", {}),
        meta=payload.get("meta", {}),
        extra=payload.get("extra", {}),
    )


@torch.inference_mode()
def predict_proba(
    model: nn.Module,
    crops,
    preprocessing: Preprocessing,
    *,
    device: torch.device | str = "cpu",
    precision=None,
    batch_size: int = 64,
):
    """Class probabilities (N, C) float64 numpy for crops: uint8 (N, h, w) array or list of arrays.

    ``precision`` is a ``vcfnet.device.Precision`` (None = fp32). Crops are resized to the model
    size and normalised exactly as in training.
    """
    import numpy as np

    from vcfnet.data.transforms import normalize_batch, stack_crops

    device = torch.device(device)
    model = model.to(device).eval()
    if precision is not None and precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    out = []
    for start in range(0, len(crops), batch_size):
        chunk = crops[start : start + batch_size]
        batch = stack_crops(list(chunk), preprocessing.image_size)
        x = normalize_batch(batch, preprocessing).to(device)
        if precision is not None:
            x = x.contiguous(memory_format=precision.memory_format)
            with precision.autocast(device):
                logits = model(x)
        else:
            logits = model(x)
        out.append(torch.softmax(logits.float(), dim=1).cpu().numpy().astype(np.float64))
    return np.concatenate(out) if out else np.zeros((0, len(CLASS_NAMES)))
