"""What an int8 export gives on CPUs without VNNI (AVX2, AVX-512F): a simulation run on any CPU.

onnxruntime's int8 convolutions multiply the raw uint8 activations (zero point included) by the
int8 weights. VNNI CPUs add those products in int32, exactly. Without VNNI, MLAS's u8 x s8 kernels
use ``vpmaddubsw``, which adds each two neighbouring products of the im2col column (NHWC order:
channels innermost) in int16 and *saturates* there. This module replays those pair sums in numpy
from the int8 model's own activations on given crops and reruns the model with each
convolution's output moved by what the saturation loses (to first order: every layer's error is
computed from the unsaturated activations).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from scipy.special import softmax

from vcfnet.errors import CheckpointError
from vcfnet.inference.onnx_backend import OnnxPredictor
from vcfnet.models.metadata import ONNX_INPUT, ONNX_OUTPUTS

INT16_MIN, INT16_MAX = -32768, 32767
#: candidate (channel, pair) combinations evaluated at once, and crops simulated at once
CANDIDATE_BLOCK, CROP_BLOCK = 256, 4


@dataclass(frozen=True)
class QuantizedConv:
    """One Conv of a QDQ graph with its quantized input tensor and int8 weights."""

    output: str  # the Conv's output tensor
    input_q: str  # the uint8 tensor its DequantizeLinear reads
    input_scale: float
    weight_q: np.ndarray  # int8 (co, ci, kh, kw)
    weight_scale: np.ndarray  # float (co,) or scalar
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    zero_point: int  # of the uint8 input (padding value)


@dataclass(frozen=True)
class SaturationEstimate:
    """An int8 export on crops as a CPU without VNNI runs it (``probabilities``) and exactly."""

    saturated_pair_fraction: float  # of all u8 x s8 pair sums, all convolutions
    first_conv_output_fraction: float  # of the first convolution's outputs moved by saturation
    probabilities: np.ndarray  # float64 (N, classes), simulated without VNNI
    exact_probabilities: np.ndarray  # float64 (N, classes), exact int32 accumulation (VNNI)


def quantized_convs(model: onnx.ModelProto) -> list[QuantizedConv]:
    """The Convs of a QDQ int8 graph whose input and weights both come through
    DequantizeLinear from uint8 activations and int8 initializers, in graph order."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    convs = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        x_dq, w_dq = (producer.get(name) for name in node.input[:2])
        if not x_dq or not w_dq:
            continue
        if {x_dq.op_type, w_dq.op_type} != {"DequantizeLinear"} or w_dq.input[0] not in inits:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        zero_point = inits.get(x_dq.input[2]) if len(x_dq.input) > 2 else None
        convs.append(
            QuantizedConv(
                output=node.output[0],
                input_q=x_dq.input[0],
                input_scale=float(inits[x_dq.input[1]]),
                weight_q=inits[w_dq.input[0]].astype(np.int32),
                weight_scale=np.asarray(inits[w_dq.input[1]], dtype=np.float64),
                strides=tuple(attrs.get("strides", (1, 1))),
                pads=tuple(attrs.get("pads", (0, 0, 0, 0))),
                zero_point=int(zero_point) if zero_point is not None else 0,
            )
        )
    return convs


def im2col_nhwc(x_q: np.ndarray, conv: QuantizedConv) -> np.ndarray:
    """int32 (N, P, K) columns of one input ``x_q`` (N, ci, H, W) uint8, padded with the zero
    point; P output positions, K = kh * kw * ci in NHWC order (channels innermost)."""
    _, ci, kh, kw = conv.weight_q.shape
    (sh, sw), (top, left, bottom, right) = conv.strides, conv.pads
    padded = np.pad(
        x_q.astype(np.int32),
        ((0, 0), (0, 0), (top, bottom), (left, right)),
        constant_values=conv.zero_point,
    )
    h = (padded.shape[2] - kh) // sh + 1
    w = (padded.shape[3] - kw) // sw + 1
    taps = [
        padded[:, :, i : i + sh * h : sh, j : j + sw * w : sw] for i in range(kh) for j in range(kw)
    ]  # each (N, ci, h, w)
    cols = np.stack(taps, axis=1)  # (N, kh*kw, ci, h, w)
    return cols.reshape(len(x_q), kh * kw * ci, h * w).transpose(0, 2, 1)


def pair_saturation(cols: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, int, int]:
    """What int16 saturation of neighbouring products loses.

    ``cols`` int (N, P, K) raw uint8 activations, ``weights`` int (co, K) int8, both in the same
    K order. Returns (error int64 (N, P, co): saturated minus exact sum, number of saturated pair
    sums, number of pair sums). Only (channel, pair) combinations whose largest inputs could
    leave int16 are evaluated, so this is cheap where saturation cannot happen."""
    n, p, k = cols.shape
    first, second = weights[:, 0 : k - 1 : 2], weights[:, 1:k:2]  # (co, K // 2)
    error = np.zeros((n, p, weights.shape[0]), dtype=np.int64)
    total = n * p * first.size
    largest = cols.max(axis=(0, 1))  # (K,)
    bound = largest[0 : k - 1 : 2] * np.abs(first) + largest[1:k:2] * np.abs(second)
    out_ch, pair = np.nonzero(bound > INT16_MAX)  # sorted by channel
    saturated = 0
    for start in range(0, len(pair), CANDIDATE_BLOCK):  # bounded memory: (N, P, block)
        ch, pr = out_ch[start : start + CANDIDATE_BLOCK], pair[start : start + CANDIDATE_BLOCK]
        sums = cols[:, :, 2 * pr] * first[ch, pr] + cols[:, :, 2 * pr + 1] * second[ch, pr]
        lost = np.clip(sums, INT16_MIN, INT16_MAX) - sums
        saturated += int(np.count_nonzero(lost))
        for c in np.unique(ch[(lost != 0).any(axis=(0, 1))]):
            error[:, :, c] += lost[:, :, ch == c].sum(axis=2)
    return error, saturated, total


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    """An unoptimised session: each Conv runs in float on its dequantized inputs, which is the
    exact int32 result, scaled."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _with_outputs(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs the tensors ``names``."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.output.extend(helper.ValueInfoProto(name=name) for name in names)
    return copy


def _with_deltas(model: onnx.ModelProto, convs: Sequence[QuantizedConv]) -> onnx.ModelProto:
    """A copy of ``model`` in which each conv's output has a graph input ``<output>__delta``
    (float32, the output's shape) added before anything reads it."""
    shifted = {conv.output: f"{conv.output}__shifted" for conv in convs}
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    nodes = []
    for node in model.graph.node:
        node = onnx.NodeProto.FromString(node.SerializeToString())
        node.input[:] = [shifted.get(name, name) for name in node.input]
        nodes.append(node)
        for out in node.output:
            if out in shifted:
                nodes.append(helper.make_node("Add", [out, f"{out}__delta"], [shifted[out]]))
                copy.graph.input.append(
                    helper.make_tensor_value_info(f"{out}__delta", onnx.TensorProto.FLOAT, None)
                )
    del copy.graph.node[:]
    copy.graph.node.extend(nodes)
    return copy


def weights_nhwc(conv: QuantizedConv) -> np.ndarray:
    """int32 (co, K) weights in the K order of :func:`im2col_nhwc`."""
    return conv.weight_q.transpose(0, 2, 3, 1).reshape(conv.weight_q.shape[0], -1)


def _conv_error(x_q: np.ndarray, conv: QuantizedConv, out_shape) -> tuple[np.ndarray, int, int]:
    """float32 ``out_shape`` (N, co, h, w): what saturation moves the conv's float output by."""
    co = conv.weight_q.shape[0]
    error, saturated, total = pair_saturation(im2col_nhwc(x_q, conv), weights_nhwc(conv))
    scale = conv.input_scale * np.broadcast_to(conv.weight_scale, (co,))
    delta = (error * scale).transpose(0, 2, 1).reshape(out_shape)
    return delta.astype(np.float32), saturated, total


def simulate_saturation(onnx_path: Path | str, crops: Sequence[np.ndarray]) -> SaturationEstimate:
    """The int8 export ``onnx_path`` on ``crops`` (uint8, any size) as a CPU without VNNI would
    run it, against the exact int8 result: see the module docstring."""
    model = onnx.load(str(onnx_path))
    convs = quantized_convs(model)
    if not convs:
        raise CheckpointError(
            f"{onnx_path} has no int8 convolutions; pass an export made with --quantize int8"
        )
    x = OnnxPredictor(onnx_path).input_array(crops)
    names = list(dict.fromkeys([c.input_q for c in convs] + [c.output for c in convs]))
    probed, shifted = _session(_with_outputs(model, names)), _session(_with_deltas(model, convs))
    moved, exact, saturated, total, first_moved = [], [], 0, 0, 0
    for start in range(0, len(x), CROP_BLOCK):
        batch = x[start : start + CROP_BLOCK]
        values = dict(zip(names, probed.run(names, {ONNX_INPUT: batch}), strict=True))
        deltas = {}
        for conv in convs:
            shape = values[conv.output].shape
            delta, n_saturated, n_pairs = _conv_error(values[conv.input_q], conv, shape)
            deltas[f"{conv.output}__delta"] = delta
            saturated, total = saturated + n_saturated, total + n_pairs
        first_moved += np.count_nonzero(deltas[f"{convs[0].output}__delta"])
        zeros = {name: np.zeros_like(delta) for name, delta in deltas.items()}
        exact += shifted.run([ONNX_OUTPUTS[0]], {ONNX_INPUT: batch, **zeros})
        moved += shifted.run([ONNX_OUTPUTS[0]], {ONNX_INPUT: batch, **deltas})
    first_size = len(x) * int(np.prod(values[convs[0].output].shape[1:]))
    return SaturationEstimate(
        saturated_pair_fraction=saturated / max(total, 1),
        first_conv_output_fraction=float(first_moved / first_size),
        probabilities=softmax(np.concatenate(moved).astype(np.float64), axis=1),
        exact_probabilities=softmax(np.concatenate(exact).astype(np.float64), axis=1),
    )
