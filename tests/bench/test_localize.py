"""``vcfnet bench localize`` runs and names the machine (speed itself is measured on idle
machines, not in tests)."""

from __future__ import annotations

import json

from vcfnet.cli import main


def test_bench_localize_json(capsys):
    assert main(["bench", "localize", "--json", "--n", "2", "--size", "256x320"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["radiographs"] == 2 and result["target_s"] == 1.0
    assert result["s_per_radiograph_torch_p50"] > 0 and result["s_per_radiograph_onnx_p50"] > 0
    assert "cpu" in json.dumps(result["machine"]).lower()
