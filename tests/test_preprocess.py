import numpy as np
import pytest

from vcfnet.errors import InputError
from vcfnet.geometry import crop_box, expand_box, validate_box
from vcfnet.preprocess import (
    CropSpec,
    InputSpec,
    Preprocessing,
    make_cache_crop,
    normalize_array,
    normalize_batch,
    stack_crops,
)


def test_crop_keeps_orientation_and_content():
    img = np.zeros((100, 200), np.uint8)
    img[20:40, 50:90] = 255  # the "vertebra"
    img[20, 50] = 7  # top-left marker
    crop = crop_box(img, (50, 20, 90, 40), margin=0.0)
    assert crop.shape == (20, 40) and crop[0, 0] == 7 and crop[1:, 1:].min() == 255


def test_margin_and_clipping():
    assert expand_box((10, 10, 20, 30), 0.1, (100, 100)) == (9, 8, 21, 32)
    assert expand_box((0, 0, 50, 50), 0.5, (60, 60)) == (0, 0, 60, 60)


@pytest.mark.parametrize("box", [(5, 5, 5, 10), (500, 5, 600, 10), (10, 10, 5, 20)])
def test_bad_boxes(box):
    with pytest.raises(InputError):
        crop_box(np.zeros((100, 100), np.uint8), box, 0.1)


def test_cache_crop_and_model_input():
    pre = Preprocessing(CropSpec(cache_size=64), InputSpec(image_size=32))
    img = np.random.default_rng(0).integers(0, 255, (300, 400), dtype=np.uint8)
    crop = make_cache_crop(img, (100, 100, 200, 150), pre)
    assert max(crop.shape) == 64 and crop.dtype == np.uint8
    batch = stack_crops([crop, np.dstack([crop] * 3)], pre.image_size)
    x = normalize_batch(batch, pre)
    assert tuple(x.shape) == (2, 3, 32, 32)
    assert abs(float(x[0, 0].mean()) - ((crop.mean() / 255 - 0.485) / 0.229)) < 0.1


@pytest.mark.parametrize("channels", [3, 1])
def test_numpy_normalisation_equals_torch(channels):
    pre = Preprocessing(input=InputSpec(channels=channels))
    batch = np.random.default_rng(0).integers(0, 256, (3, 40, 40), dtype=np.uint8)
    x = normalize_array(batch, pre)
    assert x.dtype == np.float32 and x.shape == (3, channels, 40, 40)
    assert np.array_equal(x, normalize_batch(batch, pre).numpy())
    assert np.array_equal(normalize_array(batch[:, None], pre), x)


@pytest.mark.parametrize(
    "box",
    [
        (float("inf"), 10, 50, 60),  # OverflowError before
        (10, 10, 1e308, 60),
        (-1e308, 10, 50, 60),
        (400, 500, 900, 1200),  # ~4 % inside a 512x640 image: an XML of another image
        (-100000, -100000, 1, 1),
    ],
)
def test_boxes_beyond_the_image_are_errors(box):
    with pytest.raises(InputError):
        validate_box(box, (640, 512))


def test_a_box_a_little_beyond_the_edge_is_kept():
    validate_box((-5, -10, 520, 650), (640, 512))  # within 2 % of each side
    assert crop_box(np.zeros((640, 512), np.uint8), (-5, -10, 520, 650), 0.0).shape == (640, 512)
