"""Every visible vertebral body of a synthetic radiograph: level, box and six morphometry points.

The points are the ones a reader places for six-point morphometry: anterior, middle and posterior
on the upper endplate and, in the same columns, on the lower endplate. They are computed from the
geometry the renderer draws (``Vertebra.drawn_endplates`` and ``Vertebra.walls``, after the spine's
lean and lordosis), in image pixels: ``x`` = column, ``y`` = row, ``(0, 0)`` = the centre of the
top-left pixel (the renderer's grid). Anterior and posterior sit in the small windows of
``MEASURE_U`` where the generator measures its Genant height loss, at the column of least height
(where a reader's calipers sit), a little inside the wall; middle likewise around the centre.

Written by ``vcfnet synth`` as ``<site>/vertebrae/<image>.json`` and ``<site>/vertebrae.csv``
(see docs/morphometry.md).
"""

from __future__ import annotations

import json

import numpy as np

from vcfnet.morphometry import POINT_NAMES
from vcfnet.synth.anatomy import Vertebra
from vcfnet.synth.fractures import MEASURE_U

VERTEBRA_COLUMNS: tuple[str, ...] = (
    "image",
    "level",
    "label",
    "genant_grade",
    "shape",
    "truncated",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    *(f"{name}_{axis}" for name in POINT_NAMES for axis in ("x", "y")),
)
FORMAT_VERSION = 1
_WINDOW = 0.04  # half width (u) of each measuring window
_WALL_MARGIN = 0.02  # how far (u) inside the wall an anterior/posterior point stays


def _column(vert: Vertebra, u0: float) -> float:
    """The column (u) near ``u0`` with the least drawn height, inside both walls."""
    u = np.linspace(u0 - _WINDOW, u0 + _WINDOW, 17)
    top, bot = vert.drawn_endplates(u)
    ant_t, post_t = vert.walls(top)
    ant_b, post_b = vert.walls(bot)
    lo = np.maximum(ant_t, ant_b) + _WALL_MARGIN
    hi = np.minimum(post_t, post_b) - _WALL_MARGIN
    ok = (u >= lo) & (u <= hi)
    if not ok.any():  # the walls cut into the window: the innermost column inside them
        return float(np.clip(u0, lo.max(), hi.min()))
    height = np.where(ok, bot - top, np.inf)
    return float(u[int(np.argmin(height))])


def morphometry_points(vert: Vertebra) -> np.ndarray:
    """(6, 2) image (x, y) of the six points of ``vert``, in ``POINT_NAMES`` order."""
    cols = np.array([_column(vert, u0) for u0 in MEASURE_U])
    top, bot = vert.drawn_endplates(cols)
    x, y = vert.to_image(np.concatenate([cols, cols]), np.concatenate([top, bot]))
    return np.stack([x, y], axis=1)


def vertebra_records(
    spine: list[Vertebra], fractured: dict[str, str], shape: tuple[int, int]
) -> list[dict]:
    """One record per vertebral body whose six points lie in the image (rows, columns).

    ``box`` is the body's tight box clipped to the image (``truncated`` when clipping cut it);
    ``label``/``genant_grade``/``shape`` are the generator's truth (``normal``/0/``none`` for a
    non-fractured body, whatever its sub-threshold deformity).
    """
    rows, cols = shape
    out = []
    for vert in spine:
        pts = morphometry_points(vert)
        if (pts < 0).any() or (pts[:, 0] > cols - 1).any() or (pts[:, 1] > rows - 1).any():
            continue
        x1, y1, x2, y2 = vert.body_box()
        box = (max(x1, 0.0), max(y1, 0.0), min(x2, cols - 1.0), min(y2, rows - 1.0))
        is_fx = vert.level in fractured
        out.append(
            {
                "level": vert.level,
                "label": vert.spec.label if is_fx else "normal",
                "genant_grade": vert.spec.grade if is_fx else 0,
                "shape": vert.spec.shape if is_fx else "none",
                "truncated": box != (x1, y1, x2, y2),
                "box": [round(float(b), 2) for b in box],
                "points": [[round(float(px), 2), round(float(py), 2)] for px, py in pts],
            }
        )
    return out


def image_document(
    image: str, shape: tuple[int, int], pixel_spacing: float, records: list[dict]
) -> dict:
    """The per-radiograph JSON document (``<site>/vertebrae/<image>.json``)."""
    return {
        "format": "vcfnet-vertebrae",
        "version": FORMAT_VERSION,
        "image": image,
        "rows": shape[0],
        "columns": shape[1],
        "pixel_spacing_mm": [round(pixel_spacing, 4)] * 2,  # as the DICOM PixelSpacing
        "coordinates": "pixels; x = column, y = row; (0, 0) = centre of the top-left pixel",
        "point_names": list(POINT_NAMES),
        "vertebrae": records,
    }


def dumps_document(doc: dict) -> str:
    """``doc`` as JSON text, one line per vertebra (deterministic: same document, same bytes)."""
    head = {k: v for k, v in doc.items() if k != "vertebrae"}
    lines = [json.dumps(v) for v in doc["vertebrae"]]
    body = ",\n  ".join(lines)
    text = json.dumps(head, indent=1)[:-2]
    return (
        f'{text},\n "vertebrae": [\n  {body}\n ]\n}}\n'
        if lines
        else text + ',\n "vertebrae": []\n}\n'
    )


def csv_rows(image: str, records: list[dict]) -> list[dict]:
    """The records as rows of ``<site>/vertebrae.csv`` (``VERTEBRA_COLUMNS``)."""
    out = []
    for r in records:
        row = {k: r[k] for k in ("level", "label", "genant_grade", "shape")}
        row["image"] = image
        row["truncated"] = int(r["truncated"])
        row.update(zip(("xmin", "ymin", "xmax", "ymax"), r["box"], strict=True))
        for name, (px, py) in zip(POINT_NAMES, r["points"], strict=True):
            row[f"{name}_x"], row[f"{name}_y"] = px, py
        out.append(row)
    return out
