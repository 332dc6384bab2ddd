import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vcfnet
from tests.factories import randomize_batchnorm
from tests.predict_fixtures import make_run_dir
from vcfnet.cli import main
from vcfnet.inference.explain import cam_region, explain_image
from vcfnet.inference.gradcam import grad_cam
from vcfnet.models.classifier import build_model
from vcfnet.preprocess import Preprocessing, make_cache_crop, normalize_batch, stack_crops

BOX = (100.0, 90.0, 250.0, 240.0)  # the vertebra, 150 x 150 px


def film(rng, lesion_center=None, *, radius=15):
    """uint8 (360, 340) dark noisy film with a brighter vertebral body at BOX and, optionally,
    a bright round lesion (the class evidence) centred at ``lesion_center`` (x, y)."""
    img = rng.normal(60, 15, (360, 340))
    x1, y1, x2, y2 = (int(v) for v in BOX)
    img[y1:y2, x1:x2] += 70
    if lesion_center is not None:
        yy, xx = np.ogrid[:360, :340]
        cx, cy = lesion_center
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] += 100
    return np.clip(img, 0, 255).astype(np.uint8)


def random_lesion(rng):
    x1, y1, x2, y2 = BOX
    return rng.uniform(x1 + 25, x2 - 25), rng.uniform(y1 + 25, y2 - 25)


@pytest.fixture(scope="module")
def lesion_model(tmp_path_factory):
    """ResNet-18 whose 'acute' logit detects the lesion: a random backbone and a last layer fitted
    by logistic regression on pooled layer4 features of crops cut by the shared preprocessing."""
    from sklearn.linear_model import LogisticRegression

    pre = Preprocessing()
    rng = np.random.default_rng(0)
    has_lesion = np.arange(24) % 2 == 0
    crops = [
        make_cache_crop(film(rng, random_lesion(rng) if y else None), BOX, pre) for y in has_lesion
    ]
    batch = normalize_batch(stack_crops(crops, pre.image_size), pre)
    torch.manual_seed(0)
    # BatchNorm statistics measured on these crops (non-default): Grad-CAM through a real fold
    model = randomize_batchnorm(build_model(), seed=0, calibrate_on=batch)
    pooled = {}
    hook = model.avgpool.register_forward_hook(
        lambda _m, _i, out: pooled.__setitem__("f", out.flatten(1))
    )
    with torch.inference_mode():
        model(batch)
    hook.remove()
    fit = LogisticRegression(max_iter=2000).fit(pooled["f"].numpy(), has_lesion)
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        model.fc.weight[0] = torch.from_numpy(fit.coef_[0]).float()
        model.fc.bias[0] = float(fit.intercept_[0])
    return make_run_dir(tmp_path_factory.mktemp("lesion"), preprocessing=pre, model=model)


def test_heatmap_peaks_inside_the_vertebra_at_the_lesion(lesion_model, tmp_path):
    rng = np.random.default_rng(1)
    lesions = [random_lesion(rng) for _ in range(4)]
    films = [film(rng, lesion) for lesion in lesions]
    model = vcfnet.load_model(lesion_model, precision="fp32")
    crops = [model.crops_for(image, [BOX])[0] for image in films]
    assert (model.predict_crops(crops).argmax(axis=1) == 0).all()  # every lesion detected
    cams, _ = model.grad_cam(crops, class_indices=[0] * len(crops))
    x1, y1, x2, y2 = BOX
    for image, lesion, crop_cam in zip(films, lesions, cams, strict=True):
        region, cam = cam_region(crop_cam, BOX, model.preprocessing.margin, image.shape)
        py, px = np.unravel_index(np.argmax(cam), cam.shape)
        py, px = py + region[0].start, px + region[1].start
        assert x1 <= px <= x2 and y1 <= py <= y2, "peak outside the vertebra"
        # one layer4 cell is 32 model px = 26 film px: the peak is within about a cell of the lesion
        assert np.hypot(px - lesion[0], py - lesion[1]) < 40
    # the Python API writes the same maps as PNGs
    result = explain_image(model, films[0], [BOX], tmp_path, levels=["L1"])
    assert result.boxes[0].predicted == "acute" and result.boxes[0].level == "L1"
    assert Path(result.heatmap).is_file() and Path(result.boxes[0].heatmap).is_file()


def test_grad_cam_shape_range_and_class_choice():
    torch.manual_seed(0)
    model = build_model().eval()
    x = torch.randn(3, 3, 64, 64)
    cams, probs = grad_cam(model, x)
    assert cams.shape == (3, 64, 64) and cams.dtype == np.float32
    assert cams.min() >= 0 and np.allclose(cams.max(axis=(1, 2)), 1, atol=1e-5)
    assert np.allclose(probs.sum(axis=1), 1)
    other, _ = grad_cam(model, x, class_indices=[1, 2, 0])
    assert not np.allclose(cams, other)
    assert all(p.grad is None for p in model.parameters())  # no parameter gradients accumulate


def test_grad_cam_ignores_a_concurrent_forward_on_another_thread():
    """A prediction on another thread passing through layer4 during a Grad-CAM call (the
    platform predicts and explains on worker threads sharing one model) leaves the map as it was:
    the activation hook records only its own thread's forward."""
    import threading

    torch.manual_seed(0)
    model = build_model().eval()
    x, other = torch.randn(2, 3, 64, 64), torch.randn(5, 3, 64, 64)
    expected, _ = grad_cam(model, x)

    def predict(batch):
        with torch.inference_mode():
            model(batch)

    def predict_elsewhere(_module, _inputs, _output):  # after layer4, inside grad_cam's forward
        handle.remove()  # once
        thread = threading.Thread(target=predict, args=(other,))
        thread.start()
        thread.join()

    handle = model.fc.register_forward_hook(predict_elsewhere)
    try:
        cams, _ = grad_cam(model, x)
    finally:
        handle.remove()
    np.testing.assert_array_equal(cams, expected)


def test_heatmap_files_for_a_radiograph(tmp_path, capsys):
    run = make_run_dir(tmp_path / "run")
    image = film(np.random.default_rng(0), (150, 150))
    Image.fromarray(image).save(tmp_path / "film.png")
    boxes = [("--box", "100,90,250,240"), ("--box", "20,20,90,80")]
    args = [
        "predict",
        "--model",
        str(run),
        str(tmp_path / "film.png"),
        "--heatmap",
        str(tmp_path / "hm"),
        "--keep-names",
    ]
    assert main([*args, *(a for pair in boxes for a in pair)]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    full = np.asarray(Image.open(result["heatmap"]))
    assert full.shape == (*image.shape, 3)
    x1, y1, x2, y2 = 100, 90, 250, 240
    inside = full[y1 + 5 : y2 - 5, x1 + 5 : x2 - 5]
    assert np.abs(inside[..., 0].astype(int) - inside[..., 2]).mean() > 10  # coloured heatmap
    assert (full[300:, 300:, 0] == full[300:, 300:, 2]).all()  # film outside boxes stays gray
    for box in result["boxes"]:
        crop = np.asarray(Image.open(box["heatmap"]))
        assert crop.ndim == 3 and crop.shape[2] == 3
        assert crop[:8].mean() < 60  # the caption strip is black (with white text)
    assert sorted(p.name for p in (tmp_path / "hm").iterdir()) == [
        "film_box0.png",
        "film_box1.png",
        "film_heatmap.png",
    ]


def test_heatmaps_for_real_sample_crops(real_samples, tmp_path, capsys):
    run = make_run_dir(tmp_path / "run")
    assert (
        main(
            [
                "predict",
                "--model",
                str(run),
                "--crops",
                str(real_samples),
                "--heatmap",
                str(tmp_path / "hm"),
                "--keep-names",
            ]
        )
        == 0
    )
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 15 and len(list((tmp_path / "hm").glob("*_heatmap.png"))) == 15
    first = results[0]
    source = Image.open(first["image"])
    heat = Image.open(first["boxes"][0]["heatmap"])
    assert heat.width == source.width and heat.height > source.height  # crop + caption strip
