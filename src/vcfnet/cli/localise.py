"""``vcfnet train-localiser``, ``vcfnet localize``, ``vcfnet evaluate-localiser`` and
``vcfnet export-localiser``: find the vertebral bodies, name their levels, place their points."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from vcfnet.cli.predict import output_names
from vcfnet.config import add_config_arguments, resolve_config, save_command_config
from vcfnet.errors import ConfigError, InputError
from vcfnet.io.atomic import atomic_write_text
from vcfnet.io.tables import neutralise_formulas
from vcfnet.io.voc import write_voc
from vcfnet.localiser.evaluate import (
    TABLE_HEADER,
    EvaluateLocaliserConfig,
    evaluate_localiser,
    markdown_table,
    table_rows,
)
from vcfnet.localiser.model import Localiser
from vcfnet.localiser.results import (
    CSV_COLUMNS,
    csv_rows,
    draw_overlay,
    localise_image,
    voc_objects,
)
from vcfnet.localiser.train import LocaliserConfig, train_localiser
from vcfnet.training.distributed import is_main_process

log = logging.getLogger(__name__)


def add_train_localiser_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, LocaliserConfig)


def run_train_localiser(args: argparse.Namespace) -> int:
    cfg = resolve_config(LocaliserConfig, args)
    result = train_localiser(cfg)
    if not is_main_process():  # torchrun's other ranks: rank 0 reports
        return 0
    last = result["history"][-1] if result["history"] else {}
    figures = ", ".join(f"{k} {v:.3g}" for k, v in last.items() if k not in ("epoch", "seconds"))
    print(
        f"best epoch {result['best_epoch']} ({figures}); checkpoints in {cfg.out / 'checkpoints'}"
    )
    if result["refine"]:
        r = result["refine"]
        val = r.get("val_point_error_pct")
        print(
            f"refine stage: {r['steps']} steps, L1 {r['loss']:.3g} crop px"
            + (f", validation point error {val:.2f} % of the height" if val is not None else "")
        )
    return 0


@dataclass
class LocalizeConfig:
    """Options of ``vcfnet localize`` (the images are plain arguments)."""

    model: Path | None = field(
        default=None, metadata={"help": "localiser RUN_DIR, .pt or .onnx", "metavar": "LOC"}
    )
    format: Literal["json", "csv"] = field(default="json", metadata={"help": "output format"})
    out: Path | None = field(
        default=None, metadata={"help": "write results to this file, not stdout", "metavar": "FILE"}
    )
    xml_out: Path | None = field(
        default=None, metadata={"help": "write LabelImg XML per image here", "metavar": "DIR"}
    )
    overlay: Path | None = field(
        default=None, metadata={"help": "write an overlay PNG per image here", "metavar": "DIR"}
    )
    threshold: float = field(default=0.3, metadata={"help": "centre heatmap threshold"})
    site: str = field(default="local", metadata={"help": "site name for the pseudonyms"})
    keep_names: bool = field(
        default=False,
        metadata={"help": "write input file names into the outputs (default: keyed pseudonyms)"},
    )
    id_key: str | None = field(
        default=None,
        metadata={"help": "pseudonym key (default: $VCFNET_ID_KEY or the per-user key file)"},
    )


def add_localize_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE", help="radiographs")
    add_config_arguments(parser, LocalizeConfig)


def _output_stem(record: dict, path: Path, keep_names: bool) -> str:
    return path.stem if keep_names else record["image"]


def run_localize(args: argparse.Namespace) -> int:
    cfg = resolve_config(LocalizeConfig, args)
    if cfg.model is None:
        raise ConfigError("localize needs --model LOC (a train-localiser run folder, .pt or .onnx)")
    if cfg.out is not None and cfg.out.is_dir():
        raise ConfigError(f"--out {cfg.out} is a folder; give a file name, e.g. vertebrae.json")
    for path in args.inputs:
        if not path.is_file():
            raise InputError(f"{path}: image not found")
    names = output_names(cfg)
    localiser = Localiser(cfg.model, threshold=cfg.threshold)
    records = []
    for path in args.inputs:
        record, pixels = localise_image(localiser, path, names)
        if not record["vertebrae"]:
            log.warning(
                "%s: no vertebra found above --threshold %g (a model trained long enough finds "
                "T11-S1; try a lower --threshold)",
                record["image"],
                cfg.threshold,
            )
        records.append(record)
        stem = _output_stem(record, path, cfg.keep_names)
        if cfg.xml_out is not None:
            filename = path.name if cfg.keep_names else f"{stem}{path.suffix}"
            size = (record["columns"], record["rows"])
            write_voc(cfg.xml_out / f"{stem}.xml", filename, *size, voc_objects(record))
        if cfg.overlay is not None:
            cfg.overlay.mkdir(parents=True, exist_ok=True)
            draw_overlay(pixels, record).save(cfg.overlay / f"{stem}.png")
    if cfg.format == "json":
        text = json.dumps(records, indent=1) + "\n"
    else:
        rows = [r for rec in records for r in csv_rows(rec)]
        frame = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
        frame["grade"] = frame["grade"].astype("Int64")  # S1 is not graded (empty)
        frame = neutralise_formulas(frame)
        text = frame.to_csv(index=False, lineterminator="\n")
    if cfg.out is not None:
        atomic_write_text(cfg.out, text)
        save_command_config(cfg, cfg.out)
        log.info("wrote %d radiographs' vertebrae to %s", len(records), cfg.out)
    else:
        sys.stdout.write(text)
    return 0


def add_evaluate_localiser_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, EvaluateLocaliserConfig)


def run_evaluate_localiser(args: argparse.Namespace) -> int:
    cfg = resolve_config(EvaluateLocaliserConfig, args)
    if cfg.model is None or (not cfg.data and cfg.points is None):
        raise ConfigError(
            "evaluate-localiser needs --model LOC and --data SYNTH_DIR or --points CSV"
        )
    results = evaluate_localiser(cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    save_command_config(cfg, cfg.out)
    metrics = [
        {"site": r.site, "seconds_per_film": r.seconds_per_film, **r.metrics.to_dict()}
        for r in results
    ]
    atomic_write_text(cfg.out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    atomic_write_text(cfg.out / "metrics.md", markdown_table(results))
    cells = [list(TABLE_HEADER), *table_rows(results)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(TABLE_HEADER))]
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)))
    print(f"wrote {cfg.out / 'metrics.json'} and metrics.md (synthetic films: synthetic figures)")
    return 0


@dataclass
class ExportLocaliserConfig:
    """Options of ``vcfnet export-localiser``."""

    model: Path | None = field(
        default=None, metadata={"help": "localiser RUN_DIR or .pt", "metavar": "LOC"}
    )
    out: Path | None = field(
        default=None, metadata={"help": "output .onnx file", "metavar": "FILE"}
    )
    opset: int = field(default=18, metadata={"help": "ONNX opset"})


def add_export_localiser_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, ExportLocaliserConfig)


def run_export_localiser(args: argparse.Namespace) -> int:
    from vcfnet.localiser.export import export_localiser_onnx, onnx_parity

    cfg = resolve_config(ExportLocaliserConfig, args)
    if cfg.model is None or cfg.out is None:
        raise ConfigError("export-localiser needs --model LOC and --out FILE.onnx")
    out = export_localiser_onnx(cfg.model, cfg.out, cfg.opset)
    delta = onnx_parity(cfg.model, out)
    save_command_config(cfg, out)
    print(f"wrote {out} (max |Δ| of the raw maps vs PyTorch: {delta:.2e})")
    return 0
