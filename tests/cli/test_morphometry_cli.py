"""``vcfnet morphometry``: a table, CSV or JSON of the measurements of points JSON files."""

from __future__ import annotations

import csv
import io
import json

from vcfnet.cli import main


def _doc(tmp_path):
    verts, y = [], 0.0
    for lv, (ha, hp) in {"T12": (28, 28), "L1": (18, 28), "L2": (28, 28)}.items():
        pts = [[0, y + hp - ha], [15, y], [30, y]] + [[x, y + hp] for x in (0, 15, 30)]
        verts.append({"level": lv, "points": pts})
        y += hp + 8
    path = tmp_path / "film.json"
    path.write_text(json.dumps({"pixel_spacing_mm": [0.5, 0.5], "vertebrae": verts}))
    return path


def test_table_csv_and_json(tmp_path, capsys):
    path = _doc(tmp_path)
    assert main(["morphometry", str(path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["image", "level", "unit"] and len(table) == 4
    assert table[2].split()[-2:] == ["2", "wedge"] and " mm " in table[2]  # 1 - 18/28 = 36 %
    assert main(["morphometry", str(path), "--format", "csv", "--pixels"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    l1 = rows[1]
    assert l1["unit"] == "px" and float(l1["ha"]) == 18 and float(l1["hp"]) == 28
    assert main(["morphometry", str(path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["grade"] == 0


def test_bad_file_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["morphometry", str(bad)]) == 2
    assert "bad.json" in capsys.readouterr().err
