"""``vcfnet bench train``: the authors' training pipeline beside vcfnet's, steps interleaved, with
the fraction of its own number format's PyTorch peak on this CPU each reaches, and the speed-up
against the one those peaks allow."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from vcfnet.bench.peaks import add_peak_arguments, model_gflop, peak_gflop_s, peak_options
from vcfnet.data.augment import Augmentation
from vcfnet.data.dataset import CropTensors, EpochBatches, decode_crops
from vcfnet.device import Precision, resolve_precision
from vcfnet.labels import CLASS_NAMES
from vcfnet.models.classifier import build_model
from vcfnet.preprocess import DEFAULT_IMAGE_SIZE, InputSpec
from vcfnet.training.distributed import Dist
from vcfnet.training.steps import evaluate, train_one_epoch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--n-images", type=int, default=256, help="synthetic 256-px PNG crops to train on"
    )
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per pipeline")
    parser.add_argument(
        "--image-size", type=int, default=DEFAULT_IMAGE_SIZE, help="model input size"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (authors: 32)")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="DataLoader workers of the reference (0: decode in the timed loop)",
    )
    parser.add_argument(
        "--parity-epochs",
        type=int,
        default=0,
        help="also train each pipeline this many epochs and compare val loss",
    )
    add_peak_arguments(parser)


def _write_bench_crops(folder: Path, n: int, seed: int = 0) -> tuple[list[Path], list[int]]:
    """``n`` 256-px gray PNGs, classes told apart by flip-invariant patterns; returns paths and labels.

    acute: bright centre square, chronic: bright frame, pathologic: coarse noise.
    """

    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for i in range(n):
        label = i % len(CLASS_NAMES)
        img = rng.normal(100, 25, (256, 256))
        if label == 0:
            img[80:176, 80:176] += 70
        elif label == 1:
            img[:32] += 70
            img[-32:] += 70
            img[:, :32] += 70
            img[:, -32:] += 70
        else:
            img += np.kron(rng.normal(0, 45, (16, 16)), np.ones((16, 16)))
        path = folder / f"{i:05d}.png"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
        labels.append(label)
    return paths, labels


class _ReferenceDataset(torch.utils.data.Dataset):
    """The authors' pipeline: PIL-decode every PNG on every epoch + torchvision transforms."""

    def __init__(self, paths: list[Path], labels: list[int], image_size: int) -> None:
        from torchvision import transforms as T

        pre = InputSpec()
        self.paths, self.labels = paths, labels
        self.transform = T.Compose(
            [
                T.Resize((image_size, image_size)),
                T.RandomHorizontalFlip(),
                T.RandomVerticalFlip(),
                T.RandomRotation(Augmentation().rotation_degrees),
                T.ToTensor(),
                T.Normalize(pre.mean, pre.std),
            ]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):

        with Image.open(self.paths[i]) as im:
            return self.transform(im.convert("RGB")), self.labels[i]


def _cycle(iterable_factory):
    """Endless iterator over ``iterable_factory()``, restarted whenever it is exhausted (new epoch)."""
    while True:
        yield from iterable_factory()


def _adam(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=2e-4, weight_decay=5e-4)


class _ReferencePipeline:
    """fp32 eager ResNet-18 fed by a DataLoader over ``_ReferenceDataset`` (batch 32, shuffled)."""

    def __init__(self, paths, labels, image_size: int, batch_size: int, workers: int) -> None:
        torch.manual_seed(0)
        self.model = build_model(len(CLASS_NAMES), "none")
        self.opt = _adam(self.model)
        self.loader = torch.utils.data.DataLoader(
            _ReferenceDataset(paths, labels, image_size),
            batch_size=batch_size,
            shuffle=True,
            num_workers=workers,
            persistent_workers=workers > 0,
            drop_last=len(paths) > batch_size,
        )

    def epoch(self):
        return iter(self.loader)

    def step(self, batch) -> int:
        self.model.train()
        x, y = batch
        loss = F.cross_entropy(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return len(y)


class _VcfnetPipeline:
    """vcfnet's training step: cached uint8 crops, tensor augmentation, bf16 autocast + channels_last."""

    def __init__(
        self, data: CropTensors, pre: InputSpec, batch_size: int, precision: Precision
    ) -> None:
        torch.manual_seed(0)
        self.model = build_model(len(CLASS_NAMES), "none").to(memory_format=precision.memory_format)
        self.opt = _adam(self.model)
        self.data, self.pre, self.precision = data, pre, precision
        self.sampler = EpochBatches(data.labels, batch_size=batch_size)
        self.n_epochs = 0

    def epoch(self):
        self.n_epochs += 1
        return iter(self.sampler.batches(self.n_epochs))

    def step(self, idx: torch.Tensor) -> int:
        train_one_epoch(
            self.model,
            self.opt,
            self.data,
            [idx],
            pre=self.pre,
            aug=Augmentation(),
            generator=torch.Generator().manual_seed(int(idx[0])),
            loss_weight=None,
            device=torch.device("cpu"),
            precision=self.precision,
            scaler=None,
            dist=Dist(),
            progress=False,
        )
        return len(idx)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(args: argparse.Namespace) -> dict[str, float]:
    """Training images/s of the authors' pipeline vs vcfnet's on the same crops, their ratio, peak RSS.

    The two pipelines' steps alternate (after two warm-up steps each), so a shared, busy CPU slows
    both alike and the ratio stays meaningful. A step's time includes fetching its batch.
    """

    size, bs = args.image_size, args.batch_size
    precision = resolve_precision("auto", torch.device("cpu"))
    pre = InputSpec(image_size=size)
    results: dict[str, float] = {"n_images": args.n_images, "batch_size": bs, "image_size": size}
    with tempfile.TemporaryDirectory(prefix="vcfnet-bench-train-") as tmp:
        paths, labels = _write_bench_crops(Path(tmp), args.n_images)
        t0 = time.perf_counter()
        data = CropTensors(
            torch.from_numpy(decode_crops(paths, size)), torch.tensor(labels), pd.DataFrame()
        )
        results["vcfnet_decode_once_s"] = time.perf_counter() - t0
        pipelines = {
            "reference": _ReferencePipeline(paths, labels, size, bs, args.workers),
            "vcfnet": _VcfnetPipeline(data, pre, bs, precision),
        }
        peaks_before = _peaks(precision, **peak_options(args))
        streams = {name: _cycle(p.epoch) for name, p in pipelines.items()}
        seconds = dict.fromkeys(pipelines, 0.0)
        images = dict.fromkeys(pipelines, 0)
        for i in range(2 + args.steps):
            for name, pipe in pipelines.items():
                start = time.perf_counter()
                n = pipe.step(next(streams[name]))
                if i >= 2:
                    seconds[name] += time.perf_counter() - start
                    images[name] += n
        for name in pipelines:
            results[f"{name}_images_per_s"] = images[name] / max(seconds[name], 1e-9)
        results["ratio"] = results["vcfnet_images_per_s"] / results["reference_images_per_s"]
        results["vcfnet_bf16"] = int(precision.name == "bf16")
        results["peak_rss_mb"] = _peak_rss_mb()
        # peaks on both sides of the timed steps, the best kept (a shared CPU's load varies)
        peaks_after = _peaks(precision, **peak_options(args))
        peaks = {key: max(peaks_before[key], peaks_after[key]) for key in peaks_before}
        results.update(_arithmetic_ceiling(results, size, precision, peaks))
        if args.parity_epochs > 0:
            results.update(_parity(paths, labels, args, pre, precision))
    return results


def _peaks(precision: Precision, **options) -> dict[str, float]:
    """PyTorch's fp32 peak and that of ``precision`` (bf16 only where the CPU has it)."""
    peaks = {"peak_fp32_gflop_s": peak_gflop_s("fp32", **options)}
    if precision.name != "fp32":
        peaks[f"peak_{precision.name}_gflop_s"] = peak_gflop_s(precision.name, **options)
    return peaks


#: target relative to the machine (issue 18): vcfnet's speed-up >= 0.9 x the one the peaks allow
TARGET_SPEEDUP_VS_ALLOWED = 0.9


def _arithmetic_ceiling(
    results: dict, image_size: int, precision: Precision, peaks: dict[str, float]
) -> dict[str, float]:
    """GFLOP/s each pipeline reaches as a fraction of this CPU's PyTorch peak in its number format;
    ``ratio_at_peak``: the speed-up the peaks allow (vcfnet's format's peak / fp32 peak, data
    aside); and the target: ``ratio`` >= 0.9 x ``ratio_at_peak`` (``target_speedup_ratio`` >= 1
    where met)."""

    gflop = model_gflop(build_model(len(CLASS_NAMES), "none"), image_size, backward=True)
    peak_fp32 = peaks["peak_fp32_gflop_s"]
    peak_fast = peaks.get(f"peak_{precision.name}_gflop_s", peak_fp32)
    allowed = peak_fast / peak_fp32
    share = results["ratio"] / allowed
    return {
        "train_gflop_per_image": gflop,
        **peaks,
        "reference_peak_fraction": results["reference_images_per_s"] * gflop / peak_fp32,
        "vcfnet_peak_fraction": results["vcfnet_images_per_s"] * gflop / peak_fast,
        "ratio_at_peak": allowed,
        "speedup_vs_allowed": share,
        "target_speedup_met": bool(share >= TARGET_SPEEDUP_VS_ALLOWED),
        "target_speedup_ratio": share / TARGET_SPEEDUP_VS_ALLOWED,
    }


def _parity(paths, labels, args, pre: InputSpec, precision: Precision) -> dict[str, float]:
    """Train each pipeline ``parity_epochs`` epochs on 3/4 of the crops; fp32 val loss/accuracy on the rest."""

    n_train = len(paths) * 3 // 4
    size, bs = args.image_size, args.batch_size
    val = CropTensors(
        torch.from_numpy(decode_crops(paths[n_train:], size)),
        torch.tensor(labels[n_train:]),
        pd.DataFrame(),
    )
    train_data = CropTensors(
        torch.from_numpy(decode_crops(paths[:n_train], size)),
        torch.tensor(labels[:n_train]),
        pd.DataFrame(),
    )
    pipelines = {
        "reference": _ReferencePipeline(paths[:n_train], labels[:n_train], size, bs, args.workers),
        "vcfnet": _VcfnetPipeline(train_data, pre, bs, precision),
    }
    out = {}
    for name, pipe in pipelines.items():
        for _ in range(args.parity_epochs):
            for batch in pipe.epoch():
                pipe.step(batch)
        metrics = evaluate(
            pipe.model,
            val,
            pre=pre,
            device=torch.device("cpu"),
            precision=resolve_precision("fp32", torch.device("cpu")),
            batch_size=64,
            dist=Dist(),
        )
        out[f"{name}_val_loss"] = metrics["val_loss"]
        out[f"{name}_val_acc"] = metrics["val_acc"]
    return out
