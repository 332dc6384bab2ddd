"""One training epoch and one validation pass (the loop's two steps, after torchvision's
``references/classification``)."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vcfnet.data.augment import Augmentation, augment_batch
from vcfnet.data.dataset import CropTensors, iter_eval_batches
from vcfnet.device import Precision
from vcfnet.labels import CLASS_NAMES
from vcfnet.preprocess import InputSpec, normalize_batch
from vcfnet.training.distributed import Dist, all_reduce_sum


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: CropTensors,
    batches: list[torch.Tensor],
    *,
    pre: InputSpec,
    aug: Augmentation,
    generator: torch.Generator,
    loss_weight: torch.Tensor | None,
    device: torch.device,
    precision: Precision,
    scaler: torch.amp.GradScaler | None,
    dist: Dist,
    desc: str = "train",
    progress: bool = True,
) -> dict[str, float]:
    """One pass over this rank's ``batches``; returns loss/accuracy reduced over ranks and images/s."""
    from tqdm import tqdm

    model.train()
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count
    start = time.perf_counter()
    bar = tqdm(
        batches,
        desc=desc,
        leave=False,
        unit="batch",
        disable=None if (progress and dist.is_main) else True,
    )
    for idx in bar:
        x = augment_batch(data.images[idx], aug, generator) if aug.enabled else data.images[idx]
        x = normalize_batch(x, pre).to(device).contiguous(memory_format=precision.memory_format)
        y = data.labels[idx].to(device)
        with precision.autocast(device):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, weight=loss_weight)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        n = len(idx)
        totals += torch.tensor(
            [loss.item() * n, (logits.argmax(1) == y).sum().item(), n], dtype=torch.float64
        )
        elapsed = time.perf_counter() - start
        bar.set_postfix(
            loss=f"{totals[0] / totals[2]:.4f}",
            img_s=f"{totals[2] * dist.world_size / max(elapsed, 1e-9):.1f}",
        )
    totals = all_reduce_sum(totals, dist)
    seconds = time.perf_counter() - start
    return {
        "train_loss": float(totals[0] / max(totals[2], 1)),
        "train_acc": float(totals[1] / max(totals[2], 1)),
        "seconds": seconds,
        "images_per_s": float(totals[2]) / max(seconds, 1e-9),
    }


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    data: CropTensors,
    *,
    pre: InputSpec,
    device: torch.device,
    precision: Precision,
    batch_size: int,
    dist: Dist,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, C) float32 and labels (N,) of ``data``, each rank predicting a shard, gathered to all."""
    model.eval()
    logits, labels, order = [], [], []
    for idx in iter_eval_batches(len(data), batch_size, dist.rank, dist.world_size):
        x = (
            normalize_batch(data.images[idx], pre)
            .to(device)
            .contiguous(memory_format=precision.memory_format)
        )
        with precision.autocast(device):
            logits.append(model(x).float().cpu())
        labels.append(data.labels[idx])
        order.append(idx)
    num_classes = model.fc.out_features if hasattr(model, "fc") else len(CLASS_NAMES)
    out = torch.cat(logits) if logits else torch.zeros(0, num_classes)
    lab = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64)
    idx = torch.cat(order) if order else torch.zeros(0, dtype=torch.int64)
    if dist.enabled:
        import torch.distributed as tdist

        gathered: list[Any] = [None] * dist.world_size
        tdist.all_gather_object(gathered, (out, lab, idx))
        out = torch.cat([g[0] for g in gathered])
        lab = torch.cat([g[1] for g in gathered])
        idx = torch.cat([g[2] for g in gathered])
    perm = torch.argsort(idx)
    return out[perm], lab[perm]


def classification_metrics(
    logits: torch.Tensor, labels: torch.Tensor, prefix: str = "val_"
) -> dict[str, float]:
    """Loss, top-1 accuracy, one-vs-rest AUC per class (NaN where a class is absent) and their mean."""
    from sklearn.metrics import roc_auc_score

    out = {
        f"{prefix}loss": float(F.cross_entropy(logits, labels)) if len(labels) else math.nan,
        f"{prefix}acc": float((logits.argmax(1) == labels).float().mean())
        if len(labels)
        else math.nan,
    }
    probs = torch.softmax(logits, 1).numpy().astype(np.float64)
    y = labels.numpy()
    aucs = []
    for c, name in enumerate(CLASS_NAMES):
        pos = y == c
        auc = float(roc_auc_score(pos, probs[:, c])) if 0 < pos.sum() < len(y) else math.nan
        out[f"{prefix}auc_{name}"] = auc
        aucs.append(auc)
    finite = [a for a in aucs if not math.isnan(a)]
    out[f"{prefix}macro_auc"] = float(np.mean(finite)) if finite else math.nan
    return out


def evaluate(model, data, **kwargs) -> dict[str, float]:
    """Validation metrics of ``model`` on ``data`` (see ``classification_metrics``)."""
    logits, labels = predict_logits(model, data, **kwargs)
    return classification_metrics(logits, labels)
