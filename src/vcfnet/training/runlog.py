"""The run's log file and determinism switch, set up around the training loop."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch

from vcfnet.training.distributed import Dist


@contextlib.contextmanager
def run_logging(run_dir: Path, dist: Dist):
    """Rank 0: 'vcfnet' logger also writes RUN_DIR/train.log at INFO; other ranks: warnings only.

    The console keeps its own level: when it shows less than INFO (``vcfnet -q``), records reach the
    root handlers through a forwarder that applies the previous effective level.
    """
    logger = logging.getLogger("vcfnet")
    old_level, old_propagate = logger.level, logger.propagate
    console_level = logger.getEffectiveLevel()
    added: list[logging.Handler] = []
    if dist.is_main:
        handler = logging.FileHandler(run_dir / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        added.append(handler)
        if console_level > logging.INFO:
            added.append(ConsoleForwarder(console_level))
            logger.propagate = False
            logger.setLevel(logging.INFO)
    else:
        logger.setLevel(logging.WARNING)
    for h in added:
        logger.addHandler(h)
    try:
        yield
    finally:
        logger.setLevel(old_level)
        logger.propagate = old_propagate
        for h in added:
            logger.removeHandler(h)
            h.close()


class ConsoleForwarder(logging.Handler):
    """Pass records at or above ``level`` to the root logger's handlers (or logging's last resort)."""

    def emit(self, record: logging.LogRecord) -> None:
        handlers = logging.getLogger().handlers or [logging.lastResort]
        for h in handlers:
            if h is not None and record.levelno >= h.level:
                h.handle(record)


@contextlib.contextmanager
def deterministic(on: bool):
    old = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(on, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old)
