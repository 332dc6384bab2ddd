"""``vcfnet predict`` (a model's opinion on new films or crops, with heatmaps) and ``vcfnet
export`` (ONNX, fp32 or int8)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
from tqdm import tqdm

from vcfnet.config import add_config_arguments, resolve_config, save_command_config
from vcfnet.data.pseudonym import OutputNames, resolve_id_key
from vcfnet.errors import CheckpointError, ConfigError
from vcfnet.evaluation.predictions import prediction_rows
from vcfnet.inference.explain import explain_crop_files, explain_image
from vcfnet.inference.export import (
    agreement,
    calibration_crops,
    export_onnx,
    onnx_parity,
    quantize_onnx,
)
from vcfnet.inference.inputs import BoxedImage, find_crop_files, name_of, plan_images
from vcfnet.inference.loading import load_model
from vcfnet.inference.predictor import Predictor
from vcfnet.inference.results import ImagePrediction
from vcfnet.inference.saturation import simulate_saturation
from vcfnet.io.atomic import atomic_write_text
from vcfnet.io.tables import neutralise_formulas

log = logging.getLogger(__name__)


@dataclass
class ExportConfig:
    """Options of ``vcfnet export``."""

    model: Path | None = field(
        default=None, metadata={"help": "RUN_DIR or .pt checkpoint", "metavar": "RUN_DIR"}
    )
    format: Literal["onnx"] = field(default="onnx", metadata={"help": "export format"})
    out: Path | None = field(
        default=None, metadata={"help": "output file, e.g. model.onnx", "metavar": "FILE"}
    )
    opset: int = field(default=18, metadata={"help": "ONNX opset (>= 17)"})
    check: bool = field(
        default=True, metadata={"help": "compare the export with PyTorch on random crops"}
    )
    quantize: Literal["none", "int8"] = field(
        default="none", metadata={"help": "int8: static int8 quantization (faster on CPU)"}
    )
    calibration: Path | None = field(
        default=None,
        metadata={
            "help": "crops for --quantize int8: DATASET_DIR or a folder of crop images (first 64)",
            "metavar": "PATH",
        },
    )


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, ExportConfig)


def run_export(args: argparse.Namespace) -> int:
    cfg = resolve_config(ExportConfig, args)
    if cfg.model is None or cfg.out is None:
        raise ConfigError("export needs --model RUN_DIR and --out FILE.onnx")
    if cfg.opset < 17:
        raise ConfigError(f"--opset {cfg.opset} is too old; use 17 or newer")
    if cfg.quantize == "int8":
        return _export_int8(cfg)
    out = export_onnx(cfg.model, cfg.out, opset=cfg.opset)
    message = f"wrote {out}"
    if cfg.check:
        delta = onnx_parity(cfg.model, out, n=8)
        message += f" (max |Δp| vs PyTorch fp32 on 8 random crops: {delta:.2e})"
        if delta > 1e-3:
            raise CheckpointError(
                f"{out}: ONNX output differs from PyTorch by {delta:.2e} (> 1e-3)"
            )
    save_command_config(cfg, cfg.out)
    print(message)
    return 0


#: calibration crops the export check replays as a CPU without VNNI would (~0.2 s each)
SATURATION_CROPS = 32


def _export_int8(cfg: ExportConfig) -> int:
    """``vcfnet export --quantize int8``: fp32 export to a temp file, then ``quantize_onnx``."""
    if cfg.calibration is None:
        raise ConfigError(
            "--quantize int8 needs --calibration DATASET_DIR (or a folder of crop images) "
            "to measure activation ranges on"
        )
    crops = calibration_crops(cfg.calibration)
    with tempfile.TemporaryDirectory(prefix="vcfnet-export-") as tmp:
        fp32 = export_onnx(cfg.model, Path(tmp) / "model.onnx", opset=cfg.opset)
        out = quantize_onnx(fp32, cfg.out, crops)
    message = f"wrote {out} (int8)"
    if cfg.check:
        p_torch = load_model(cfg.model, device="cpu", precision="fp32").predict_crops(crops)
        delta, top1 = agreement(p_torch, load_model(out).predict_crops(crops))
        no_vnni = simulate_saturation(out, crops[:SATURATION_CROPS])
        delta_no_vnni, top1_no_vnni = agreement(p_torch[:SATURATION_CROPS], no_vnni.probabilities)
        message = (
            f"wrote {out} (int8; vs PyTorch fp32 on {len(crops)} calibration crops: "
            f"max |Δp| {delta:.3f}, top-1 agreement {top1:.1%}. In runtimes with onnxruntime's "
            f"default settings, CPUs without VNNI would give, simulated on the first "
            f"{len(no_vnni.probabilities)}: max |Δp| {delta_no_vnni:.3f}, top-1 agreement "
            f"{top1_no_vnni:.1%}; vcfnet runs exact kernels there)"
        )
        if top1 < 0.9:
            raise CheckpointError(
                f"{out}: int8 top-1 agreement with PyTorch is {top1:.1%} (< 90%); "
                "calibrate on more representative crops or export without --quantize"
            )
    save_command_config(cfg, cfg.out)
    print(message)
    return 0


@dataclass
class PredictConfig:
    """Options of ``vcfnet predict`` (inputs, --box and --xml are plain arguments)."""

    model: Path | None = field(
        default=None,
        metadata={"help": "RUN_DIR, .pt checkpoint or .onnx file", "metavar": "RUN_DIR"},
    )
    crops: bool = field(
        default=False, metadata={"help": "inputs are pre-cut crops (files or folders, recursive)"}
    )
    heatmap: Path | None = field(
        default=None, metadata={"help": "write Grad-CAM PNGs to this folder", "metavar": "DIR"}
    )
    format: Literal["json", "csv"] = field(default="json", metadata={"help": "output format"})
    out: Path | None = field(
        default=None,
        metadata={"help": "write results to this file instead of stdout", "metavar": "FILE"},
    )
    batch_size: int = field(default=64, metadata={"help": "crops per forward pass"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        default="auto", metadata={"help": "numeric precision (PyTorch models)"}
    )
    site: str = field(
        default="local",
        metadata={
            "help": "site name: the CSV's site column (vcfnet metrics groups by it) and part of "
            "the patient pseudonyms (the same as vcfnet prepare's for the same site and key)"
        },
    )
    localize: Path | None = field(
        default=None,
        metadata={
            "help": "find the boxes with this localiser (RUN_DIR/.pt/.onnx): every vertebra it "
            "grades fractured (Genant >= 1) is classified; no --box or --xml needed",
            "metavar": "LOC",
        },
    )
    keep_names: bool = field(
        default=False,
        metadata={
            "help": "write input file names and paths into the outputs (they often hold patient "
            "names or IDs); default: keyed pseudonyms"
        },
    )
    id_key: str | None = field(
        default=None,
        metadata={"help": "pseudonym key (default: $VCFNET_ID_KEY or the per-user key file)"},
    )


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="IMAGE",
        help="radiographs (DICOM/PNG/JPEG), or crops/folders with --crops",
    )
    parser.add_argument(
        "--box",
        action="append",
        default=[],
        metavar="x1,y1,x2,y2",
        help="a vertebra's box in pixels (repeat for several; applies to every image)",
    )
    parser.add_argument(
        "--xml",
        action="extend",
        nargs="+",
        default=[],
        type=Path,
        metavar="VOC_FILE",
        help="LabelImg XML files or folders of them, after the images (matched to images by "
        "file name; default: IMAGE.xml beside the image)",
    )
    add_config_arguments(parser, PredictConfig)


def iter_image_predictions(
    predictor: Predictor, plans: Sequence[BoxedImage], heatmap_dir: Path | None, names: OutputNames
) -> Iterator[ImagePrediction]:
    """Predict each planned radiograph, writing Grad-CAM PNGs when ``heatmap_dir`` is set."""
    for plan in tqdm(plans, desc="predict", unit="image", disable=None if len(plans) > 1 else True):
        options = {"labels": plan.labels, "levels": plan.levels, "names": names}
        if heatmap_dir is None:
            yield predictor.predict(plan.path, plan.boxes, **options)
        else:
            yield explain_image(predictor, plan.path, plan.boxes, heatmap_dir, **options)


def check_output_paths(cfg: PredictConfig) -> None:
    """Refuse unusable output paths before any work: --out a folder, --heatmap a file."""
    if cfg.out is not None and cfg.out.is_dir():
        raise ConfigError(f"--out {cfg.out} is a folder; give a file name, e.g. predictions.json")
    if cfg.heatmap is not None and cfg.heatmap.exists() and not cfg.heatmap.is_dir():
        raise ConfigError(f"--heatmap {cfg.heatmap} is a file; give a folder for the PNGs")


def output_names(cfg: PredictConfig) -> OutputNames:
    """Keyed pseudonyms for the outputs, or the input names with --keep-names (warned)."""
    if cfg.keep_names:
        log.warning(
            "--keep-names: input file names and paths go into the outputs; they often hold "
            "patient names or IDs, so keep the outputs as private as the inputs"
        )
    return OutputNames(resolve_id_key(cfg.id_key), cfg.site, cfg.keep_names)


def format_results(
    results: Sequence[ImagePrediction], fmt: str, class_names: Sequence[str], site: str = "local"
) -> str:
    """JSON (a list with one object per image) or CSV text."""
    if fmt == "json":
        return json.dumps([r.to_dict() for r in results], indent=2) + "\n"
    rows = pd.DataFrame(prediction_rows(results, class_names, site))
    return neutralise_formulas(rows).to_csv(index=False, lineterminator="\n")


def _predict_localised(
    predictor: Predictor, inputs: Sequence[Path], cfg: PredictConfig, names: OutputNames
) -> list[ImagePrediction]:
    """``--localize``: the localiser's fractured vertebrae (Genant grade >= 1) of each image,
    classified; an image with none gets an empty result (and a log line)."""
    from vcfnet.localiser.plans import plan_localised  # torch-free unless the model is .pt

    plans = plan_localised(cfg.localize, inputs)
    empty = [p for p in plans if not p.boxes]
    for plan in empty:
        log.info("%s: no vertebra graded fractured by the localiser", names.image(plan.path))
    done = iter_image_predictions(predictor, [p for p in plans if p.boxes], cfg.heatmap, names)
    by_path = {p.path: r for p, r in zip([p for p in plans if p.boxes], done, strict=True)}
    out = []
    for plan in plans:
        if plan.boxes:
            out.append(by_path[plan.path])
        else:
            source, patient = name_of(plan.path, plan.patient_id, names)
            out.append(ImagePrediction(source, (), predictor.info, patient))
    return out


def run_predict(args: argparse.Namespace) -> int:
    cfg = resolve_config(PredictConfig, args)
    if cfg.model is None:
        raise ConfigError("predict needs --model RUN_DIR (or a .pt / .onnx file)")
    if cfg.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    check_output_paths(cfg)
    names = output_names(cfg)
    predictor = load_model(
        cfg.model, device=cfg.device, precision=cfg.precision, batch_size=cfg.batch_size
    )
    if cfg.heatmap is not None and not predictor.explainable:
        raise ConfigError("--heatmap needs gradients: pass RUN_DIR or a .pt checkpoint, not .onnx")
    if cfg.crops:
        if args.box or args.xml:
            raise ConfigError("--crops takes pre-cut crops; --box and --xml are for radiographs")
        files = find_crop_files(args.inputs)
        if cfg.heatmap is not None:
            results = explain_crop_files(predictor, files, cfg.heatmap, names)
        else:
            results = predictor.predict_crop_files(files, names)
    elif cfg.localize is not None:
        if args.box or args.xml:
            raise ConfigError("--localize finds the boxes itself; drop --box and --xml")
        results = _predict_localised(predictor, args.inputs, cfg, names)
    else:
        plans = plan_images(args.inputs, args.box, args.xml, predictor.class_names)
        results = list(iter_image_predictions(predictor, plans, cfg.heatmap, names))
    text = format_results(results, cfg.format, predictor.class_names, cfg.site)
    if cfg.out is not None:
        atomic_write_text(cfg.out, text)
        save_command_config(cfg, cfg.out)
        log.info("wrote %d predictions to %s", sum(len(r.boxes) for r in results), cfg.out)
    else:
        sys.stdout.write(text)
    return 0
