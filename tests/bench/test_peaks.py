import json
import math
import os

import pytest
import torch
from torchvision.models import ResNet18_Weights

from vcfnet.bench.peaks import model_gflop, onnx_peak_gop_s, peak_gflop_s
from vcfnet.cli import main
from vcfnet.device import cpu_supports_bf16
from vcfnet.models.classifier import build_model

#: peaks measured quickly: fine for tiny models, which run far below them
QUICK_PEAKS = ["--peak-repeats", "1", "--peak-seconds", "0"]


def test_model_gflop_matches_torchvision_published_count():
    # torchvision lists ResNet-18 at 224 px as 1.814 G multiply-adds ("_ops"); 1 MAC = 2 FLOP
    published = 2 * ResNet18_Weights.IMAGENET1K_V1.meta["_ops"]
    forward = model_gflop(build_model(), 224, backward=False)
    assert forward == pytest.approx(published, rel=0.01)
    # backward: gradients of inputs and weights (~2x forward), none for the image itself
    assert 2.5 * forward < model_gflop(build_model(), 224, backward=True) < 3 * forward


def test_torch_peaks_are_rates_and_bf16_only_where_the_cpu_has_it():
    assert peak_gflop_s("fp32", repeats=1, seconds=0) > 0
    bf16 = peak_gflop_s("bf16", repeats=1, seconds=0)
    assert bf16 > 0 if cpu_supports_bf16() else math.isnan(bf16)
    with pytest.raises(ValueError):
        peak_gflop_s("int8")  # the int8 path runs in onnxruntime: its peak is onnx_peak_gop_s


@pytest.mark.parametrize("dtype", ["fp32", "int8"])
def test_onnxruntime_peaks_are_rates(dtype):
    assert onnx_peak_gop_s(dtype, repeats=1, seconds=0) > 0


def _bench_json(capsys, *argv: str) -> dict:
    assert main(["bench", *argv, "--json", *QUICK_PEAKS]) == 0
    return json.loads(capsys.readouterr().out)


def _check_fractions(results: dict) -> list[str]:
    """Every measured ``*_peak_fraction`` in (0, 1.1]; ``target_*`` keys are requirements."""
    fractions = {
        k: v
        for k, v in results.items()
        if k.endswith("_peak_fraction") and not k.startswith("target_")
    }
    assert fractions
    for key, value in fractions.items():
        assert 0 < value <= 1.1, (key, value, results)
    return sorted(fractions)


@pytest.mark.slow  # CI runs it (make test-all)
def test_bench_predict_fractions_and_targets_on_this_machine(capsys):
    results = _bench_json(
        capsys, "predict", "--n", "2", "--batch-size", "2", "--latency-n", "1", "--image-size", "32"
    )
    fractions = _check_fractions(results)
    for path in ("reference", "vcfnet_torch", "vcfnet_onnx", "vcfnet_onnx_int8"):
        assert f"{path}_peak_fraction" in fractions
    assert "vcfnet_onnx_int8_model_only_peak_fraction" in fractions
    assert results["best_path"].startswith("vcfnet_")
    assert isinstance(results["target_peak_fraction_met"], bool)
    assert results["target_peak_fraction_met"] == (results["target_peak_fraction_ratio"] >= 1)
    assert results["target_p50_met"] == (results["target_p50_ratio"] >= 1)
    assert results["machine"]["cpu"]


@pytest.mark.slow  # CI runs it (make test-all)
def test_bench_train_fractions_and_target_on_this_machine(capsys):
    results = _bench_json(
        capsys,
        "train",
        "--n-images",
        "8",
        "--steps",
        "1",
        "--image-size",
        "32",
        "--batch-size",
        "4",
    )
    assert _check_fractions(results) == ["reference_peak_fraction", "vcfnet_peak_fraction"]
    assert results["ratio_at_peak"] > 0
    assert results["speedup_vs_allowed"] == pytest.approx(
        results["ratio"] / results["ratio_at_peak"]
    )
    assert results["target_speedup_met"] == (results["target_speedup_ratio"] >= 1)


#: the most one core does per cycle: two AVX-512 FMA units in fp32, AMX tiles in bf16 and int8
OPS_PER_CYCLE = {"fp32": 64, "bf16": 1024, "int8": 2048}


def _plausible(dtype: str, rate: float) -> bool:
    """Above 0.1 G(FL)OP/s and below every core at 6 GHz doing the most its units can: a slip in
    units (FLOP/s, seconds) or in the operation count fails."""
    cores = max(os.cpu_count() or 1, torch.get_num_threads())
    return 0.1 < rate < cores * 6.0 * OPS_PER_CYCLE[dtype]


def test_peaks_are_plausible_rates():
    assert _plausible("fp32", peak_gflop_s("fp32", repeats=1, seconds=0))
    if cpu_supports_bf16():
        assert _plausible("bf16", peak_gflop_s("bf16", repeats=1, seconds=0))
    for dtype in ("fp32", "int8"):
        assert _plausible(dtype, onnx_peak_gop_s(dtype, repeats=1, seconds=0))


def test_bench_json_names_the_machine(capsys):
    from vcfnet.cpu import CPU_FLAGS

    assert main(["bench", "metrics", "--json", "--n-cases", "60", "--n-boot", "100"]) == 0
    machine = json.loads(capsys.readouterr().out)["machine"]
    assert machine["cpu"] and machine["cores"] >= 1 and set(machine["cpu_flags"]) == set(CPU_FLAGS)
    assert isinstance(machine["onnx_int8_exact_kernels"], bool)
    assert machine["torch"].startswith("2.") and machine["onnxruntime"]
