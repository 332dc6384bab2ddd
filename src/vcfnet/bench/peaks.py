"""This CPU's arithmetic peaks, measured with the kernels each inference/training path runs on, and
a model's FLOP count, to read a speed as a fraction of what the hardware allows; and the machine a
benchmark ran on.

A peak is the best of several repeats of one large, compute-bound problem (well under a second)
through the same library and number format as the path it is compared with: PyTorch (oneDNN/MKL)
fp32 and bf16 for the PyTorch paths, onnxruntime (MLAS) fp32 ``Conv``/``Gemm`` and int8
``QLinearConv``/``MatMulInteger`` for the ONNX paths, the latter in a session made by
:class:`~vcfnet.inference.onnx_backend.OnnxPredictor` (so with its session options). A ResNet's
layers cannot run faster than the best such kernel, so a path's fraction of its own peak is <= 1 on
any CPU, whichever instructions (AVX2, AVX-512, VNNI, AMX) its kernels find there."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from vcfnet.cpu import CPU_FLAGS, cpu_model_and_flags, int8_kernels_saturate

#: matmul size (n x n x n) and 3x3 convolution (batch, channels, side: a ResNet-18 layer3 shape)
#: of the peak problems: ~2 and ~3.7 GFLOP, a few ms to ~0.1 s per run depending on the CPU
_MATMUL_N = 1024
_CONV = (16, 256, 14)

#: each peak kernel runs at least ``repeats`` times and on until this many seconds have passed
#: (at most ``_MAX_REPEATS``); on a shared CPU a longer window finds a quieter moment
PEAK_REPEATS = 5
PEAK_SECONDS = 0.25
_MAX_REPEATS = 64


def add_peak_arguments(parser) -> None:
    """``--peak-repeats`` and ``--peak-seconds`` of a benchmark that reads speeds against peaks."""
    parser.add_argument(
        "--peak-repeats",
        type=int,
        default=PEAK_REPEATS,
        help=f"least runs of each peak kernel, the best kept (default {PEAK_REPEATS})",
    )
    parser.add_argument(
        "--peak-seconds",
        type=float,
        default=PEAK_SECONDS,
        help=f"keep running each peak kernel this long (default {PEAK_SECONDS})",
    )


def peak_options(args) -> dict:
    """``repeats``/``seconds`` keyword arguments of the peak functions from parsed options."""
    return {
        "repeats": int(getattr(args, "peak_repeats", PEAK_REPEATS)),
        "seconds": float(getattr(args, "peak_seconds", PEAK_SECONDS)),
    }


def _best_seconds(fn: Callable[[], object], repeats: int, seconds: float) -> float:
    """The fastest of at least ``repeats`` calls of ``fn`` (after a warm-up), continued until
    ``seconds`` have passed."""
    fn()  # warm-up: allocators, kernel selection, weight prepacking
    best, start, done = float("inf"), time.perf_counter(), 0
    while done < max(1, repeats) or (time.perf_counter() - start < seconds and done < _MAX_REPEATS):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        done += 1
    return best


def _conv_flop() -> int:
    n, c, s = _CONV
    return 2 * n * c * c * 9 * s * s


def peak_gflop_s(dtype: str, repeats: int = PEAK_REPEATS, seconds: float = PEAK_SECONDS) -> float:
    """PyTorch's peak on this CPU in GFLOP/s for ``dtype`` "fp32" or "bf16", on the threads
    PyTorch uses: the best of a square matmul and a 3x3 convolution (NCHW and channels_last)
    through oneDNN/MKL. NaN for bf16 where the CPU has no native bf16
    (:func:`vcfnet.device.cpu_supports_bf16`), or where the build lacks a kernel."""
    from vcfnet.device import cpu_supports_bf16

    if dtype not in ("fp32", "bf16"):
        raise ValueError(f"PyTorch peak dtype must be fp32 or bf16, not {dtype!r}")
    if dtype == "bf16" and not cpu_supports_bf16():
        return float("nan")
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    n = _MATMUL_N
    a = torch.randn(n, n).to(torch_dtype)
    b, c_ = _CONV[0], _CONV[1]
    conv = torch.nn.Conv2d(c_, c_, 3, padding=1, bias=False).to(torch_dtype).eval()
    x = torch.randn(b, c_, _CONV[2], _CONV[2]).to(torch_dtype)
    conv_cl = torch.nn.Conv2d(c_, c_, 3, padding=1, bias=False).to(torch_dtype).eval()
    conv_cl = conv_cl.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    problems = [
        (2 * n**3, lambda: torch.matmul(a, a)),
        (_conv_flop(), lambda: conv(x)),
        (_conv_flop(), lambda: conv_cl(x_cl)),
    ]
    rates = []
    with torch.inference_mode():
        for flop, fn in problems:
            try:
                rates.append(flop / _best_seconds(fn, repeats, seconds) / 1e9)
            except (RuntimeError, NotImplementedError):  # a build without that kernel
                continue
    return max(rates, default=float("nan"))


def _onnx_problems(dtype: str) -> list[tuple[int, bytes, dict[str, np.ndarray]]]:
    """(operations, serialized ONNX model, feed) of the peak problems for an onnxruntime path:
    fp32 ``Conv`` and ``Gemm``; int8 ``QLinearConv`` (what a QDQ-quantized Conv becomes in
    onnxruntime's graph optimiser) and ``MatMulInteger``, uint8 activations x int8 weights."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    n, c, s = _CONV
    m = _MATMUL_N

    def model(node, inputs, initializers, out_type: int) -> bytes:
        graph = helper.make_graph(
            [node],
            "vcfnet-peak",
            [helper.make_tensor_value_info(k, _ONNX_TYPES[v.dtype], v.shape) for k, v in inputs],
            [helper.make_tensor_value_info("y", out_type, None)],
            [numpy_helper.from_array(v, k) for k, v in initializers.items()],
        )
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        # OnnxPredictor opens vcfnet exports only: the peak model carries their metadata
        from vcfnet.models.metadata import ONNX_FORMAT
        from vcfnet.preprocess import Preprocessing

        for key, value in {
            "vcfnet.format": ONNX_FORMAT,
            "vcfnet.preprocessing": json.dumps(Preprocessing().to_dict()),
            "vcfnet.class_names": json.dumps(["peak"]),
        }.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        return proto.SerializeToString()

    if dtype == "fp32":
        x = rng.standard_normal((n, c, s, s), dtype=np.float32)
        a = rng.standard_normal((m, m), dtype=np.float32)
        w = 0.01 * rng.standard_normal((c, c, 3, 3), dtype=np.float32)
        conv = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
        gemm = helper.make_node("Gemm", ["a", "b"], ["y"])
        return [
            (_conv_flop(), model(conv, [("x", x)], {"w": w}, TensorProto.FLOAT), {"x": x}),
            (2 * m**3, model(gemm, [("a", a)], {"b": a.copy()}, TensorProto.FLOAT), {"a": a}),
        ]
    if dtype != "int8":
        raise ValueError(f"onnxruntime peak dtype must be fp32 or int8, not {dtype!r}")
    x = rng.integers(0, 256, (n, c, s, s), dtype=np.uint8)
    a = rng.integers(0, 256, (m, m), dtype=np.uint8)
    qconv = {
        "x_scale": np.float32(0.02),
        "x_zero": np.uint8(128),
        "w": rng.integers(-127, 128, (c, c, 3, 3), dtype=np.int8),
        "w_scale": np.full(c, 0.01, np.float32),  # per output channel, as vcfnet quantizes
        "w_zero": np.zeros(c, np.int8),
        "y_scale": np.float32(0.5),
        "y_zero": np.uint8(128),
    }
    conv = helper.make_node("QLinearConv", ["x", *qconv], ["y"], pads=[1, 1, 1, 1])
    matmul = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
    b = rng.integers(-127, 128, (m, m), dtype=np.int8)
    return [
        (_conv_flop(), model(conv, [("x", x)], qconv, TensorProto.UINT8), {"x": x}),
        (2 * m**3, model(matmul, [("a", a)], {"b": b}, TensorProto.INT32), {"a": a}),
    ]


_ONNX_TYPES = {
    np.dtype(np.float32): 1,  # TensorProto.FLOAT
    np.dtype(np.uint8): 2,  # TensorProto.UINT8
    np.dtype(np.int8): 3,  # TensorProto.INT8
}


def onnx_peak_gop_s(
    dtype: str,
    repeats: int = PEAK_REPEATS,
    seconds: float = PEAK_SECONDS,
    threads: int | None = None,
) -> float:
    """onnxruntime's peak on this CPU in GFLOP/s ("fp32") or GOP/s ("int8"): the best of a 3x3
    convolution and a square matmul in that format, each in a session opened by
    :class:`~vcfnet.inference.onnx_backend.OnnxPredictor` (its session options and threads)."""
    from vcfnet.inference.onnx_backend import OnnxPredictor

    rates = []
    with tempfile.TemporaryDirectory(prefix="vcfnet-peak-") as tmp:
        for i, (ops, proto, feed) in enumerate(_onnx_problems(dtype)):
            path = Path(tmp) / f"peak{i}.onnx"
            path.write_bytes(proto)
            session = OnnxPredictor(path, threads=threads).session
            best = _best_seconds(lambda s=session, f=feed: s.run(None, f), repeats, seconds)
            rates.append(ops / best / 1e9)
    return max(rates)


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


def machine_info() -> dict:
    """The CPU (model, cores, relevant flags) and library versions, so runs compare honestly."""
    import platform

    import numpy
    import onnxruntime

    model, flags = cpu_model_and_flags()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_flags": {flag: flag in flags for flag in CPU_FLAGS},
        # what PyTorch's kernels may use: lower than the flags under ATEN_CPU_CAPABILITY /
        # ONEDNN_MAX_CPU_ISA (how docs/inference.md emulates an AVX2-only CPU)
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
        # onnxruntime int8 on its exact uint8 x uint8 kernels (no VNNI: see OnnxPredictor)
        "onnx_int8_exact_kernels": int8_kernels_saturate(flags),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }
