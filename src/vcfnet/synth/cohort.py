"""``vcfnet synth``: a synthetic multicenter cohort (DICOM radiographs, LabelImg boxes, patient lists).

Layout written under ``--out DIR``::

    DIR/<site>/images/<site>_00000.dcm     lateral lumbar radiograph (DX or CR, site imaging profile)
    DIR/<site>/annotations/<site>_00000.xml LabelImg boxes named like ``Acute-L1``
    DIR/<site>/patients.csv                image,patient_id,age,sex,site
    DIR/<site>/truth.csv                   per boxed vertebra: level, label, Genant grade, shape,
                                           measured height loss, signs, boxes (for tests; not read
                                           by ``vcfnet prepare``)
    DIR/<site>/vertebrae/<site>_00000.json every visible body T11-S1, fractured or not: level, box,
                                           six morphometry points (``synth.landmarks``)
    DIR/<site>/vertebrae.csv               the same for the whole site, one row per body
    DIR/cohort.json                        sites, imaging profiles, counts, seed, vcfnet version

Every image draws from its own ``numpy.random.SeedSequence(seed, spawn_key=(site, index))``, so the
bytes do not depend on the number of workers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vcfnet import __version__
from vcfnet.errors import ConfigError
from vcfnet.io.atomic import atomic_write_bytes, atomic_write_text
from vcfnet.io.voc import write_voc
from vcfnet.labels import CLASS_NAMES
from vcfnet.synth.anatomy import SPINE_LEVELS, build_spine, choose_fracture_levels
from vcfnet.synth.dicom import dicom_bytes
from vcfnet.synth.fractures import FractureSpec, sample_background, sample_fracture
from vcfnet.synth.landmarks import (
    VERTEBRA_COLUMNS,
    csv_rows,
    dumps_document,
    image_document,
    vertebra_records,
)
from vcfnet.synth.render import render_radiograph
from vcfnet.synth.sites import SiteSpec, preset_sites
from vcfnet.synth.tasks import ImageTask

log = logging.getLogger(__name__)

PATIENT_COLUMNS = ("image", "patient_id", "age", "sex", "site")
TRUTH_COLUMNS = (
    "image",
    "patient_id",
    "level",
    "label",
    "genant_grade",
    "shape",
    "height_loss",
    "signs",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "body_xmin",
    "body_ymin",
    "body_xmax",
    "body_ymax",
)
_SURNAMES = (
    "WANG",
    "LI",
    "ZHANG",
    "LIU",
    "CHEN",
    "YANG",
    "HUANG",
    "ZHAO",
    "WU",
    "ZHOU",
    "XU",
    "SUN",
    "MA",
    "ZHU",
    "HU",
    "GUO",
    "HE",
    "LIN",
    "LUO",
    "GAO",
    "ZHENG",
    "LIANG",
    "XIE",
    "TANG",
)
_GIVEN = (
    "WEI",
    "FANG",
    "NA",
    "MIN",
    "JING",
    "LI",
    "QIANG",
    "LEI",
    "JUN",
    "YANG",
    "YONG",
    "YAN",
    "JIE",
    "TAO",
    "MING",
    "CHAO",
    "XIU YING",
    "GUI LAN",
    "HONG",
    "XIA",
    "PING",
    "GANG",
    "HUI",
)
#: radiograph WIDTHxHEIGHT of ``vcfnet synth`` and the benches (about 0.3 mm pixels; real lateral
#: lumbar CR/DR films are ~2048x2560 at ~0.15 mm, 4.4x the render time, see docs/synthetic-data.md)
DEFAULT_SIZE = "1024x1280"
_STRENGTH = 1.4  # global multiplier of sign strengths (difficulty calibration)


@dataclass
class SynthConfig:
    """Options of ``vcfnet synth``."""

    out: Path | None = field(
        default=None, metadata={"help": "output folder (required)", "metavar": "DIR"}
    )
    preset: str = field(
        default="paper", metadata={"help": "cohort preset (paper = the paper's Table 1)"}
    )
    scale: float = field(
        default=1.0, metadata={"help": "multiply all counts (>= 1 per class a site has)"}
    )
    seed: int = field(default=0, metadata={"help": "random seed; same seed, same bytes"})
    size: str = field(
        default=DEFAULT_SIZE,
        metadata={"help": "radiograph WIDTHxHEIGHT in pixels", "metavar": "WxH"},
    )
    workers: int = field(default=0, metadata={"help": "worker processes (0 = all CPU cores)"})
    annotate_normal: bool = field(
        default=False, metadata={"help": "also box every non-fractured vertebra (Normal-L3)"}
    )
    sign_strength: float = field(
        default=_STRENGTH, metadata={"help": "multiplier of the fracture signs' strengths"}
    )

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) from ``size``."""
        return parse_size(self.size)


def parse_size(size: str) -> tuple[int, int]:
    """'1024x1280' (width x height) -> (1280, 1024) = (rows, columns); ConfigError when malformed."""
    try:
        w, h = (int(x) for x in str(size).lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {size!r} must look like 1024x1280 (width x height)") from None
    if w < 128 or h < 128:
        raise ConfigError(f"--size {size!r} is too small; use at least 128x128")
    return h, w


@dataclass
class CohortResult:
    """What ``generate_cohort`` wrote."""

    out: Path
    sites: dict[str, dict] = field(
        default_factory=dict
    )  # name -> {counts, patients, images, split}
    n_images: int = 0
    seconds: float = 0.0

    def site_dirs(self) -> dict[str, Path]:
        return {name: self.out / name for name in self.sites}


def plan_site(site: SiteSpec, site_index: int, cfg: SynthConfig) -> list[ImageTask]:
    """One image per patient; patients get 1-4 fractured vertebrae, classes grouped per patient."""
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(1000 + site_index,)))
    labels = [c for c, n in zip(CLASS_NAMES, site.counts, strict=True) for _ in range(n)]
    n_pat = site.patients
    sizes = np.ones(n_pat, dtype=int)
    for _ in range(len(labels) - n_pat):
        open_ = np.flatnonzero(sizes < 4)
        sizes[int(rng.choice(open_))] += 1
    rng.shuffle(sizes)
    tasks, start = [], 0
    for i, k in enumerate(sizes):
        mine = labels[start : start + k]
        start += k
        main = max(CLASS_NAMES, key=mine.count)  # ties: the first class (not set order)
        if main == "pathologic":  # more often younger men
            age = rng.normal(site.age_mean - 10, site.age_sd * 0.9)
            female = rng.random() < site.female_fraction - 0.3
        else:
            age = rng.normal(site.age_mean + 0.5, site.age_sd)
            female = rng.random() < site.female_fraction + 0.02
        age = int(np.clip(round(age), 35, 99))
        levels = choose_fracture_levels(rng, len(mine))
        year = int(rng.integers(2016, 2022))
        study = dt.date(year, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365)))
        birth = dt.date(year - age, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365)))
        sex = "F" if female else "M"
        tasks.append(
            ImageTask(
                site=site.name,
                site_index=site_index,
                index=i,
                image=f"{site.name}_{i:05d}",
                patient_id=f"{site.name[:2]}{int(rng.integers(10**7, 10**8))}",
                patient_name=f"{rng.choice(_SURNAMES)}^{rng.choice(_GIVEN)}",
                age=age,
                sex=sex,
                birth_date=birth.strftime("%Y%m%d"),
                study_date=study.strftime("%Y%m%d"),
                fractures=dict(zip(levels, mine, strict=True)),
                profile=site.profile,
                shape=cfg.shape,
                seed=cfg.seed,
                annotate_normal=cfg.annotate_normal,
                sign_strength=cfg.sign_strength,
            )
        )
    return tasks


def _annotated_box(
    rng: np.random.Generator, body: tuple[float, float, float, float], shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """An annotator's box around ``body``: a little loose, each side jittered."""
    x1, y1, x2, y2 = body
    w, h = x2 - x1, y2 - y1
    j = rng.normal(0.03, 0.025, size=4)
    box = (x1 - j[0] * w, y1 - j[1] * h, x2 + j[2] * w, y2 + j[3] * h)
    rows, cols = shape
    return (
        int(np.clip(round(box[0]), 0, cols - 2)),
        int(np.clip(round(box[1]), 0, rows - 2)),
        int(np.clip(round(box[2]), 1, cols - 1)),
        int(np.clip(round(box[3]), 1, rows - 1)),
    )


def render_task(task: ImageTask) -> tuple[np.ndarray, list[dict], list[dict]]:
    """Render one radiograph: display image (H, W) float32 in [0, 1], its truth rows (boxed
    vertebrae) and its vertebra records (every visible body, ``landmarks.vertebra_records``)."""
    rng = np.random.default_rng(
        np.random.SeedSequence(task.seed, spawn_key=(task.site_index, task.index))
    )
    specs: dict[str, FractureSpec] = {
        lv: sample_fracture(rng, label, task.sign_strength) for lv, label in task.fractures.items()
    }
    for lv in SPINE_LEVELS:
        if lv not in specs:
            specs[lv] = sample_background(rng, task.age)
    spacing = task.profile.field_height_mm / task.shape[0]
    spine = build_spine(rng, task.shape, spacing, specs, sex=task.sex)
    image = render_radiograph(rng, spine, task.profile, task.shape, task.age, task.sex)
    records = vertebra_records(spine, task.fractures, task.shape)  # draws nothing from rng
    rows = []
    for vert in spine:
        fractured = vert.level in task.fractures
        if not fractured and not (task.annotate_normal and vert.level != "S1"):
            continue
        body = vert.body_box()
        if not fractured and (
            body[0] < 0 or body[1] < 0 or body[2] >= task.shape[1] or body[3] >= task.shape[0]
        ):
            continue
        box = _annotated_box(rng, body, task.shape)
        spec = vert.spec
        rows.append(
            {
                "image": task.image,
                "patient_id": task.patient_id,
                "level": vert.level,
                "label": spec.label,
                "genant_grade": spec.grade,
                "shape": spec.shape if fractured else "none",
                "height_loss": round(vert.deformity.measured_height_loss(), 4),
                "signs": ";".join(spec.present_signs),
                "xmin": box[0],
                "ymin": box[1],
                "xmax": box[2],
                "ymax": box[3],
                "body_xmin": round(body[0], 1),
                "body_ymin": round(body[1], 1),
                "body_xmax": round(body[2], 1),
                "body_ymax": round(body[3], 1),
            }
        )
    return image, rows, records


def write_task(task: ImageTask, out: Path) -> tuple[list[dict], list[dict]]:
    """Render ``task``, write its DICOM, LabelImg XML and vertebrae JSON under ``out/<site>``;
    its truth rows and vertebrae.csv rows."""
    image, rows, records = render_task(task)
    site_dir = out / task.site
    filename = f"{task.image}.dcm"
    atomic_write_bytes(site_dir / "images" / filename, dicom_bytes(task, image))
    spacing = task.profile.field_height_mm / task.shape[0]
    doc = image_document(filename, task.shape, spacing, records)
    atomic_write_text(site_dir / "vertebrae" / f"{task.image}.json", dumps_document(doc))
    objects = [
        (f"{r['label'].capitalize()}-{r['level']}", (r["xmin"], r["ymin"], r["xmax"], r["ymax"]))
        for r in rows
    ]
    write_voc(
        site_dir / "annotations" / f"{task.image}.xml",
        filename,
        task.shape[1],
        task.shape[0],
        objects,
    )
    return rows, csv_rows(filename, records)


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def run_tasks(
    tasks: list[ImageTask], out: Path, workers: int, desc: str = "synth"
) -> list[tuple[list[dict], list[dict]]]:
    from tqdm import tqdm

    if workers <= 1 or len(tasks) <= 1:
        return [write_task(t, out) for t in tqdm(tasks, desc=desc, unit="img", disable=None)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        it = pool.map(
            write_task,
            tasks,
            [out] * len(tasks),
            chunksize=max(1, min(8, len(tasks) // (4 * workers))),
        )
        return list(tqdm(it, total=len(tasks), desc=desc, unit="img", disable=None))


def generate_cohort(cfg: SynthConfig) -> CohortResult:
    """Generate the cohort described by ``cfg`` under ``cfg.out``; what was written."""
    if cfg.out is None:
        raise ConfigError("vcfnet synth needs --out DIR (where to write the cohort)")
    out = Path(cfg.out)
    t0 = time.perf_counter()
    sites = preset_sites(cfg.preset, cfg.scale)
    cfg.shape  # noqa: B018 - validate --size before any work
    workers = cfg.workers if cfg.workers > 0 else (os.cpu_count() or 1)
    tasks_by_site = {s.name: plan_site(s, i, cfg) for i, s in enumerate(sites)}
    all_tasks = [t for ts in tasks_by_site.values() for t in ts]
    log.info(
        "synth: %d radiographs at %s for %d sites, %d workers",
        len(all_tasks),
        cfg.size,
        len(sites),
        workers,
    )
    results = run_tasks(all_tasks, out, workers)
    result = CohortResult(out=out)
    k = 0
    for site in sites:
        tasks = tasks_by_site[site.name]
        mine = results[k : k + len(tasks)]
        k += len(tasks)
        truth = [r for rows, _ in mine for r in rows]
        vertebrae = [r for _, vrows in mine for r in vrows]
        patients = [
            {
                "image": f"{t.image}.dcm",
                "patient_id": t.patient_id,
                "age": t.age,
                "sex": t.sex,
                "site": t.site,
            }
            for t in tasks
        ]
        _write_csv(out / site.name / "patients.csv", PATIENT_COLUMNS, patients)
        _write_csv(out / site.name / "truth.csv", TRUTH_COLUMNS, truth)
        _write_csv(out / site.name / "vertebrae.csv", VERTEBRA_COLUMNS, vertebrae)
        fractured = [r for r in truth if r["label"] != "normal"]
        counts = {c: sum(r["label"] == c for r in fractured) for c in CLASS_NAMES}
        result.sites[site.name] = {
            "counts": counts,
            "vertebrae": len(fractured),
            "patients": len(tasks),
            "images": len(tasks),
            "split": site.split,
            "age_mean": site.age_mean,
            "female_fraction": site.female_fraction,
            "profile": site.profile.to_dict(),
        }
    result.n_images = len(all_tasks)
    summary = {
        "vcfnet_version": __version__,
        "preset": cfg.preset,
        "scale": cfg.scale,
        "seed": cfg.seed,
        "size": cfg.size,
        "annotate_normal": cfg.annotate_normal,
        "sign_strength": cfg.sign_strength,
        "class_names": list(CLASS_NAMES),
        "sites": result.sites,
    }
    atomic_write_text(out / "cohort.json", json.dumps(summary, indent=2) + "\n")
    result.seconds = time.perf_counter() - t0
    return result
