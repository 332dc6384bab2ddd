"""The architectures a checkpoint may name: (task, arch) -> a builder of an untrained network."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from vcfnet.errors import CheckpointError
from vcfnet.models.classifier import ARCH, build_model
from vcfnet.models.localiser import LOCALISE_TASK, WIDTHS, arch_name, build_localiser

#: the task a fracture-classifier checkpoint solves
CLASSIFY_TASK = "classify-vcf"

#: (task, arch) -> builder(num_outputs) of a network with freshly initialised weights
BUILDERS: dict[tuple[str, str], Callable[[int], nn.Module]] = {
    (CLASSIFY_TASK, ARCH): lambda n: build_model(num_classes=n, weights="none"),
    **{
        (LOCALISE_TASK, arch_name(w)): (lambda n, w=w: build_localiser(n, w))  # n = levels
        for w in WIDTHS
    },
}


def build_for(task: str, arch: str, num_outputs: int) -> nn.Module:
    """An untrained network for ``(task, arch)``; CheckpointError naming the known ones otherwise."""
    try:
        builder = BUILDERS[(task, arch)]
    except KeyError:
        known = ", ".join(f"{t}/{a}" for t, a in BUILDERS)
        raise CheckpointError(
            f"unsupported model {task}/{arch}; this vcfnet knows {known} (upgrade vcfnet?)"
        ) from None
    return builder(num_outputs)
