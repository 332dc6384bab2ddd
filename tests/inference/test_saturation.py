"""The no-VNNI simulation's arithmetic (vcfnet.inference.saturation); its runs on an int8 export
are in test_export.py, beside the export they need."""

import numpy as np

from vcfnet.inference.saturation import (
    QuantizedLayer,
    im2col_nhwc,
    layer_error,
    pair_saturation,
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
    conv = QuantizedLayer("y", "x", 1.0, 9, w, np.ones(4), strides=(2, 1), pads=(1, 0, 1, 2))
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


def test_columns_put_channels_innermost_so_pairs_straddle_taps_when_channels_are_odd():
    """onnxruntime pairs neighbouring entries of an NHWC im2col column: with 3 channels the
    second pair is (tap 0 channel 2, tap 1 channel 0)."""
    x = np.arange(12).reshape(1, 3, 2, 2)  # value = 4 * channel + 2 * row + column
    layer = QuantizedLayer("y", "x", 1.0, 0, np.zeros((1, 3, 2, 2), dtype=np.int32), np.ones(1))
    column = im2col_nhwc(x, layer)[0, 0]
    assert column.tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    weights = np.zeros((1, 3, 2, 2), dtype=np.int32)
    weights[0, 2, 0, 0] = weights[0, 0, 0, 1] = 127  # the straddling pair
    x_full = np.full((1, 3, 2, 2), 255)
    straddling = QuantizedLayer("y", "x", 1.0, 0, weights, np.ones(1))
    assert layer_error(x_full, straddling, (1, 1, 1, 1))[1] == 1
    weights[0, 0, 0, 1], weights[0, 1, 0, 1] = 0, 127  # same tap, not neighbours in K
    apart = QuantizedLayer("y", "x", 1.0, 0, weights, np.ones(1))
    assert layer_error(x_full, apart, (1, 1, 1, 1))[1] == 0


def test_a_gemm_is_a_one_by_one_convolution_on_its_flat_input():
    weights = np.array([[127, 127, 1, 1], [1, 1, 1, 1]], dtype=np.int32)[:, :, None, None]
    gemm = QuantizedLayer("logits", "pooled", 0.5, 0, weights, np.array([2.0, 2.0]))
    delta, saturated, total = layer_error(np.full((3, 4), 255), gemm, (3, 2))
    assert (saturated, total) == (3, 12)
    assert np.allclose(delta[:, 0], (32767 - 64770) * 0.5 * 2.0) and np.all(delta[:, 1] == 0)
