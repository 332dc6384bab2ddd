"""``vcfnet train``: train the classifier on a prepared dataset."""

from __future__ import annotations

import argparse

from vcfnet.config import add_config_arguments, resolve_config
from vcfnet.errors import ConfigError
from vcfnet.training.config import TrainConfig
from vcfnet.training.distributed import is_main_process
from vcfnet.training.loop import train


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, TrainConfig)


def run_train(args: argparse.Namespace) -> int:
    try:
        cfg = resolve_config(TrainConfig, args)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    result = train(cfg)  # saves RUN_DIR/config.yaml
    if is_main_process():
        print(
            f"best epoch {result.best_epoch} (val {cfg.select_metric} {result.best_metric:.4f}); "
            f"checkpoints in {result.run_dir / 'checkpoints'}"
        )
    return 0
