"""The decode jobs of ``prepare``: one per radiograph (or crop file), run in worker processes;
each writes its crops and reports what it did and what was wrong."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from vcfnet.errors import InputError
from vcfnet.geometry import Box, validate_box
from vcfnet.io.atomic import atomic_path
from vcfnet.io.images import read_radiograph, read_radiograph_info
from vcfnet.io.radiograph import RadiographInfo
from vcfnet.preprocess import CropSpec, make_cache_crop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One bad input: the file, the object index within it (None: the whole file) and why."""

    file: str
    object_index: int | None
    reason: str

    def __str__(self) -> str:
        where = (
            self.file if self.object_index is None else f"{self.file}: object {self.object_index}"
        )
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class CropJob:
    """One box to crop: its object index and name in the XML, parsed label and level, crop path."""

    object_index: int
    label: str
    level: str
    box: Box | None  # None: the whole image (pre-cut crops)
    crop_path: str  # relative to DATASET_DIR
    annotation: str = ""  # the XML file, for messages
    age: float | None = None  # from the authors' file name, if any
    sex: str = ""


@dataclass(frozen=True)
class ImageJob:
    """One input image and the crops to make from it."""

    path: Path
    key: str  # path relative to the input folder (posix)
    site: str
    crops: tuple[CropJob, ...]
    declared_size: tuple[int, int] | None = None  # (W, H) from the XML's <size>, if any


@dataclass
class ImageOutcome:
    """What a worker made of one ImageJob."""

    job: ImageJob
    info: RadiographInfo | None = None
    done: list[tuple[CropJob, Box]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    written: int = 0
    reused: int = 0


def _save_png(pixels: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG", compress_level=1)  # fast; crops are small


def process_image(job: ImageJob, dataset_dir: Path, spec: CropSpec) -> ImageOutcome:
    """Decode one image (unless all its crops exist), check its boxes and write missing crops."""
    outcome = ImageOutcome(job)
    missing = [c for c in job.crops if not (dataset_dir / c.crop_path).is_file()]
    try:
        radiograph = read_radiograph(job.path) if missing else None
        outcome.info = radiograph.info if radiograph is not None else read_radiograph_info(job.path)
    except InputError as exc:
        outcome.problems.append(
            Problem(str(job.path), None, str(exc).removeprefix(f"{job.path}: "))
        )
        return outcome
    height, width = outcome.info.shape
    if job.declared_size and job.declared_size != (width, height):
        log.warning(
            "%s: the XML says %dx%d but the image is %dx%d; was the image resized after boxing?",
            job.crops[0].annotation or job.path,
            *job.declared_size,
            width,
            height,
        )
    for crop in job.crops:
        box = crop.box if crop.box is not None else (0.0, 0.0, float(width), float(height))
        try:
            validate_box(box, (height, width))
        except InputError as exc:
            outcome.problems.append(
                Problem(
                    crop.annotation or str(job.path),
                    crop.object_index,
                    f"in {job.path.name}: {exc}; fix or delete the box in LabelImg",
                )
            )
            continue
        if crop in missing:
            _save_png(make_cache_crop(radiograph.pixels, box, spec), dataset_dir / crop.crop_path)  # type: ignore[union-attr]
            outcome.written += 1
        else:
            outcome.reused += 1
        outcome.done.append((crop, box))
    return outcome


def resolve_workers(workers: int) -> int:
    """``--workers``: 0 means all cores."""
    return max(1, workers or os.cpu_count() or 1)


def run_jobs(
    jobs: list[ImageJob], dataset_dir: Path, spec: CropSpec, workers: int
) -> Iterator[ImageOutcome]:
    """Process jobs in ``workers`` processes (1: in this process), in order, with a progress bar."""
    fn = functools.partial(process_image, dataset_dir=dataset_dir, spec=spec)
    with contextlib.ExitStack() as stack:
        if workers > 1 and len(jobs) > 1:
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=min(workers, len(jobs))))
            outcomes: Iterable[ImageOutcome] = pool.map(
                fn, jobs, chunksize=max(1, min(16, len(jobs) // (workers * 4)))
            )
        else:
            outcomes = map(fn, jobs)
        yield from tqdm(outcomes, total=len(jobs), desc="prepare", unit="img", disable=None)
