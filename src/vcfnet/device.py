"""Device and numeric precision: bf16 autocast + channels_last where the CPU supports bf16."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


def cpu_supports_bf16() -> bool:
    """True where oneDNN has native bf16 kernels (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - exotic builds
        return False


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cpu``/``cuda``/``cuda:1`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from vcfnet.errors import ConfigError

        raise ConfigError("--device cuda asked for, but no CUDA GPU is available; use --device cpu")
    return device


@dataclass(frozen=True)
class Precision:
    """The resolved numeric mode: autocast dtype (None = fp32) and memory format."""

    name: str  # fp32 | bf16 | fp16
    autocast_dtype: torch.dtype | None
    channels_last: bool

    def autocast(self, device: torch.device):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


def resolve_precision(name: str, device: torch.device) -> Precision:
    """``auto``: bf16 + channels_last on bf16 CPUs, fp16 AMP (bf16 where supported) on CUDA, else fp32."""
    if name == "auto":
        if device.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            name = "bf16" if cpu_supports_bf16() else "fp32"
    if name == "fp32":
        return Precision("fp32", None, channels_last=device.type == "cuda")
    if name == "bf16":
        if device.type == "cpu" and not cpu_supports_bf16():
            log.warning("this CPU has no native bf16; bf16 will be slow (use --precision fp32)")
        return Precision("bf16", torch.bfloat16, channels_last=True)
    if name == "fp16":
        return Precision("fp16", torch.float16, channels_last=True)
    from vcfnet.errors import ConfigError

    raise ConfigError(f"unknown precision {name!r}; use auto, fp32, bf16 or fp16")
