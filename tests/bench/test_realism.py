"""``vcfnet bench realism`` at a tiny scale: AUC with a CI, chance for one generator, transfer."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.factories import make_crop
from tests.predict_fixtures import make_run_dir
from vcfnet.bench import realism as bench
from vcfnet.cli import main
from vcfnet.data.manifest import read_manifest, write_manifest
from vcfnet.labels import CLASS_NAMES
from vcfnet.synth.cohort import SynthConfig, generate_cohort

#: a tiny fresh cohort: ~20 crops over the five sites in about a second
TINY = ["--scale", "0.005", "--size", "256x320", "--image-size", "96", "--workers", "2"]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_bench_realism_on_the_real_samples_gives_an_auc_with_ci_and_a_figure(
    real_samples, tmp_path, capsys
):
    assert (
        main(
            [
                "-q",
                "bench",
                "realism",
                "--json",
                "--real",
                str(real_samples),
                "--repeats",
                "2",
                *TINY,
                "--figure",
                str(tmp_path / "fig.png"),
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert res["real_crops"] == {"acute": 5, "chronic": 5, "pathologic": 5}
    assert sum(res["synthetic_crops"].values()) >= 15
    assert 0.0 <= res["auc_ci"][0] <= res["auc"] <= res["auc_ci"][1] <= 1.0
    assert res["auc_ci_method"] in ("delong", "newcombe")
    assert set(res["auc_per_class"]) == set(CLASS_NAMES)
    assert len(res["top_features"]) == 8 and all("d=" in v for v in res["top_features"].values())
    assert res["n_features"] > 30 and "machine" in res
    png = Path(res["figure"][0])
    assert png == tmp_path / "fig.png" and png.stat().st_size > 10_000
    # nothing of the real crops is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png", "fig.svg"]


def _split_by_radiograph(dataset_dirs: list[Path], out: Path, seed: int) -> tuple[Path, Path]:
    """Two folders of prepared datasets holding a random half of the radiographs each."""
    rng = np.random.default_rng(seed)
    halves = (out / "a", out / "b")
    for d in dataset_dirs:
        manifest = read_manifest(d)
        images = manifest["source_image"].unique()
        first = set(rng.choice(images, len(images) // 2, replace=False))
        in_first = manifest["source_image"].isin(first)
        for half, rows in zip(halves, (manifest[in_first], manifest[~in_first]), strict=True):
            shutil.copytree(d, half / d.name)
            write_manifest(rows, half / d.name)
    return halves


@pytest.mark.slow  # CI runs it (make test-all)
def test_bench_realism_is_near_chance_for_two_halves_of_one_cohort(tmp_path):
    # Two random halves of one cohort's radiographs: one distribution, and no matched design.
    # (Two cohorts of one preset have the same counts per site and class; leaving crops out of
    # one side then unbalances the training folds and pushes any cross-validated AUC below 0.5.)
    cohort = tmp_path / "cohort"
    generate_cohort(SynthConfig(out=cohort, scale=0.02, seed=1, size="256x320", workers=2))
    a, b = _split_by_radiograph(bench.prepare_cohort(cohort, tmp_path / "data", 2), tmp_path, 0)
    res = bench.run(_args("--real", str(a), "--synth", str(b), "--image-size", "96"))
    assert min(sum(res["real_crops"].values()), sum(res["synthetic_crops"].values())) >= 20
    assert 0.2 < res["auc"] < 0.8
    assert res["auc_ci"][0] < 0.5 < res["auc_ci"][1]


def test_bench_realism_transfer_evaluates_a_model_on_the_real_crops(real_samples, tmp_path):
    # synthetic side: an ImageFolder of plain constructed crops (clearly unlike the real ones)
    rng = np.random.default_rng(0)
    for label in CLASS_NAMES:
        folder = tmp_path / "fake" / label.capitalize()
        folder.mkdir(parents=True)
        for i in range(6):
            Image.fromarray(make_crop(label, 80, rng)).save(folder / f"{i}.png")
    run_dir = make_run_dir(tmp_path / "run")
    res = bench.run(
        _args(
            "--real",
            str(real_samples),
            "--synth",
            str(tmp_path / "fake"),
            "--image-size",
            "96",
            "--repeats",
            "2",
            "--transfer",
            str(run_dir),
            "--transfer-out",
            str(tmp_path / "ev"),
            "--device",
            "cpu",
            "--workers",
            "2",
        )
    )
    assert res["synthetic_crops"] == {"acute": 6, "chronic": 6, "pathologic": 6}
    assert res["auc"] > 0.9  # flat noise squares are easy to tell from radiographs
    assert res["transfer_n"] == 15 and res["transfer_chance_top1"] == pytest.approx(1 / 3)
    low, high = res["transfer_macro_auc_ci"]
    assert 0.0 <= low <= res["transfer_macro_auc"] <= high <= 1.0
    low, high = res["transfer_top1_ci"]
    assert 0.0 <= low <= res["transfer_top1"] <= high <= 1.0
    assert set(res["transfer_per_class"]) == set(CLASS_NAMES)
    assert (tmp_path / "ev" / "predictions.csv").is_file()


def test_bench_realism_rejects_a_folder_it_cannot_read(tmp_path):
    from vcfnet.errors import InputError

    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a prepared dataset"):
        bench.run(_args("--real", str(tmp_path / "empty"), "--synth", str(tmp_path / "empty")))


def test_bench_realism_without_the_default_samples_says_it_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("VCFNET_TEST_DATA", str(tmp_path))
    assert bench.default_real_dir() == tmp_path / "vcfnet-samples"
    assert "pass --real DIR" in bench.run(_args())["skipped"]
