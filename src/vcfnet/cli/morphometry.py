"""``vcfnet morphometry POINTS_JSON...``: a table of heights, ratios, Genant grade and shape."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from vcfnet.morphometry import Reference, measure_spine, read_points_json

COLUMNS = ("image", "level", "unit", "ha", "hm", "hp", "wedge", "biconcave", "crush")
COLUMNS += ("height_loss", "grade", "shape")


def add_morphometry_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "points",
        nargs="+",
        type=Path,
        metavar="POINTS_JSON",
        help="vertebrae JSON files (the format vcfnet synth writes; docs/morphometry.md)",
    )
    parser.add_argument(
        "--format", choices=("table", "csv", "json"), default="table", help="output format"
    )
    parser.add_argument(
        "--pixels", action="store_true", help="heights in pixels even when a spacing is given"
    )
    parser.add_argument(
        "--normal-hm-hp",
        type=float,
        default=1.0,
        help="Hm/Hp of a normal body (1.0 = raw ratios; e.g. 0.95 for slightly concave endplates)",
    )
    parser.add_argument(
        "--normal-ha-hp", type=float, default=1.0, help="Ha/Hp of a normal body (1.0 = raw)"
    )


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def run_morphometry(args: argparse.Namespace) -> int:
    ref = Reference(ha_hp=args.normal_ha_hp, hm_hp=args.normal_hm_hp)
    rows = []
    for path in args.points:
        verts, spacing = read_points_json(path)
        for m in measure_spine(verts, None if args.pixels else spacing, ref):
            d = m.to_dict()
            rows.append({"image": path.stem, **{k: d[k] for k in COLUMNS if k != "image"}})
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    elif args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        cells = [list(COLUMNS)] + [[_fmt(r[k]) for k in COLUMNS] for r in rows]
        widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
        for c in cells:
            print("  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)))
    return 0
