"""``vcfnet readers`` (analyse a reader study) and ``vcfnet synth-readers`` (simulate one)."""

from __future__ import annotations

import argparse

from vcfnet.config import add_config_arguments, resolve_config, save_command_config
from vcfnet.errors import ConfigError
from vcfnet.reader_study.config import ReadersConfig, SynthReadersConfig
from vcfnet.reader_study.reads import SIMULATED_NOTE, is_simulated, read_table
from vcfnet.reader_study.report import run_reader_study
from vcfnet.synth.readers import write_simulated_reads


def add_synth_readers_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, SynthReadersConfig)


def run_synth_readers(args: argparse.Namespace) -> int:
    cfg = resolve_config(SynthReadersConfig, args)
    if cfg.truth is None or cfg.out is None:
        raise ConfigError("give --truth PREDICTIONS_CSV and --out READS_CSV")
    write_simulated_reads(
        read_table(cfg.truth, "truth"), cfg.out, seed=cfg.seed, fraction=cfg.fraction
    )
    save_command_config(cfg, cfg.out)
    return 0


def add_readers_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, ReadersConfig)


def run_readers(args: argparse.Namespace) -> int:
    cfg = resolve_config(ReadersConfig, args)
    if cfg.truth is None or cfg.reads is None or cfg.out is None:
        raise ConfigError("give --truth PREDICTIONS_CSV, --reads READS_CSV and --out DIR")
    result = run_reader_study(
        read_table(cfg.truth, "truth"),
        read_table(cfg.reads, "reads"),
        cfg.out,
        cov=cfg.cov,
        level=cfg.level,
        simulated=is_simulated(cfg.reads),
        figures=cfg.figures,
    )
    save_command_config(cfg, cfg.out)
    for cls, v in result.mrmc.get("classes", {}).items():
        if "difference" in v:
            print(
                f"{cls:>10}: AUC unaided {v['auc_unaided']:.3f} aided {v['auc_aided']:.3f} "
                f"diff {v['difference']:+.3f} [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}] "
                f"F={v['f']:.2f} df=({v['df1']}, {v['df2']:.1f}) p={v['p']:.4g}"
            )
    if result.simulated:
        print(SIMULATED_NOTE)
    print(f"reader study written to {cfg.out}")
    return 0
