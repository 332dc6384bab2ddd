"""``vcfnet bench realism``: how far synthetic crops are from real ones (issue 17, "measure first").

(a) A real-vs-synthetic classifier (logistic regression on standardised, interpretable image
statistics of the crops after the model's preprocessing; :mod:`vcfnet.synth.realism`),
cross-validated by image: ROC AUC with a CI (0.5 = indistinguishable) and the features that give
synthetic crops away most (standardised mean differences). (b) With ``--transfer RUN_DIR``: a
trained model evaluated on the real crops (macro AUC and top-1 with CIs, per class). (c) With
``--figure PATH``: per class, real and synthetic crops side by side with their mean radial power
spectra and intensity histograms.

The real crops are only read and measured; nothing of them is written except, with
``--transfer``, the prepared copy that ``vcfnet evaluate`` needs, in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vcfnet.errors import InputError
from vcfnet.labels import CLASS_NAMES
from vcfnet.preprocess import DEFAULT_IMAGE_SIZE
from vcfnet.synth.cohort import DEFAULT_SIZE

log = logging.getLogger(__name__)

#: the pseudonym key of the throw-away datasets this bench prepares (never the user's key file)
BENCH_ID_KEY = "vcfnet-bench-realism"
REAL_COLOR, SYNTH_COLOR = "#0072B2", "#D55E00"


def default_real_dir() -> Path:
    """The shared real sample crops: ``$VCFNET_TEST_DATA/vcfnet-samples``, else
    ``../shared/data/vcfnet-samples`` beside the repository (as tests/conftest.py resolves them)."""
    base = os.environ.get("VCFNET_TEST_DATA")
    root = Path(base) if base else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return root / "vcfnet-samples"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--real",
        type=Path,
        metavar="DIR",
        help="real crops: an ImageFolder (Acute/, Chronic/, Pathologic/) or a prepared dataset "
        "(default: the shared samples, ../shared/data/vcfnet-samples or $VCFNET_TEST_DATA)",
    )
    parser.add_argument(
        "--synth",
        type=Path,
        metavar="DIR",
        help="synthetic crops: a 'vcfnet synth' cohort, prepared dataset(s) or an ImageFolder "
        "(default: a fresh cohort at --scale, prepared in a temporary folder)",
    )
    parser.add_argument("--scale", type=float, default=0.05, help="scale of the fresh cohort")
    parser.add_argument("--seed", type=int, default=0, help="cohort and cross-validation seed")
    parser.add_argument(
        "--size", default=DEFAULT_SIZE, metavar="WxH", help="radiograph size of the fresh cohort"
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=DEFAULT_IMAGE_SIZE,
        metavar="PX",
        help="square size the crops are resized to before measuring (the model's input)",
    )
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    parser.add_argument("--repeats", type=int, default=20, help="cross-validation repeats")
    parser.add_argument("--top", type=int, default=8, help="features listed as giveaways")
    parser.add_argument("--workers", type=int, default=0, help="processes (0 = all cores)")
    parser.add_argument(
        "--transfer",
        type=Path,
        metavar="RUN_DIR",
        help="also evaluate this model on the real crops",
    )
    parser.add_argument(
        "--transfer-out",
        type=Path,
        metavar="DIR",
        help="keep the transfer evaluation report here (default: a temporary folder)",
    )
    parser.add_argument("--device", default="auto", help="device of --transfer (auto | cpu | cuda)")
    parser.add_argument(
        "--figure", type=Path, metavar="PATH", help="write the per-class figure (PATH.png + .svg)"
    )


@dataclass
class CropSet:
    """Crops (uint8, any size) with their labels; ``dataset_dirs``: prepared datasets they came from."""

    source: str
    crops: list[np.ndarray] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    #: the radiograph each crop was cut from (prepared: its source image; ImageFolder: the file)
    groups: list[str] = field(default_factory=list)
    dataset_dirs: list[Path] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {c: self.labels.count(c) for c in CLASS_NAMES}


def _read_gray(path: Path) -> np.ndarray:
    from PIL import Image

    from vcfnet.preprocess import to_gray_uint8

    with Image.open(path) as im:
        return to_gray_uint8(np.asarray(im))


def _read_prepared(dataset_dirs: list[Path], source: str) -> CropSet:
    from vcfnet.data.manifest import read_manifest

    out = CropSet(source, dataset_dirs=list(dataset_dirs))
    for d in dataset_dirs:
        manifest = read_manifest(d)
        for crop_path, label, image in zip(
            manifest["crop_path"], manifest["label"], manifest["source_image"], strict=True
        ):
            out.crops.append(_read_gray(d / crop_path))
            out.labels.append(str(label))
            out.groups.append(f"{d}/{image}")
    return out


def _class_folders(path: Path) -> dict[str, Path]:
    from vcfnet.labels import parse_object_name

    folders = {}
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            folders[parse_object_name(sub.name).label] = sub
        except InputError:
            continue
    return folders


def prepare_cohort(cohort: Path, work: Path, workers: int = 0) -> list[Path]:
    """Prepare every site of a ``vcfnet synth`` cohort (``--split none``) under ``work``."""
    from vcfnet.data.config import PrepareConfig
    from vcfnet.data.prepare import prepare_dataset

    sites = json.loads((cohort / "cohort.json").read_text())["sites"]
    dirs = []
    for name in sites:
        site_dir = cohort / name
        cfg = PrepareConfig(
            images=site_dir / "images",
            annotations=site_dir / "annotations",
            patients=site_dir / "patients.csv",
            site=name,
            split="none",
            out=work / name,
            workers=workers,
            id_key=BENCH_ID_KEY,
        )
        dirs.append(prepare_dataset(cfg).dataset_dir)
    return dirs


def prepare_imagefolder(folder: Path, out: Path, workers: int = 0, site: str = "REAL") -> Path:
    """``vcfnet prepare --imagefolder FOLDER --split none --out OUT`` (for ``vcfnet evaluate``)."""
    from vcfnet.data.config import PrepareConfig
    from vcfnet.data.prepare import prepare_dataset

    cfg = PrepareConfig(
        imagefolder=folder, split="none", out=out, site=site, workers=workers, id_key=BENCH_ID_KEY
    )
    return prepare_dataset(cfg).dataset_dir


def load_crop_set(path: Path, work: Path, workers: int = 0) -> CropSet:
    """Crops of a prepared dataset, a folder of prepared datasets, a synth cohort or an ImageFolder."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: folder not found")
    if (path / "manifest.csv").is_file():
        return _read_prepared([path], str(path))
    if (path / "cohort.json").is_file():
        return _read_prepared(prepare_cohort(path, work, workers), str(path))
    folders = _class_folders(path)
    if folders:
        from vcfnet.io.images import find_images

        out = CropSet(str(path))
        for label, folder in folders.items():
            for image in find_images(folder):
                out.crops.append(_read_gray(image))
                out.labels.append(label)
                out.groups.append(str(image))
        return out
    prepared = sorted(p.parent for p in path.glob("*/manifest.csv"))
    if prepared:
        return _read_prepared(prepared, str(path))
    raise InputError(
        f"{path}: not a prepared dataset, a folder of them, a 'vcfnet synth' cohort or an "
        "ImageFolder (Acute/, Chronic/, Pathologic/)"
    )


def _fmt_auc(res) -> str:
    return f"{res.auc:.3f} [{res.low:.3f}, {res.high:.3f}]"


def transfer_metrics(
    model: Path,
    dataset_dirs: list[Path],
    out_dir: Path,
    *,
    device: str = "auto",
    seed: int = 0,
) -> dict:
    """Evaluate ``model`` on the prepared real crops (all splits, pooled): macro AUC and top-1."""
    import pandas as pd

    from vcfnet.evaluation.evaluate import evaluate_model
    from vcfnet.evaluation.predictions import PROB_COLUMNS, label_indices
    from vcfnet.stats.classification import classification_table
    from vcfnet.stats.proportions import wilson_ci

    evaluate_model(model, dataset_dirs, out_dir, split="all", device=device, seed=seed)
    preds = pd.read_csv(out_dir / "predictions.csv")
    y_true, y_pred = label_indices(preds["label"]), label_indices(preds["pred"])
    table = classification_table(
        y_true,
        y_pred,
        preds.loc[:, list(PROB_COLUMNS)].to_numpy(float),
        CLASS_NAMES,
        ci="auto",
        groups=preds["patient_id"].to_numpy(),
        rng=seed,
    ).set_index("class")
    correct, n = int((y_true == y_pred).sum()), len(preds)
    low, high = wilson_ci(correct, n)
    overall = table.loc["overall"]
    out = {
        "transfer_n": n,
        "transfer_macro_auc": float(overall["auc"]),
        "transfer_macro_auc_ci": [float(overall["auc_ci_low"]), float(overall["auc_ci_high"])],
        "transfer_top1": correct / n,
        "transfer_top1_ci": [low, high],
        "transfer_chance_top1": float(preds["label"].value_counts(normalize=True).max()),
        "transfer_per_class": {
            c: (
                f"AUC {table.loc[c, 'auc']:.3f} [{table.loc[c, 'auc_ci_low']:.3f}, "
                f"{table.loc[c, 'auc_ci_high']:.3f}], sensitivity {table.loc[c, 'sensitivity']:.2f}"
            )
            for c in CLASS_NAMES
        },
        "transfer_report": str(out_dir),
    }
    return out


def realism_figure(
    real: CropSet,
    synth: CropSet,
    stem: Path,
    *,
    n_show: int = 3,
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    subtitle: str = "",
) -> list[Path]:
    """Per class: ``n_show`` real and synthetic crops (as the model sees them), their mean radial
    power spectra (each normalised to unit total power) and mean intensity histograms."""
    import matplotlib.pyplot as plt

    from vcfnet.report.figures import STYLE, save_figure
    from vcfnet.synth.realism import intensity_histogram, preprocess_crop, radial_power_spectrum

    rng = np.random.default_rng(seed)
    with plt.rc_context({**STYLE, "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 8.5}):
        fig = plt.figure(figsize=(13, 2.3 * len(CLASS_NAMES) + 0.5), layout="constrained")
        grid = fig.add_gridspec(
            len(CLASS_NAMES), 2 * n_show + 2, width_ratios=[1] * (2 * n_show) + [1.7, 1.7]
        )
        for row, label in enumerate(CLASS_NAMES):
            spectra, hists = {}, {}
            for side, cs, color in (("real", real, REAL_COLOR), ("synthetic", synth, SYNTH_COLOR)):
                idx = [i for i, lab in enumerate(cs.labels) if lab == label]
                images = [preprocess_crop(cs.crops[i], image_size=image_size) for i in idx]
                shown = (
                    sorted(rng.choice(len(images), n_show, replace=False))
                    if len(images) > n_show
                    else range(len(images))
                )
                offset = 0 if side == "real" else n_show
                for j in range(n_show):
                    ax = fig.add_subplot(grid[row, offset + j])
                    ax.set_xticks([])
                    ax.set_yticks([])
                    for spine in ax.spines.values():
                        spine.set_color(color)
                        spine.set_linewidth(2)
                    if j < len(shown):
                        ax.imshow(images[list(shown)[j]], cmap="gray", vmin=0, vmax=1)
                    if j == 0 and side == "real":
                        ax.set_ylabel(label, fontsize=10)
                    if row == 0 and j == 0:
                        ax.set_title(f"{side} (n={len(images)})", loc="left", color=color)
                if images:
                    ps = []
                    for im in images:
                        freq, p = radial_power_spectrum(im)
                        ps.append(p / p.sum())
                    spectra[side] = (freq, np.exp(np.log(np.maximum(ps, 1e-30)).mean(axis=0)))
                    hists[side] = np.mean([intensity_histogram(im) for im in images], axis=0)
            ax_ps = fig.add_subplot(grid[row, 2 * n_show])
            ax_h = fig.add_subplot(grid[row, 2 * n_show + 1])
            for side, color in (("real", REAL_COLOR), ("synthetic", SYNTH_COLOR)):
                if side in spectra:
                    ax_ps.loglog(*spectra[side], color=color, label=side)
                    h = hists[side]
                    centres = (np.arange(h.size) + 0.5) / h.size
                    ax_h.step(centres, h, where="mid", color=color, label=side)
            ax_ps.set_xlabel("cycles / pixel")
            ax_ps.set_ylabel("power (normalised)")
            ax_h.set_xlabel("intensity")
            ax_h.set_ylabel("fraction of pixels")
            ax_h.set_yticks([])
            if row == 0:
                ax_ps.set_title("mean radial power spectrum")
                ax_h.set_title("mean intensity histogram")
                ax_h.legend(frameon=False, fontsize=8)
        title = "Real vs synthetic crops after the model's preprocessing"
        fig.suptitle(f"{title}\n{subtitle}" if subtitle else title, fontsize=10)
        return save_figure(fig, stem)


def run(args: argparse.Namespace) -> dict:
    """Real-vs-synthetic AUC with CI and giveaway features; optionally transfer and a figure."""
    from vcfnet.synth.cohort import SynthConfig, generate_cohort
    from vcfnet.synth.realism import (
        classify_real_vs_synthetic,
        feature_matrix,
        standardized_mean_differences,
    )

    t0 = time.perf_counter()
    seed = int(getattr(args, "seed", 0))
    workers = int(getattr(args, "workers", 0))
    image_size = int(getattr(args, "image_size", DEFAULT_IMAGE_SIZE))
    real_dir = Path(getattr(args, "real", None) or default_real_dir())
    if not getattr(args, "real", None) and not real_dir.is_dir():
        # the default sample crops are absent (e.g. 'bench all' elsewhere): say so, don't fail
        return {"skipped": f"real crops not found at {real_dir}; pass --real DIR"}
    with tempfile.TemporaryDirectory(prefix="vcfnet-realism-") as tmp_name:
        tmp = Path(tmp_name)
        real = load_crop_set(real_dir, tmp / "real-data", workers)
        synth_arg = getattr(args, "synth", None)
        if synth_arg:
            synth = load_crop_set(Path(synth_arg), tmp / "synth-data", workers)
            synth_source = str(synth_arg)
        else:
            scale = float(getattr(args, "scale", 0.05))
            size = getattr(args, "size", DEFAULT_SIZE)
            cfg = SynthConfig(
                out=tmp / "cohort", scale=scale, seed=seed, size=size, workers=workers
            )
            generate_cohort(cfg)
            synth = _read_prepared(prepare_cohort(cfg.out, tmp / "synth-data", workers), "")
            synth_source = f"fresh 'vcfnet synth --scale {scale:g} --seed {seed} --size {size}'"
        t_data = time.perf_counter()
        if len(real.crops) < 2 or len(synth.crops) < 2:
            raise InputError("need at least 2 real and 2 synthetic crops")

        x_real = feature_matrix(real.crops, image_size=image_size)
        x_synth = feature_matrix(synth.crops, image_size=image_size)
        clf = classify_real_vs_synthetic(
            x_real.values,
            x_synth.values,
            n_splits=int(getattr(args, "folds", 5)),
            n_repeats=int(getattr(args, "repeats", 20)),
            seed=seed,
            real_groups=real.groups,
            synthetic_groups=synth.groups,
        )
        smd = standardized_mean_differences(x_real.values, x_synth.values)
        order = np.argsort(-np.abs(smd))[: int(getattr(args, "top", 8))]
        names = x_real.names
        top = {
            names[i]: (
                f"d={smd[i]:+.2f} (real {x_real.values[:, i].mean():.3g}, "
                f"synthetic {x_synth.values[:, i].mean():.3g})"
            )
            for i in order
        }
        real_labels, synth_labels = np.array(real.labels), np.array(synth.labels)
        per_class = {}
        for c in CLASS_NAMES:
            if (real_labels == c).any() and (synth_labels == c).any():
                per_class[c] = _fmt_auc(clf.subset_auc(synth_labels == c, real_labels == c))
        results = {
            "real": str(real_dir),
            "real_crops": real.counts(),
            "synthetic": synth_source,
            "synthetic_crops": synth.counts(),
            "n_features": len(names),
            "classifier": (
                f"logistic regression on standardised features, stratified {clf.n_splits}-fold "
                f"by radiograph x {clf.n_repeats} repeats, AUC over pairs tested together"
            ),
            "auc": clf.auc.auc,
            "auc_ci": [clf.auc.low, clf.auc.high],
            "auc_ci_method": clf.auc.method,
            "auc_repeats_min_max": [float(clf.repeat_aucs.min()), float(clf.repeat_aucs.max())],
            "auc_per_class": per_class,
            "top_features": top,
        }
        transfer = getattr(args, "transfer", None)
        if transfer:
            dirs = real.dataset_dirs or [prepare_imagefolder(real_dir, tmp / "real-data", workers)]
            out = Path(getattr(args, "transfer_out", None) or tmp / "transfer")
            results.update(
                transfer_metrics(
                    Path(transfer), dirs, out, device=getattr(args, "device", "auto"), seed=seed
                )
            )
            if not getattr(args, "transfer_out", None):
                results.pop("transfer_report")
        figure = getattr(args, "figure", None)
        if figure:
            stem = Path(figure)
            stem = stem.with_suffix("") if stem.suffix in (".png", ".svg") else stem
            subtitle = f"real-vs-synthetic classifier AUC {_fmt_auc(clf.auc)}"
            paths = realism_figure(
                real, synth, stem, image_size=image_size, seed=seed, subtitle=subtitle
            )
            results["figure"] = [str(p) for p in paths]
    results["seconds_data"] = t_data - t0
    results["seconds"] = time.perf_counter() - t0
    return results
