"""Point tables: synth folders and --points CSVs of the documented vertebrae.csv format."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vcfnet.errors import InputError
from vcfnet.localiser.data import POINT_COLUMNS, letterbox_pixels, read_films


def _table(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / "mine.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def _row(image: str, level: str, y0: float) -> dict:
    row = {"image": image, "level": level, "xmin": 10, "ymin": y0, "xmax": 60, "ymax": y0 + 30}
    pts = [20, y0 + 1, 35, y0 + 1, 50, y0 + 1, 20, y0 + 29, 35, y0 + 29, 50, y0 + 29]
    row.update(zip(POINT_COLUMNS, pts, strict=True))
    return row


def test_points_csv_with_images_folder(tmp_path: Path):
    films = tmp_path / "films"
    films.mkdir()
    Image.fromarray(np.zeros((200, 100), np.uint8)).save(films / "a.png")
    csv = _table(tmp_path / "ann", [_row("a.png", "L2", 80), _row("a.png", "L1", 40)])
    [film] = read_films([csv], images=films)
    assert film.image == films / "a.png" and film.site == "ann"
    assert [b.level for b in film.bodies] == [2, 3]  # cranial first: L1, L2
    np.testing.assert_allclose(film.bodies[0].points[0], [20, 41])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("upper_middle_x"), "missing columns upper_middle_x"),
        (lambda r: r.update(level="C3"), "not one of T11"),
        (lambda r: r.update(image="b.png"), r"b\.png not found"),
    ],
)
def test_bad_points_csv(tmp_path: Path, change, message):
    row = _row("a.png", "L1", 40)
    change(row)
    Image.fromarray(np.zeros((200, 100), np.uint8)).save(tmp_path / "a.png")
    csv = _table(tmp_path, [row])
    with pytest.raises(InputError, match=message):
        read_films([csv])


def test_synth_folder_without_tables(tmp_path: Path):
    with pytest.raises(InputError, match=r"no vertebrae\.csv"):
        read_films([tmp_path])
    shutil.rmtree(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        read_films([tmp_path])


def test_letterbox_keeps_the_aspect():
    px, lb = letterbox_pixels(np.full((400, 100), 200, np.uint8), 320, 256)
    assert px.shape == (320, 256) and lb.resized == (320, 80)
    assert px[:, :80].min() == 200 and px[:, 80:].max() == 0
