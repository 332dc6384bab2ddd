"""Learning-rate schedules shared by the training loops."""

from __future__ import annotations

import torch

#: fraction of the steps spent warming up in a one-cycle schedule
WARMUP_FRACTION = 0.1


def one_cycle(
    optimizer: torch.optim.Optimizer, max_lr: float, total_steps: int
) -> torch.optim.lr_scheduler.OneCycleLR:
    """Warm up over ~10 % of ``total_steps``, then anneal (cosine). PyTorch's OneCycleLR divides
    by zero when the warm-up is exactly one step (10 steps at 10 %), so that warm-up is two."""
    warmup = WARMUP_FRACTION if round(WARMUP_FRACTION * total_steps, 9) != 1 else 2 / total_steps
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr, total_steps=total_steps, pct_start=warmup
    )
