"""The localiser's data: point tables (``vertebrae.csv``, as ``vcfnet synth`` writes them or a user
annotates real films) -> films with their bodies, letterboxed into the model's input size."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from vcfnet.errors import InputError
from vcfnet.io.images import map_threads, read_radiograph
from vcfnet.localiser.targets import LEVELS, Body, Letterbox
from vcfnet.morphometry import POINT_NAMES

log = logging.getLogger(__name__)

POINT_COLUMNS: tuple[str, ...] = tuple(f"{n}_{a}" for n in POINT_NAMES for a in ("x", "y"))
REQUIRED_COLUMNS: tuple[str, ...] = (
    "image",
    "level",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    *POINT_COLUMNS,
)


@dataclass
class FilmTruth:
    """One annotated film: its file, site and bodies (film pixels), and the annotated grades."""

    image: Path
    site: str
    bodies: list[Body]
    grades: dict[str, int]  # level -> annotated Genant grade (where the table has one)


@dataclass(frozen=True)
class PointTable:
    """A ``vertebrae.csv`` and the folder its ``image`` names are relative to."""

    csv: Path
    images: Path
    site: str


def find_point_tables(paths: Sequence[Path], images: Path | None = None) -> list[PointTable]:
    """Point tables from synth output folders (a cohort root or one site) or CSV files.

    A CSV's images are looked up in ``images`` if given, else in ``images/`` beside it, else beside
    it; its site is the ``site`` column when present, else its folder's name."""
    out = []
    for path in paths:
        if path.is_file():
            csvs = [path]
        elif (path / "vertebrae.csv").is_file():
            csvs = [path / "vertebrae.csv"]
        elif path.is_dir():
            csvs = sorted(path.glob("*/vertebrae.csv"))
        else:
            raise InputError(f"{path}: no such file or folder")
        if not csvs:
            raise InputError(
                f"{path}: no vertebrae.csv in it or its sub-folders; give vcfnet synth output or "
                "--points CSV (format: docs/morphometry.md)"
            )
        for csv in csvs:
            folder = images or (
                csv.parent / "images" if (csv.parent / "images").is_dir() else csv.parent
            )
            out.append(PointTable(csv, folder, csv.parent.name))
    return out


def _body(row, csv: Path) -> Body:
    if row["level"] not in LEVELS:
        raise InputError(
            f"{csv}: level {row['level']!r} of {row['image']} is not one of {', '.join(LEVELS)}"
        )
    pts = np.asarray([row[c] for c in POINT_COLUMNS], dtype=float).reshape(6, 2)
    box = np.asarray([row[c] for c in ("xmin", "ymin", "xmax", "ymax")], dtype=float)
    if (
        not (np.isfinite(pts).all() and np.isfinite(box).all())
        or box[2] <= box[0]
        or box[3] <= box[1]
    ):
        raise InputError(
            f"{csv}: {row['image']} {row['level']}: a point or the box is not a number"
        )
    return Body(LEVELS.index(row["level"]), box, pts)


def read_point_table(table: PointTable) -> list[FilmTruth]:
    """The films of one point table, each with its bodies ordered cranio-caudally."""
    try:
        df = pd.read_csv(table.csv, dtype={"image": str, "level": str})
    except (OSError, ValueError) as exc:
        raise InputError(f"{table.csv}: not a readable CSV ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(
            f"{table.csv}: missing columns {', '.join(missing)}; the format is vcfnet synth's "
            "vertebrae.csv (docs/morphometry.md)"
        )
    films = []
    for image, group in df.groupby("image", sort=True):
        path = table.images / str(image)
        if not path.is_file():
            raise InputError(
                f"{table.csv}: image {image} not found in {table.images}; pass --images DIR"
            )
        site = str(group["site"].iloc[0]) if "site" in group.columns else table.site
        bodies = sorted((_body(r, table.csv) for _, r in group.iterrows()), key=lambda b: b.level)
        grades = {}
        if "genant_grade" in group.columns:
            grades = {str(r["level"]): int(r["genant_grade"]) for _, r in group.iterrows()}
        films.append(FilmTruth(path, site, bodies, grades))
    return films


def read_films(paths: Sequence[Path], images: Path | None = None) -> list[FilmTruth]:
    return [f for t in find_point_tables(paths, images) for f in read_point_table(t)]


def letterbox_pixels(pixels: np.ndarray, in_h: int, in_w: int) -> tuple[np.ndarray, Letterbox]:
    """uint8 (in_h, in_w): the film resized into the input (one scale, top-left, zero padding)."""
    lb = Letterbox(pixels.shape[0], pixels.shape[1], in_h, in_w)
    h, w = lb.resized
    out = np.zeros((in_h, in_w), np.uint8)
    img = Image.fromarray(pixels).resize((w, h), Image.Resampling.BILINEAR)
    out[:h, :w] = np.asarray(img)
    return out, lb


def to_input_bodies(bodies: Sequence[Body], lb: Letterbox) -> list[Body]:
    return [
        Body(b.level, lb.to_input(b.box.reshape(2, 2)).reshape(4), lb.to_input(b.points))
        for b in bodies
    ]


@dataclass
class FilmArrays:
    """Films letterboxed for training: uint8 (N, H, W) pixels and each film's bodies (input px)."""

    pixels: np.ndarray
    bodies: list[list[Body]]


def load_film_arrays(films: Sequence[FilmTruth], in_h: int, in_w: int) -> FilmArrays:
    """Decode and letterbox every film (a few threads)."""

    def one(film: FilmTruth):
        px, lb = letterbox_pixels(read_radiograph(film.image).pixels, in_h, in_w)
        return px, to_input_bodies(film.bodies, lb)

    done = map_threads(one, films, min(os.cpu_count() or 1, 4))
    if not done:
        return FilmArrays(np.zeros((0, in_h, in_w), np.uint8), [])
    return FilmArrays(np.stack([d[0] for d in done]), [d[1] for d in done])
