"""This CPU's arithmetic peaks and a model's FLOP count, to read a speed as a fraction of what the
hardware allows; and the machine a benchmark ran on."""

from __future__ import annotations

import os
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

#: matmul size for the arithmetic peak (large enough to be compute-bound, ~0.1 s in fp32)
_PEAK_N = 2048


def peak_gflop_s(dtype: str, repeats: int = 8) -> float:
    """This CPU's arithmetic peak in GFLOP/s (GOP/s for int8): the best of ``repeats`` square
    matmuls in ``dtype`` ("fp32", "bf16" or "int8") through PyTorch's oneDNN/MKL kernels, on the
    threads PyTorch uses (NaN where the build has no such kernel). Convolution layers of a ResNet
    cannot run faster than this."""
    n = _PEAK_N
    if dtype == "int8":
        a = torch.randint(-128, 128, (n, n), dtype=torch.int8)
        matmul = torch._int_mm  # int8 x int8 -> int32, VNNI where the CPU has it
    else:
        a = torch.randn(n, n, dtype={"fp32": torch.float32, "bf16": torch.bfloat16}[dtype])
        matmul = torch.matmul
    b = a.clone()
    try:
        matmul(a, b)  # warm-up
    except (RuntimeError, NotImplementedError):  # a build without that kernel: no peak to report
        return float("nan")
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def model_gflop(model, image_size: int, *, backward: bool) -> float:
    """GFLOP per image of ``model`` (convolutions and matmuls, as counted by PyTorch's
    ``FlopCounterMode``) for a forward pass, or forward + backward when ``backward``."""
    x = torch.zeros(2, 3, image_size, image_size)
    with FlopCounterMode(display=False) as counter:
        if backward:
            model(x).sum().backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                model(x)
    return counter.get_total_flops() / 2 / 1e9


#: CPU flags that decide which kernels run fast
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")


def machine_info() -> dict:
    """The CPU (model, cores, relevant flags) and library versions, so runs compare honestly."""
    import platform

    import numpy
    import onnxruntime

    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:  # not Linux: the flags stay unknown
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_flags": {flag: flag in flags for flag in CPU_FLAGS},
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }
