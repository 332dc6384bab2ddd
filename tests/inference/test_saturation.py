"""The no-VNNI simulation's arithmetic (vcfnet.inference.saturation); its runs on an int8 export
are in test_export.py, beside the export they need."""

import numpy as np

from vcfnet.inference.saturation import QuantizedConv, im2col_nhwc, pair_saturation, weights_nhwc


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
