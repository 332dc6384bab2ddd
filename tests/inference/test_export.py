import contextlib
import io
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import vcfnet
from tests.factories import randomize_batchnorm
from tests.predict_fixtures import make_run_dir
from vcfnet.cli import main
from vcfnet.errors import CheckpointError
from vcfnet.inference.export import onnx_parity
from vcfnet.labels import CLASS_NAMES
from vcfnet.models.artifact import load_checkpoint
from vcfnet.preprocess import Preprocessing


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A full-size (224 px) random-weight run (non-default BatchNorm statistics, so that folding
    and exporting them matter) and its ONNX export through the CLI."""
    from vcfnet.models.classifier import build_model

    tmp = tmp_path_factory.mktemp("export")
    torch.manual_seed(3)
    model = randomize_batchnorm(build_model(), seed=3)
    run = make_run_dir(tmp / "run", preprocessing=Preprocessing(), model=model)
    out = tmp / "model.onnx"
    assert (
        main(["export", "--model", str(run), "--format", "onnx", "--out", str(out), "--no-check"])
        == 0
    )
    return run, out


def test_onnx_parity_with_pytorch_fp32_on_32_crops(exported):
    run, out = exported
    assert onnx_parity(run, out, n=32) < 1e-3


def test_onnx_is_self_contained_with_dynamic_batch(exported):
    run, out = exported
    model = onnx.load(str(out))
    assert model.opset_import[0].version >= 17
    meta = {p.key: p.value for p in model.metadata_props}
    ckpt = load_checkpoint(run / "checkpoints" / "best.pt")
    assert json.loads(meta["vcfnet.class_names"]) == list(CLASS_NAMES)
    assert Preprocessing.from_dict(json.loads(meta["vcfnet.preprocessing"])) == ckpt.preprocessing
    assert meta["vcfnet.model_hash"] == ckpt.model_hash
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for n in (1, 5):
        logits, probs = session.run(None, {"image": np.zeros((n, 3, 224, 224), np.float32)})
        assert logits.shape == probs.shape == (n, 3)
        assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_load_model_runs_onnx_like_the_checkpoint(exported):
    run, out = exported
    image = np.random.default_rng(0).integers(0, 256, (300, 260), dtype=np.uint8)
    boxes = [(30, 40, 130, 120), (100, 150, 220, 260)]
    by_onnx = vcfnet.load_model(out).predict(image, boxes)
    by_torch = vcfnet.load_model(run, precision="fp32").predict(image, boxes)
    assert by_onnx.model.runtime == "onnxruntime"
    assert by_onnx.model.hash == by_torch.model.hash and by_onnx.model.name == by_torch.model.name
    for a, b in zip(by_onnx.boxes, by_torch.boxes, strict=True):
        assert a.predicted == b.predicted
        assert np.allclose(
            list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-3
        )


def test_onnx_model_runs_without_importing_torch(exported, real_samples):
    import subprocess
    import sys

    _, out = exported
    code = f"""
import sys
from pathlib import Path
import vcfnet
from vcfnet.inference.inputs import find_crop_files
model = vcfnet.load_model({str(out)!r})
assert len(model.predict_crop_files(find_crop_files([Path({str(real_samples)!r})]))) == 15
print([m for m in sys.modules if m.split(".")[0] == "torch"])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_onnx_errors(exported, tmp_path, capsys):
    _run, out = exported
    # an ONNX file from elsewhere has no vcfnet metadata
    model = onnx.load(str(out))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "foreign.onnx"))
    with pytest.raises(CheckpointError, match="not one exported by vcfnet"):
        vcfnet.load_model(tmp_path / "foreign.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable ONNX"):
        vcfnet.load_model(tmp_path / "junk.onnx")
    # Grad-CAM needs gradients: a one-line error, not a crash
    assert (
        main(
            [
                "predict",
                "--model",
                str(out),
                "--crops",
                str(tmp_path),
                "--heatmap",
                str(tmp_path / "hm"),
            ]
        )
        == 2
    )
    assert "--heatmap needs" in capsys.readouterr().err


def brightness_crops(seed: int, n: int = 32) -> tuple[list[np.ndarray], np.ndarray]:
    """Gray crops of varying size in three brightness groups (the class) with noise."""
    rng = np.random.default_rng(seed)
    classes = np.arange(n) % 3
    crops = [
        np.clip(
            rng.normal(60 + 70 * k, 25, (rng.integers(70, 100), rng.integers(60, 90))), 0, 255
        ).astype(np.uint8)
        for k in classes
    ]
    return crops, classes


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    """A tiny ResNet-18 whose last layer is fitted (logistic regression on pooled features) to
    tell three brightness groups apart, so its top-1 has margins like a trained model's (a
    random-weight head ties classes, which int8 rounding flips); its int8 export via the CLI."""
    from PIL import Image
    from sklearn.linear_model import LogisticRegression

    from tests.predict_fixtures import TINY_PREPROCESSING as pre
    from vcfnet.models.classifier import build_model
    from vcfnet.preprocess import normalize_batch, stack_crops

    tmp = tmp_path_factory.mktemp("int8")
    crops, classes = brightness_crops(0)
    torch.manual_seed(3)
    model = randomize_batchnorm(build_model(), seed=4).eval()
    pooled = {}
    hook = model.avgpool.register_forward_hook(lambda _m, _i, o: pooled.__setitem__("f", o))
    with torch.inference_mode():
        model(normalize_batch(stack_crops(crops, pre.image_size), pre))
    hook.remove()
    fit = LogisticRegression(max_iter=2000).fit(pooled["f"].flatten(1).numpy(), classes)
    with torch.no_grad():
        model.fc.weight.copy_(torch.from_numpy(fit.coef_).float())
        model.fc.bias.copy_(torch.from_numpy(fit.intercept_).float())
    run = make_run_dir(tmp / "run", model=model)
    (tmp / "calib" / "sub").mkdir(parents=True)  # searched recursively
    for i, crop in enumerate(crops):
        Image.fromarray(crop).save(tmp / "calib" / "sub" / f"{i:02d}.png")
    out = tmp / "model_int8.onnx"
    args = ["export", "--model", str(run), "--out", str(out), "--quantize", "int8"]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main([*args, "--calibration", str(tmp / "calib")]) == 0
    return run, out, printed.getvalue()


def test_int8_export_keeps_metadata_and_agrees_with_pytorch(quantized):
    from vcfnet.inference.export import agreement as probability_agreement

    run, out, printed = quantized
    assert "int8" in printed and "top-1 agreement" in printed and "without VNNI" in printed
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    ckpt = load_checkpoint(run / "checkpoints" / "best.pt")
    assert meta["vcfnet.quantized"] == "int8"
    assert meta["vcfnet.model_hash"] == ckpt.model_hash
    assert Preprocessing.from_dict(json.loads(meta["vcfnet.preprocessing"])) == ckpt.preprocessing
    model = vcfnet.load_model(out)
    assert model.info.runtime == "onnxruntime-int8"
    assert model.class_names == tuple(CLASS_NAMES)
    assert any("QuantizeLinear" in node.op_type for node in onnx.load(str(out)).graph.node)
    unseen = brightness_crops(1)[0]
    p_torch = vcfnet.load_model(run, device="cpu", precision="fp32").predict_crops(unseen)
    delta, agreement = probability_agreement(p_torch, model.predict_crops(unseen))
    assert agreement >= 0.9 and delta < 0.1


def test_quantize_needs_calibration(tmp_path, capsys):
    args = ["export", "--model", str(tmp_path), "--out", str(tmp_path / "m.onnx")]
    assert main([*args, "--quantize", "int8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--calibration" in err and len(err.splitlines()) == 1


def test_evaluate_runs_the_int8_model_like_the_checkpoint(quantized, tmp_path):
    """`vcfnet evaluate` takes the int8 ONNX export; its metrics match the .pt run's within
    int8 tolerance, and the report names the runtime."""
    import pandas as pd
    from PIL import Image

    from tests.factories import make_tiny_dataset

    run, out, _ = quantized
    data = make_tiny_dataset(tmp_path / "data", n_per_class=10, splits=("test",))
    manifest = pd.read_csv(data / "manifest.csv")
    crops, _ = brightness_crops(seed=1, n=len(manifest))
    brightness_of = {c: k for k, c in enumerate(CLASS_NAMES)}
    for row, crop_k in zip(manifest.itertuples(), range(len(manifest)), strict=True):
        crop = crops[3 * (crop_k // 3) + brightness_of[row.label]]  # a crop of the row's class
        Image.fromarray(crop).save(data / row.crop_path)
    metrics = {}
    for name, model in (("pt", run), ("int8", out)):
        assert (
            main(
                [
                    "evaluate",
                    "--model",
                    str(model),
                    "--data",
                    str(data),
                    "--out",
                    str(tmp_path / name),
                    "--precision",
                    "fp32",
                ]
            )
            == 0
        )
        table = pd.read_csv(tmp_path / name / "metrics.csv").set_index("class")
        metrics[name] = table
    overall_pt, overall_int8 = metrics["pt"].loc["overall"], metrics["int8"].loc["overall"]
    assert overall_pt["top1_accuracy"] > 0.8  # the fitted head separates the classes
    assert abs(overall_int8["top1_accuracy"] - overall_pt["top1_accuracy"]) <= 0.1
    assert abs(overall_int8["macro_auc"] - overall_pt["macro_auc"]) <= 0.05
    report = (tmp_path / "int8" / "report.md").read_text()
    assert "onnxruntime-int8" in report


def _with_first_weights(path, out, value: int):
    """A copy of the int8 export whose first convolution's int8 weights all equal ``value``."""
    from onnx import numpy_helper

    from vcfnet.inference.saturation import quantized_layers

    model = onnx.load(str(path))
    first = quantized_layers(model)[0]
    for init in model.graph.initializer:
        if np.array_equal(numpy_helper.to_array(init), first.weight_q.astype(np.int8)):
            full = np.full(first.weight_q.shape, value, dtype=np.int8)
            init.CopyFrom(numpy_helper.from_array(full, init.name))
    onnx.save(model, str(out))
    return out


def test_no_vnni_simulation_finds_saturation_where_weights_allow_it(quantized, tmp_path):
    from vcfnet.inference.saturation import simulate_saturation

    _, path, _ = quantized
    crops = brightness_crops(2, n=4)[0]
    estimate = simulate_saturation(path, crops)
    assert estimate.probabilities.shape == estimate.exact_probabilities.shape == (4, 3)
    assert 0 <= estimate.saturated_pair_fraction < 1
    assert len(estimate.saturated_pair_fraction_by_layer) == 21  # 20 convolutions and the fc
    on_this_cpu = vcfnet.load_model(path).predict_crops(crops)
    assert np.allclose(estimate.exact_probabilities, on_this_cpu, atol=0.02)
    large = simulate_saturation(_with_first_weights(path, tmp_path / "127.onnx", 127), crops)
    assert large.first_conv_output_fraction > 0.5
    assert np.abs(large.probabilities - large.exact_probabilities).max() > 0
    seven_bit = simulate_saturation(_with_first_weights(path, tmp_path / "64.onnx", 64), crops)
    assert seven_bit.first_conv_output_fraction == 0


def test_no_vnni_simulation_refuses_an_fp32_export(exported):
    from vcfnet.inference.saturation import simulate_saturation

    with pytest.raises(CheckpointError, match="--quantize int8"):
        simulate_saturation(exported[1], brightness_crops(2, n=2)[0])


def test_serving_int8_on_a_cpu_without_vnni_says_so(quantized, monkeypatch, caplog):
    import logging

    from vcfnet.inference import fastest

    _, path, _ = quantized
    monkeypatch.setattr(fastest, "int8_kernels_saturate", lambda: True)
    with caplog.at_level(logging.INFO, logger="vcfnet.inference.fastest"):
        assert fastest.load_fastest(path).backend == "onnx-int8"
    assert "no VNNI" in caplog.text
    caplog.clear()
    monkeypatch.setattr(fastest, "int8_kernels_saturate", lambda: False)
    with caplog.at_level(logging.INFO, logger="vcfnet.inference.fastest"):
        fastest.load_fastest(path)
    assert "no VNNI" not in caplog.text


def test_int8_sessions_ask_for_exact_kernels_only_on_cpus_without_vnni(quantized, monkeypatch):
    """onnxruntime's uint8 x uint8 kernels (no 16-bit saturation) where its default ones would
    saturate, so an int8 model answers as on a VNNI CPU; not elsewhere, where they are slower."""
    from vcfnet.inference import onnx_backend

    key = "session.x64quantprecision"
    monkeypatch.setattr(onnx_backend, "int8_kernels_saturate", lambda: True)
    options = vcfnet.load_model(quantized[1]).session.get_session_options()
    assert options.get_session_config_entry(key) == "1"
    monkeypatch.setattr(onnx_backend, "int8_kernels_saturate", lambda: False)
    options = vcfnet.load_model(quantized[1]).session.get_session_options()
    with pytest.raises(RuntimeError, match=key):
        options.get_session_config_entry(key)
