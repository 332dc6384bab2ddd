import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import vcfnet
from tests.factories import reference_proba as predict_proba
from tests.factories import resnet18_gflop_per_image
from tests.io.dicom_fixtures import FAKE_IDENTITY, write_dicom
from tests.predict_fixtures import make_run_dir
from vcfnet.cli import main
from vcfnet.errors import CheckpointError, InputError
from vcfnet.io.voc import write_voc
from vcfnet.labels import CLASS_NAMES
from vcfnet.models.artifact import load_checkpoint
from vcfnet.models.classifier import build_model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("run"))


@pytest.fixture()
def radiograph():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (300, 240), dtype=np.uint8)


BOXES = [(40, 50, 120, 110), (60, 150, 170, 230)]


def test_python_api_matches_shared_inference_path(run_dir, radiograph):
    from vcfnet.preprocess import make_cache_crop

    model = vcfnet.load_model(run_dir, precision="fp32")
    result = model.predict(radiograph, BOXES)
    assert len(result.boxes) == 2
    ckpt = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    crops = [make_cache_crop(radiograph, b, ckpt.preprocessing) for b in BOXES]
    expected = predict_proba(ckpt.model, crops, ckpt.preprocessing)
    for box, row in zip(result.boxes, expected, strict=True):
        assert list(box.probabilities) == list(CLASS_NAMES)
        assert np.allclose(list(box.probabilities.values()), row, atol=1e-5)
        assert box.predicted == CLASS_NAMES[int(np.argmax(row))]
        assert box.probability == max(box.probabilities.values())
    assert result.model.hash == ckpt.model_hash and result.model.runtime == "pytorch"
    assert (
        result.model.name == f"{run_dir.name}-best" and result.model.version == vcfnet.__version__
    )


def test_bf16_close_to_fp32(run_dir, radiograph):
    from vcfnet.device import cpu_supports_bf16

    if not cpu_supports_bf16():
        pytest.skip("this CPU has no native bf16 (AVX-512 BF16 / AMX): bf16 path not tested")
    # bf16 asked for explicitly: "auto" is fp32 on CPUs without bf16 and would compare fp32 with fp32
    fast_model = vcfnet.load_model(
        run_dir / "checkpoints" / "best.pt", device="cpu", precision="bf16"
    )
    assert fast_model.precision.name == "bf16"
    assert vcfnet.load_model(run_dir, device="cpu").precision.name == "bf16"  # auto picks it
    fast = fast_model.predict(radiograph, BOXES)
    exact = vcfnet.load_model(run_dir, device="cpu", precision="fp32").predict(radiograph, BOXES)
    p_fast = np.array([list(b.probabilities.values()) for b in fast.boxes])
    p_exact = np.array([list(b.probabilities.values()) for b in exact.boxes])
    # bf16 rounding (8-bit mantissa) moves the probabilities by ~1e-4; fp32 with another memory
    # format or kernel only by ~1e-7, so a difference above 1e-5 shows bf16 really ran
    assert 1e-5 < np.abs(p_fast - p_exact).max() < 0.01
    assert np.allclose(p_fast.sum(axis=1), 1, atol=1e-5)


def test_cli_on_synthetic_dicom_with_labelimg_xml(run_dir, radiograph, tmp_path, capsys):
    dcm = write_dicom(tmp_path / "film.dcm", radiograph.astype(np.uint16) * 16, bits_stored=12)
    xml = write_voc(
        tmp_path / "labels.xml",
        "film.dcm",
        240,
        300,
        [("Acute-L1", BOXES[0]), ("Chronic-L2", BOXES[1])],
    )
    args = ["predict", "--model", str(run_dir), str(dcm), "--xml", str(xml), "--keep-names"]
    assert main(args) == 0
    (image,) = json.loads(capsys.readouterr().out)
    assert image["image"] == str(dcm)
    assert [b["label"] for b in image["boxes"]] == ["acute", "chronic"]
    assert [b["level"] for b in image["boxes"]] == ["L1", "L2"]
    assert image["model"]["hash"] == load_checkpoint(run_dir / "checkpoints" / "best.pt").model_hash
    # the patient is pseudonymised, never echoed
    assert image["patient_id"].startswith("p") and FAKE_IDENTITY["PatientID"] not in json.dumps(
        image
    )

    out = tmp_path / "predictions.csv"
    assert (
        main(
            [
                "predict",
                "--model",
                str(run_dir),
                str(dcm),
                "--xml",
                str(xml),
                "--format",
                "csv",
                "--out",
                str(out),
                "--site",
                "GZFPH",
            ]
        )
        == 0
    )
    df = pd.read_csv(out, keep_default_na=False)
    assert list(df.columns[:10]) == [
        "case_id",
        "patient_id",
        "site",
        "label",
        "pred",
        "p_acute",
        "p_chronic",
        "p_pathologic",
        "level",
        "crop_path",
    ]
    assert list(df.label) == ["acute", "chronic"] and set(df.site) == {"GZFPH"}
    assert np.allclose(df[["p_acute", "p_chronic", "p_pathologic"]].sum(axis=1), 1, atol=1e-5)
    assert df.case_id.is_unique


def test_cli_box_option_and_sibling_xml(run_dir, radiograph, tmp_path, capsys):
    png = tmp_path / "film.png"
    Image.fromarray(radiograph).save(png)
    args = ["predict", "--model", str(run_dir), str(png), "--precision", "fp32"]
    assert main([*args, "--box", "40,50,120,110"]) == 0
    (by_box,) = json.loads(capsys.readouterr().out)
    write_voc(tmp_path / "film.xml", "film.png", 240, 300, [("Acute-L1", BOXES[0])])
    assert main(args) == 0  # film.xml beside film.png
    (by_xml,) = json.loads(capsys.readouterr().out)
    assert by_box["boxes"][0]["probabilities"] == pytest.approx(by_xml["boxes"][0]["probabilities"])
    assert by_box["boxes"][0]["label"] == "" and by_xml["boxes"][0]["label"] == "acute"


def test_cli_matches_several_images_to_an_xml_folder(run_dir, radiograph, tmp_path, capsys):
    (tmp_path / "xml").mkdir()
    for name, label in (("a", "Acute-L1"), ("b", "Pathologic-T12")):
        Image.fromarray(radiograph).save(tmp_path / f"{name}.png")
        objects = [(label, BOXES[0]), ("Normal-L4", BOXES[1])]  # normal vertebrae are skipped
        write_voc(tmp_path / "xml" / f"{name}.xml", f"{name}.png", 240, 300, objects)
    images = [str(tmp_path / "b.png"), str(tmp_path / "a.png")]
    assert main(["predict", "--model", str(run_dir), *images, "--xml", str(tmp_path / "xml")]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["boxes"][0]["label"] for r in results] == ["pathologic", "acute"]
    assert [r["boxes"][0]["level"] for r in results] == ["T12", "L1"]
    assert all(len(r["boxes"]) == 1 for r in results)


def test_cli_on_real_sample_crops(run_dir, real_samples, tmp_path, capsys):
    out = tmp_path / "p.csv"
    crops = ["predict", "--model", str(run_dir), "--crops", "--keep-names"]
    assert main([*crops, str(real_samples), "--format", "csv", "--out", str(out)]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert len(df) == 15
    assert df.label.value_counts().to_dict() == {c: 5 for c in CLASS_NAMES}
    assert all(df.crop_path.str.endswith(".png"))
    # the evaluation report reads it as it reads vcfnet evaluate's predictions.csv
    assert main(["metrics", str(out), "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "metrics.csv").is_file()
    capsys.readouterr()
    assert main([*crops, str(real_samples / "Acute" / "3-Acute-1-82-F.png")]) == 0
    (one,) = json.loads(capsys.readouterr().out)
    assert one["boxes"][0]["box"] is None and one["boxes"][0]["label"] == "acute"


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda d, img: ["--model", str(d), str(img), "--box", "500,500,600,600"], "outside"),
        (lambda d, img: ["--model", str(d), str(img), "--box", "1,2,3"], "four numbers"),
        (lambda d, img: ["--model", str(d), str(img)], "no boxes"),
        (
            lambda d, img: [
                "--model",
                str(d),
                str(img.with_name("missing.png")),
                "--box",
                "1,1,9,9",
            ],
            "not found",
        ),
        (
            lambda d, img: [
                "--model",
                str(img.with_name("junk.txt")),
                str(img),
                "--box",
                "1,1,9,9",
            ],
            "not a",
        ),
    ],
)
def test_bad_input_gives_one_line_error(run_dir, radiograph, tmp_path, capsys, make_args, message):
    img = tmp_path / "film.png"
    Image.fromarray(radiograph).save(img)
    (tmp_path / "junk.txt").write_text("not a model")
    assert main(["predict", *make_args(run_dir, img)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_unreadable_image_and_foreign_class_names(run_dir, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    model = vcfnet.load_model(run_dir)
    with pytest.raises(InputError, match="cannot read image"):
        model.predict(tmp_path / "broken.png", [(1, 1, 5, 5)])
    # a two-class model cannot score an XML that names a third class
    two = make_run_dir(
        tmp_path / "two", model=build_model(num_classes=2), class_names=("acute", "chronic")
    )
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(tmp_path / "f.png")
    write_voc(tmp_path / "f.xml", "f.png", 100, 100, [("Pathologic-L3", (10, 10, 50, 50))])
    assert (
        main(
            [
                "predict",
                "--model",
                str(two),
                str(tmp_path / "f.png"),
                "--xml",
                str(tmp_path / "f.xml"),
            ]
        )
        == 2
    )


def test_crop_files_are_decoded_in_parallel_but_kept_in_order(run_dir, tmp_path):
    rng = np.random.default_rng(3)
    crops = [rng.integers(0, 256, (50 + 7 * i, 60), dtype=np.uint8) for i in range(9)]
    files = []
    for i, crop in enumerate(crops):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(crop).save(files[-1])
    model = vcfnet.load_model(run_dir, precision="fp32", batch_size=4)
    results = model.predict_crop_files(files)
    expected = model.predict_crops(crops)
    assert [r.source for r in results] == [str(f) for f in files]
    got = np.array([list(r.boxes[0].probabilities.values()) for r in results])
    assert np.allclose(got, expected, atol=1e-6)
    (tmp_path / "4.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(InputError, match=r"4\.png"):
        model.predict_crop_files(files)


def test_batchnorm_folding_keeps_outputs_and_layer_names():
    from vcfnet.inference.torch_backend import fold_batchnorm

    torch.manual_seed(0)
    model = build_model().eval()
    for m in model.modules():  # non-trivial running statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        folded = fold_batchnorm(model)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        assert torch.allclose(folded(x), expected, atol=1e-4, rtol=1e-4)
    assert hasattr(folded, "layer4")


def test_not_a_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="not a vcfnet checkpoint"):
        vcfnet.load_model(tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"best\.pt"):
        vcfnet.load_model(tmp_path)


@pytest.mark.slow  # ~5-10 s: a fresh interpreter imports torch
def test_load_time_in_a_fresh_process(run_dir):
    """load_model on a cold process (imports done; nothing loaded before), as a user's first call;
    in the test process, after the fixture and other tests loaded models, it would prove little."""
    import subprocess
    import sys

    code = (
        "import sys, time, vcfnet\n"
        "start = time.perf_counter()\n"
        "vcfnet.load_model(sys.argv[1])\n"
        "print(time.perf_counter() - start)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, check=True
    )
    assert float(done.stdout.split()[-1]) < 10  # generous: the CPU is shared; the bench reports it


@pytest.mark.slow  # the run is covered by tests/bench/test_peaks.py::test_bench_predict_fractions_and_targets_on_this_machine
def test_bench_predict_runs_at_tiny_size():
    import argparse

    from vcfnet.bench.predict import run as bench_predict

    results = bench_predict(argparse.Namespace(n=4, batch_size=2, latency_n=2, image_size=64))
    assert results["n_crops"] == 4
    for key in (
        "reference_img_s",
        "vcfnet_torch_img_s",
        "vcfnet_onnx_img_s",
        "load_s",
        "vcfnet_onnx_p50_ms",
        "vcfnet_onnx_int8_img_s",
        "vcfnet_onnx_int8_p50_speedup",
        "onnx_int8_model_only_img_s",
    ):
        assert results[key] > 0
    assert 0 <= results["onnx_int8_top1_agreement"] <= 1
    # the reported numbers agree with each other and with an independent FLOP count
    r = results
    for prefix in ("vcfnet_torch", "vcfnet_onnx", "vcfnet_onnx_int8"):
        assert r[f"{prefix}_speedup"] == pytest.approx(r[f"{prefix}_img_s"] / r["reference_img_s"])
        assert r[f"{prefix}_p50_speedup"] == pytest.approx(
            r["reference_p50_ms"] / r[f"{prefix}_p50_ms"]
        )
    assert r["onnx_int8_model_only_speedup"] == pytest.approx(
        r["onnx_int8_model_only_img_s"] / r["reference_img_s"]
    )
    gflop = resnet18_gflop_per_image(64, backward=False)
    assert r["forward_gflop_per_image"] == pytest.approx(gflop, rel=1e-6)
    assert r["target_8x_peak_fraction"] == pytest.approx(
        8 * r["reference_img_s"] * gflop / r["peak_int8_gop_s"], rel=1e-6
    )


def test_no_patient_data_in_any_predict_output(run_dir, radiograph, tmp_path, capsys):
    """Folder, file names and DICOM tags all carry patient data; by default none of it reaches
    the JSON, the CSV, the heatmap files or their names (issue 15)."""
    name, mrn = "DOE^JANE", "7654321"
    folder = tmp_path / f"{name}_{mrn}"
    folder.mkdir()
    dcm = write_dicom(
        folder / f"{mrn}_jane_doe.dcm", radiograph.astype(np.uint16) * 16, bits_stored=12
    )
    out = tmp_path / "out"
    common = ["predict", "--model", str(run_dir), str(dcm), "--box", "40,50,120,110"]
    for fmt in ("json", "csv"):
        args = [*common, "--format", fmt, "--out", str(out / f"p.{fmt}"), "--id-key", "k" * 16]
        assert main([*args, "--heatmap", str(out / f"hm-{fmt}")]) == 0
    capsys.readouterr()
    secrets = [name, mrn, "jane", "doe", str(folder), *map(str, FAKE_IDENTITY.values())]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) >= 6
    for path in files:
        text = path.read_bytes().decode("latin-1").lower() + path.name.lower()
        for secret in secrets:
            assert secret.lower() not in text, (secret, path.name)
    (image,) = json.loads((out / "p.json").read_text())
    assert image["image"].startswith("image-") and image["patient_id"].startswith("patient-")
    # the same key gives prepare's pseudonym for this patient at this site
    from vcfnet.data.pseudonym import pseudonym

    expected = pseudonym(b"k" * 16, "patient", "local", FAKE_IDENTITY["PatientID"])
    assert image["patient_id"] == expected
