"""What this CPU is and which instruction sets it has (read without importing torch)."""

from __future__ import annotations

import functools
import platform

#: CPU flags that decide which kernels run fast
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")
#: int8 dot products that add in 32 bits; without them x86 int8 kernels add pairs in 16 bits
INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


@functools.cache
def cpu_model_and_flags() -> tuple[str, frozenset[str]]:
    """(model name, flags) from ``/proc/cpuinfo``, read once per process (every model load asks);
    ``platform``'s processor name and no flags where it cannot be read (not Linux)."""
    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = frozenset(value.split())
    except OSError:
        pass
    return model, flags


def int8_kernels_saturate(flags: frozenset[str] | None = None) -> bool:
    """True on an x86 CPU known to lack VNNI and AMX int8 (AVX2 only, or AVX-512 without VNNI):
    onnxruntime's int8 kernels there add pairs of products in 16 bits, which can saturate."""
    flags = cpu_model_and_flags()[1] if flags is None else flags
    return "avx2" in flags and not flags & INT8_DOT_FLAGS
