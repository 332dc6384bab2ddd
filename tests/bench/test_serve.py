"""``vcfnet bench serve``: a tiny run against a real uvicorn server on loopback."""

import json
import math

import pytest

from tests.predict_fixtures import make_run_dir
from vcfnet.bench.serve import KINDS, Stats, report
from vcfnet.cli import main
from vcfnet.errors import ConfigError

TINY = ["--size", "256x320", "--radiographs", "2", "--single-n", "2", "--timeout", "30"]


def _bench_json(capsys, *argv: str) -> dict:
    assert main(["bench", "serve", *argv, *TINY, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _check_consistent(r: dict) -> None:
    assert r["host"] == "127.0.0.1"
    assert r["server_stopped_cleanly"], r["server_exit_code"]
    assert r["errors"] == 0 and r["single_errors"] == 0, r["error_samples"]
    assert r["target_errors_met"] is True
    assert r["requests"] == r["successes"] + r["errors"] == sum(r["requests_by_kind"].values())
    assert r["errors"] == sum(r["errors_by_kind"].values())
    # every cycle makes one request of each kind; no error, so all of them
    assert all(r["requests_by_kind"][kind] == r["cycles"] for kind in KINDS)
    assert r["analyses"] == r["cycles"] >= r["users"]
    assert r["single_requests"] == len(KINDS) * r["single_cycles"] == len(KINDS) * 2
    for prefix in ("", "single_"):
        for kind in (*KINDS, "upload_to_analysis"):
            p50, p95 = r[f"{prefix}{kind}_p50_ms"], r[f"{prefix}{kind}_p95_ms"]
            assert 0 < p50 <= p95 < 30_000, (prefix, kind, p50, p95)
        # the sum of a cycle's three requests is above each of its medians
        assert r[f"{prefix}upload_to_analysis_p50_ms"] > r[f"{prefix}analyse_p50_ms"]
    assert r["requests_per_s"] == pytest.approx(r["requests"] / r["duration_s"])
    assert r["analyse_p95_vs_single"] == pytest.approx(
        r["analyse_p95_ms"] / r["single_analyse_p50_ms"]
    )
    assert r["target_analyse_met"] == (r["target_analyse_ratio"] >= 1)
    assert r["target_page_met"] == (r["target_page_ratio"] >= 1)
    assert r["server_cpu_s"] > 0
    assert r["machine"]["cpu"]


@pytest.mark.slow  # CI runs it (make test-all)
def test_bench_serve_default_int8_onnx_model(capsys):
    r = _bench_json(
        capsys, "--users", "2", "--seconds", "3", "--think", "0.2", "--image-size", "64"
    )
    _check_consistent(r)
    assert r["users"] == 2 and r["model"].startswith("int8 ONNX")
    assert r["seconds"] <= r["duration_s"] < r["seconds"] + 30


@pytest.mark.slow  # CI runs it (make test-all)
def test_bench_serve_pytorch_model_and_cycle_bound(capsys, tmp_path):
    run_dir = make_run_dir(tmp_path / "run")  # PyTorch: the analyses draw Grad-CAM heatmaps
    r = _bench_json(
        capsys,
        *("--users", "1", "--seconds", "30", "--think", "0", "--max-cycles", "2"),
        *("--model", str(run_dir)),
    )
    _check_consistent(r)
    assert r["cycles"] == 2  # bounded by the count long before the time
    assert r["duration_s"] < 30


def test_report_counts_errors_and_targets():
    single, load = Stats(), Stats()
    for kind in KINDS:
        single.ms[kind] = [10.0, 10.0]
        single.requests[kind] = 2
        load.ms[kind] = [10.0, 20.0, 30.0]
        load.requests[kind] = 4
        load.errors[kind] = 1
    single.upload_to_analysis_ms = [30.0, 30.0]
    r = report({"single": single, "load": load, "duration_s": 2.0})
    assert r["requests"] == 16 and r["successes"] == 12 and r["errors"] == 4
    assert r["requests_per_s"] == 8.0
    assert r["target_errors_met"] is False
    assert r["analyse_p95_ms"] == pytest.approx(29.0)
    assert r["analyse_p95_vs_single"] == pytest.approx(2.9)
    assert r["target_analyse_met"] is False and r["target_analyse_ratio"] < 1
    assert r["target_page_met"] is True and r["target_page_ratio"] == pytest.approx(100 / 29)
    assert math.isnan(r["upload_to_analysis_p50_ms"])  # no complete cycle under load


@pytest.mark.parametrize(
    "argv",
    [["--users", "0"], ["--users", "100000"], ["--seconds", "0"], ["--seconds", "1e9"]],
)
def test_bench_serve_options_are_bounded(argv):
    from vcfnet.bench import serve

    parser = __import__("argparse").ArgumentParser()
    serve.add_arguments(parser)
    with pytest.raises(ConfigError):
        serve.run(parser.parse_args(argv))
