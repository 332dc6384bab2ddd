"""What an int8 export gives on CPUs without VNNI (AVX2, AVX-512F) in a runtime with onnxruntime's
default settings: a simulation run on any CPU. (vcfnet's own sessions ask for exact kernels there:
see :class:`~vcfnet.inference.onnx_backend.OnnxPredictor`.)

onnxruntime's int8 convolutions and matrix products multiply the raw uint8 activations (zero point
included) by the int8 weights. VNNI CPUs add those products in int32, exactly. Without VNNI, MLAS's
default u8 x s8 kernels use ``vpmaddubsw``, which adds each two neighbouring products of the im2col
column (NHWC order: channels innermost) in int16 and *saturates* there. This module replays those
pair sums in numpy from the int8 model's own activations on given crops and reruns the model with
each layer's output moved by what saturation loses (to first order: every layer's error is
computed from the unsaturated activations)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from scipy.special import softmax

from vcfnet.errors import CheckpointError, InputError
from vcfnet.inference.onnx_backend import OnnxPredictor
from vcfnet.models.metadata import ONNX_INPUT, ONNX_OUTPUTS

INT16_MIN, INT16_MAX = -32768, 32767
#: candidate (channel, pair) combinations evaluated at once, and crops simulated at once
CANDIDATE_BLOCK, CROP_BLOCK = 256, 4


@dataclass(frozen=True)
class QuantizedLayer:
    """A Conv (groups 1, no dilation) or Gemm of a QDQ graph whose input is uint8 and whose
    weights are an int8 initializer, each read through DequantizeLinear."""

    output: str  # the layer's float output tensor
    input_q: str  # the uint8 tensor its input DequantizeLinear reads
    input_scale: float
    zero_point: int  # of the uint8 input (also the padding value)
    weight_q: np.ndarray  # int32 (co, ci, kh, kw); a Gemm's (co, K) as (co, K, 1, 1)
    weight_scale: np.ndarray  # float64 (co,) or scalar
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass(frozen=True)
class SaturationEstimate:
    """An int8 export on crops as a CPU without VNNI runs it (``probabilities``) and exactly."""

    saturated_pair_fraction: float  # of all u8 x s8 pair sums, all layers
    saturated_pair_fraction_by_layer: dict[str, float]  # layer output name -> fraction
    first_conv_output_fraction: float  # of the first convolution's outputs moved by saturation
    probabilities: np.ndarray  # float64 (N, classes), simulated without VNNI
    exact_probabilities: np.ndarray  # float64 (N, classes), exact int32 accumulation (VNNI)


def _dequantized(tensor: str, inits: dict, producer: dict, dtype) -> tuple | None:
    """(quantized tensor name, scale, zero point) when ``tensor`` is a DequantizeLinear of a
    ``dtype`` tensor whose scale and zero point are initializers; else None."""
    node = producer.get(tensor)
    if node is None or node.op_type != "DequantizeLinear" or len(node.input) < 3:
        return None
    scale, zero_point = inits.get(node.input[1]), inits.get(node.input[2])
    if scale is None or zero_point is None or zero_point.dtype != dtype:
        return None
    return node.input[0], scale, zero_point


def _layer(node, inits: dict, producer: dict) -> QuantizedLayer | None:
    """The :class:`QuantizedLayer` of a Conv or Gemm node, or None if it is not one."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    x = _dequantized(node.input[0], inits, producer, np.uint8)
    w = _dequantized(node.input[1], inits, producer, np.int8)
    if x is None or w is None or w[0] not in inits:
        return None
    weight = inits[w[0]].astype(np.int32)
    if node.op_type == "Gemm":
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0:
            return None
        weight = (weight if attrs.get("transB", 0) else weight.T)[:, :, None, None]
    elif attrs.get("group", 1) != 1 or any(d != 1 for d in attrs.get("dilations", (1, 1))):
        return None  # grouped/dilated convolutions run other kernels
    return QuantizedLayer(
        output=node.output[0],
        input_q=x[0],
        input_scale=float(x[1]),
        zero_point=int(x[2]),
        weight_q=weight,
        weight_scale=np.asarray(w[1], dtype=np.float64),
        strides=tuple(attrs.get("strides", (1, 1))),
        pads=tuple(attrs.get("pads", (0, 0, 0, 0))),
    )


def quantized_layers(model: onnx.ModelProto) -> list[QuantizedLayer]:
    """The int8 Convs and Gemms of a QDQ graph (see :class:`QuantizedLayer`), in graph order."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    layers = (
        _layer(node, inits, producer)
        for node in model.graph.node
        if node.op_type in ("Conv", "Gemm")
    )
    return [layer for layer in layers if layer is not None]


def im2col_nhwc(x_q: np.ndarray, layer: QuantizedLayer) -> np.ndarray:
    """int32 (N, P, K) columns of one input ``x_q`` (N, ci, H, W) uint8, padded with the zero
    point; P output positions, K = kh * kw * ci in NHWC order (channels innermost)."""
    _, ci, kh, kw = layer.weight_q.shape
    (sh, sw), (top, left, bottom, right) = layer.strides, layer.pads
    padded = np.pad(
        x_q.astype(np.int32),
        ((0, 0), (0, 0), (top, bottom), (left, right)),
        constant_values=layer.zero_point,
    )
    h = (padded.shape[2] - kh) // sh + 1
    w = (padded.shape[3] - kw) // sw + 1
    taps = [
        padded[:, :, i : i + sh * h : sh, j : j + sw * w : sw] for i in range(kh) for j in range(kw)
    ]  # each (N, ci, h, w)
    cols = np.stack(taps, axis=1)  # (N, kh*kw, ci, h, w)
    return cols.reshape(len(x_q), kh * kw * ci, h * w).transpose(0, 2, 1)


def weights_nhwc(layer: QuantizedLayer) -> np.ndarray:
    """int32 (co, K) weights in the K order of :func:`im2col_nhwc`."""
    return layer.weight_q.transpose(0, 2, 3, 1).reshape(layer.weight_q.shape[0], -1)


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


def _with_deltas(model: onnx.ModelProto, layers: Sequence[QuantizedLayer]) -> onnx.ModelProto:
    """A copy of ``model`` in which each layer's output has a graph input ``<output>__delta``
    (float32, the output's shape) added before anything reads it."""
    shifted = {layer.output: f"{layer.output}__shifted" for layer in layers}
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


def layer_error(
    x_q: np.ndarray, layer: QuantizedLayer, out_shape: tuple[int, ...]
) -> tuple[np.ndarray, int, int]:
    """What saturation moves one layer's float output by: float32 ``out_shape`` ((N, co, h, w),
    or (N, co) for a Gemm, whose ``x_q`` is (N, K)), the number of saturated pair sums and the
    number of pair sums."""
    co = layer.weight_q.shape[0]
    x_q = x_q.reshape(*x_q.shape, 1, 1) if x_q.ndim == 2 else x_q
    error, saturated, total = pair_saturation(im2col_nhwc(x_q, layer), weights_nhwc(layer))
    scale = layer.input_scale * np.broadcast_to(layer.weight_scale, (co,))
    delta = (error * scale).transpose(0, 2, 1).reshape(out_shape)
    return delta.astype(np.float32), saturated, total


def simulate_saturation(onnx_path: Path | str, crops: Sequence[np.ndarray]) -> SaturationEstimate:
    """The int8 export ``onnx_path`` on ``crops`` (uint8, any size) as onnxruntime's default
    kernels on a CPU without VNNI would run it, to first order, against the exact int8 result."""
    if not len(crops):
        raise InputError("no crops to simulate the int8 model on; pass at least one crop")
    model = onnx.load(str(onnx_path))
    layers = quantized_layers(model)
    if not layers:
        raise CheckpointError(
            f"{onnx_path} has no int8 convolutions; pass an export made with --quantize int8"
        )
    x = OnnxPredictor(onnx_path).input_array(crops)
    tensors = [t for layer in layers for t in (layer.input_q, layer.output)]
    names = list(dict.fromkeys([ONNX_OUTPUTS[0], *tensors]))
    probed, shifted = _session(_with_outputs(model, names)), _session(_with_deltas(model, layers))
    exact, moved, first_moved = [], [], 0
    saturated = {layer.output: np.zeros(2, dtype=np.int64) for layer in layers}  # [sat, all]
    for start in range(0, len(x), CROP_BLOCK):
        batch = x[start : start + CROP_BLOCK]
        values = dict(zip(names, probed.run(names, {ONNX_INPUT: batch}), strict=True))
        deltas = {}
        for layer in layers:
            out = values[layer.output]
            delta, *counts = layer_error(values[layer.input_q], layer, out.shape)
            deltas[f"{layer.output}__delta"] = delta
            saturated[layer.output] += counts
        first_moved += np.count_nonzero(deltas[f"{layers[0].output}__delta"])
        exact.append(values[ONNX_OUTPUTS[0]])
        moved += shifted.run([ONNX_OUTPUTS[0]], {ONNX_INPUT: batch, **deltas})
    all_layers = sum(saturated.values())
    return SaturationEstimate(
        saturated_pair_fraction=float(all_layers[0] / all_layers[1]),
        saturated_pair_fraction_by_layer={k: float(v[0] / v[1]) for k, v in saturated.items()},
        first_conv_output_fraction=float(first_moved / values[layers[0].output][0].size / len(x)),
        probabilities=softmax(np.concatenate(moved).astype(np.float64), axis=1),
        exact_probabilities=softmax(np.concatenate(exact).astype(np.float64), axis=1),
    )
