import os

import pytest
import torch
from torchvision.models import ResNet18_Weights

from vcfnet.bench.peaks import model_gflop, peak_gflop_s
from vcfnet.models.classifier import build_model


def test_model_gflop_matches_torchvision_published_count():
    # torchvision lists ResNet-18 at 224 px as 1.814 G multiply-adds ("_ops"); 1 MAC = 2 FLOP
    published = 2 * ResNet18_Weights.IMAGENET1K_V1.meta["_ops"]
    forward = model_gflop(build_model(), 224, backward=False)
    assert forward == pytest.approx(published, rel=0.01)
    # backward: gradients of inputs and weights (~2x forward), none for the image itself
    assert 2.5 * forward < model_gflop(build_model(), 224, backward=True) < 3 * forward


#: the most one core does per cycle: two AVX-512 FMA units in fp32, AMX tiles in bf16 and int8
OPS_PER_CYCLE = {"fp32": 64, "bf16": 1024, "int8": 2048}


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "int8"])
def test_peak_is_a_rate(dtype):
    """A rate in G(FL)OP/s this machine can reach: above 0.1 (even emulated bf16 on two threads),
    below every core at 6 GHz doing the most its units can; a slip in units (FLOP/s, seconds) or
    in the operation count fails."""
    cores = max(os.cpu_count() or 1, torch.get_num_threads())
    assert 0.1 < peak_gflop_s(dtype, repeats=1) < cores * 6.0 * OPS_PER_CYCLE[dtype]


def test_bench_json_names_the_machine(capsys):
    import json

    from vcfnet.bench.peaks import CPU_FLAGS
    from vcfnet.cli import main

    assert main(["bench", "metrics", "--json", "--n-cases", "60", "--n-boot", "100"]) == 0
    machine = json.loads(capsys.readouterr().out)["machine"]
    assert machine["cpu"] and machine["cores"] >= 1 and set(machine["cpu_flags"]) == set(CPU_FLAGS)
    assert machine["torch"].startswith("2.") and machine["onnxruntime"]
