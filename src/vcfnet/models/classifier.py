"""The classifier: torchvision's ResNet-18 with a new head, and its backbone initialisation."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vcfnet.errors import WeightsUnavailableError
from vcfnet.labels import CLASS_NAMES

ARCH = "resnet18"


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
