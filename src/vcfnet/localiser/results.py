"""What ``vcfnet localize`` writes: per film its bodies (level, box, six points, confidence) with
their morphometry (``vcfnet.morphometry``, mm when the DICOM has a PixelSpacing); as JSON
records, CSV rows, LabelImg objects and an overlay picture."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from vcfnet.data.pseudonym import OutputNames
from vcfnet.errors import InputError
from vcfnet.inference.inputs import name_of
from vcfnet.io.images import read_radiograph
from vcfnet.localiser.model import Localiser
from vcfnet.localiser.targets import Body
from vcfnet.morphometry import POINT_NAMES, measure_spine

MORPHOMETRY_KEYS = (
    "unit",
    "ha",
    "hm",
    "hp",
    "wedge",
    "biconcave",
    "crush",
    "height_loss",
    "grade",
    "shape",
)
CSV_COLUMNS: tuple[str, ...] = (
    "image",
    "patient",
    "level",
    "confidence",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    *(f"{n}_{a}" for n in POINT_NAMES for a in ("x", "y")),
    *MORPHOMETRY_KEYS,
)
#: overlay colour per Genant grade (None = not graded)
GRADE_COLOURS = {
    None: (150, 150, 150),
    0: (60, 200, 90),
    1: (240, 200, 40),
    2: (245, 130, 30),
    3: (230, 40, 40),
}


def _r(v, nd: int = 2):
    return None if v is None else round(float(v), nd)


def body_records(
    bodies: Sequence[Body], levels: Sequence[str], spacing: float | None
) -> list[dict]:
    """One JSON-ready dict per body: level, confidence, box, points, morphometry."""
    verts = [(levels[b.level], b.points) for b in bodies]
    try:
        morph = measure_spine(verts, (spacing, spacing) if spacing else None) if verts else []
    except InputError:
        morph = [None] * len(verts)
    out = []
    for b, m in zip(bodies, morph, strict=True):
        rec = {
            "level": levels[b.level],
            "confidence": _r(b.confidence, 3),
            "box": [_r(v) for v in b.box],
            "points": [[_r(x), _r(y)] for x, y in b.points],
        }
        if m is not None:
            d = m.to_dict()
            rec["morphometry"] = {
                k: (_r(d[k], 4) if isinstance(d[k], float) else d[k]) for k in MORPHOMETRY_KEYS
            }
        out.append(rec)
    return out


def localise_image(
    localiser: Localiser, path: Path, names: OutputNames | None
) -> tuple[dict, np.ndarray]:
    """The JSON record of one film (keyed pseudonyms with ``names``) and its pixels."""
    radiograph = read_radiograph(path)
    source, patient = name_of(path, radiograph.patient.patient_id, names)
    bodies = localiser.predict_pixels(radiograph.pixels)
    spacing = radiograph.pixel_spacing_mm
    record = {
        "image": source,
        "patient": patient,
        "rows": radiograph.shape[0],
        "columns": radiograph.shape[1],
        "pixel_spacing_mm": spacing,
        "model_hash": localiser.model_hash,
        "point_names": list(POINT_NAMES),
        "vertebrae": body_records(bodies, localiser.levels, spacing),
    }
    return record, radiograph.pixels


def csv_rows(record: dict) -> list[dict]:
    rows = []
    for v in record["vertebrae"]:
        row = {"image": record["image"], "patient": record["patient"], "level": v["level"]}
        row["confidence"] = v["confidence"]
        row.update(zip(("xmin", "ymin", "xmax", "ymax"), v["box"], strict=True))
        for name, (x, y) in zip(POINT_NAMES, v["points"], strict=True):
            row[f"{name}_x"], row[f"{name}_y"] = x, y
        row.update(v.get("morphometry", {}))
        rows.append(row)
    return rows


def voc_objects(record: dict) -> list[tuple[str, tuple[float, float, float, float]]]:
    """LabelImg objects: ``Normal-L3`` for grade 0 (or not graded), ``Fracture-L1`` for a body
    graded >= 1, for the radiologist to rename Acute/Chronic/Pathologic (or Normal) in LabelImg."""
    out = []
    for v in record["vertebrae"]:
        grade = (v.get("morphometry") or {}).get("grade")
        name = "Fracture" if grade else "Normal"
        out.append((f"{name}-{v['level']}", tuple(v["box"])))
    return out


def fractured_boxes(record: dict, min_grade: int = 1) -> tuple[list[tuple], list[str]]:
    """(boxes, levels) of the bodies graded >= ``min_grade``."""
    boxes, levels = [], []
    for v in record["vertebrae"]:
        grade = (v.get("morphometry") or {}).get("grade")
        if grade is not None and grade >= min_grade:
            boxes.append(tuple(v["box"]))
            levels.append(v["level"])
    return boxes, levels


def draw_overlay(pixels: np.ndarray, record: dict, max_side: int = 1024) -> Image.Image:
    """RGB picture of the film with each body's box (coloured by Genant grade), level, grade and
    six points."""
    img = Image.fromarray(pixels).convert("RGB")
    scale = min(1.0, max_side / max(img.size))
    if scale < 1:
        img = img.resize(
            (round(img.width * scale), round(img.height * scale)), Image.Resampling.BILINEAR
        )
    draw = ImageDraw.Draw(img)
    width = max(1, round(2 * img.height / 640))
    for v in record["vertebrae"]:
        grade = (v.get("morphometry") or {}).get("grade")
        colour = GRADE_COLOURS.get(grade, GRADE_COLOURS[None])
        x1, y1, x2, y2 = (c * scale for c in v["box"])
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        label = v["level"] + ("" if grade is None else f" G{grade}")
        draw.text((x2 + 3, y1), label, fill=colour)
        for x, y in v["points"]:
            r = width + 1
            draw.ellipse(
                (x * scale - r, y * scale - r, x * scale + r, y * scale + r), fill=(80, 170, 255)
            )
    return img
