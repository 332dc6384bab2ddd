"""The no-VNNI simulation of int8 exports (vcfnet.inference.saturation)."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from vcfnet.inference.loading import load_model
from vcfnet.inference.saturation import (
    QuantizedConv,
    im2col_nhwc,
    pair_saturation,
    quantized_convs,
    simulate_saturation,
    weights_nhwc,
)


def test_pair_sums_saturate_in_int16_like_vpmaddubsw():
    cols = np.array([[[255, 255, 255, 255, 10, 200]]])  # (N=1, P=1, K=6)
    weights = np.array(
        [
            [127, 127, 127, -127, 1, 1],  # 64770 saturates to 32767; 0 and 210 are fine
            [64, 64, -64, -64, 0, 0],  # 7-bit weights: 32640, -32640, never saturate
            [-128, -128, 0, 0, 0, 0],  # -65280 saturates to -32768
        ]
    )
    error, saturated, total = pair_saturation(cols, weights)
    assert total == 9 and saturated == 2
    assert error[0, 0].tolist() == [32767 - 64770, 0, -32768 + 65280]


def test_im2col_order_padding_and_stride_reproduce_the_convolution():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 3, 7, 6))
    w = rng.integers(-128, 128, (4, 3, 3, 3))
    conv = QuantizedConv("y", "x", 1.0, w, np.ones(4), (2, 1), (1, 0, 1, 2), zero_point=9)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 2)), constant_values=9)
    h, ww = (padded.shape[2] - 3) // 2 + 1, padded.shape[3] - 3 + 1
    direct = np.array(
        [
            [
                [(padded[n, :, 2 * i : 2 * i + 3, j : j + 3] * w[c]).sum() for j in range(ww)]
                for i in range(h)
            ]
            for n in range(2)
            for c in range(4)
        ]
    ).reshape(2, 4, h * ww)
    via_columns = im2col_nhwc(x, conv) @ weights_nhwc(conv).T  # (N, P, co)
    assert np.array_equal(via_columns.transpose(0, 2, 1), direct)


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    """A random-weight ResNet-18 exported and quantized on noise crops, and 8 more crops."""
    import torch

    from tests.predict_fixtures import TINY_PREPROCESSING as pre
    from vcfnet.inference.export import export_onnx, quantize_onnx
    from vcfnet.models.artifact import save_checkpoint
    from vcfnet.models.classifier import build_model

    tmp = tmp_path_factory.mktemp("saturation")
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 256, (70, 90), dtype=np.uint8) for _ in range(12)]
    torch.manual_seed(0)
    save_checkpoint(tmp / "model.pt", build_model(), preprocessing=pre, config={})
    export_onnx(tmp / "model.pt", tmp / "model.onnx")
    return quantize_onnx(tmp / "model.onnx", tmp / "int8.onnx", crops[:8]), crops[8:]


def _with_first_weights(path, out, value: int):
    """A copy of the int8 export whose first convolution's int8 weights all equal ``value``."""
    model = onnx.load(str(path))
    first = quantized_convs(model)[0]
    for init in model.graph.initializer:
        if np.array_equal(numpy_helper.to_array(init), first.weight_q.astype(np.int8)):
            full = np.full(first.weight_q.shape, value, dtype=np.int8)
            init.CopyFrom(numpy_helper.from_array(full, init.name))
    onnx.save(model, str(out))
    return out


def test_simulation_finds_saturation_where_weights_allow_it(int8_export, tmp_path):
    path, crops = int8_export
    estimate = simulate_saturation(path, crops)
    assert estimate.probabilities.shape == estimate.exact_probabilities.shape == (4, 3)
    assert 0 <= estimate.saturated_pair_fraction < 1
    assert np.allclose(
        estimate.exact_probabilities, load_model(path).predict_crops(crops), atol=0.02
    )
    large = simulate_saturation(_with_first_weights(path, tmp_path / "127.onnx", 127), crops)
    assert large.first_conv_output_fraction > 0.5
    assert np.abs(large.probabilities - large.exact_probabilities).max() > 0
    seven_bit = simulate_saturation(_with_first_weights(path, tmp_path / "64.onnx", 64), crops)
    assert seven_bit.first_conv_output_fraction == 0


def test_an_fp32_export_is_refused(int8_export):
    from vcfnet.errors import CheckpointError

    path, crops = int8_export
    with pytest.raises(CheckpointError, match="--quantize int8"):
        simulate_saturation(path.parent / "model.onnx", crops)


def test_serving_int8_on_a_cpu_without_vnni_says_so(int8_export, monkeypatch, caplog):
    import logging

    from vcfnet.inference import fastest

    path, _ = int8_export
    monkeypatch.setattr(fastest, "int8_kernels_saturate", lambda: True)
    with caplog.at_level(logging.INFO, logger="vcfnet.inference.fastest"):
        assert fastest.load_fastest(path).backend == "onnx-int8"
    assert "no VNNI" in caplog.text
    caplog.clear()
    monkeypatch.setattr(fastest, "int8_kernels_saturate", lambda: False)
    with caplog.at_level(logging.INFO, logger="vcfnet.inference.fastest"):
        fastest.load_fastest(path)
    assert "no VNNI" not in caplog.text
