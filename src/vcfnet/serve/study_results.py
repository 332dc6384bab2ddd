"""The results of a reader study (issue 14): the truth and reads tables in the layout of
``vcfnet readers``, the live analysis by ``vcfnet.reader_study`` (Table 3, McNemar/DeLong per
reader, OR-Hillis MRMC) on the vertebrae read by every reader, progress, and the zip export."""

from __future__ import annotations

import io
import json
import logging
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from vcfnet.errors import InputError
from vcfnet.evaluation.predictions import PROB_COLUMNS
from vcfnet.labels import CLASS_NAMES
from vcfnet.reader_study.analysis import mrmc_by_class, reader_comparisons, reader_table
from vcfnet.reader_study.reads import READS_COLUMNS, Reads, Truth, load_reads, load_truth
from vcfnet.serve.models import Study, StudyRead, StudyReader
from vcfnet.serve.studies import reader_state
from vcfnet.serve.study_ratings import score_columns, score_values

log = logging.getLogger(__name__)


# -------------------------------------------------------------------------------------- analysis


def box_case_id(case_id: int, level: str) -> str:
    """The analysis's case id of a study box."""
    return f"{case_id}-{level}"


def truth_frame(study: Study) -> pd.DataFrame:
    """The truth table of ``vcfnet readers``: case_id, label, pred, p_* (the model's output shown
    in aided reads, so Table 3 has the model's row)."""
    rows = []
    for entry in study.protocol["cases"]:
        for box, ai in zip(entry["boxes"], entry["ai"], strict=True):
            probs = ai["probabilities"]
            rows.append(
                {
                    "case_id": box_case_id(entry["case_id"], box["level"]),
                    "label": box["truth"],
                    "pred": ai["predicted"],
                    **{
                        col: float(probs[c])
                        for col, c in zip(PROB_COLUMNS, CLASS_NAMES, strict=True)
                    },
                }
            )
    return pd.DataFrame(rows, columns=["case_id", "label", "pred", *PROB_COLUMNS])


def reads_frame(db: Session, study: Study) -> pd.DataFrame:
    """Every submitted read in the layout of ``vcfnet readers``: case_id, reader, reader_level,
    mode, label and the scores of the study's rating scale (p_* for sliders, rating_* for the
    5-point scale, none without ratings)."""
    levels = {r["user_id"]: (r["username"], r["level"]) for r in study.protocol["readers"]}
    position = {r["user_id"]: r["position"] for r in study.protocol["readers"]}
    cases = {c["study_case_id"]: c for c in study.protocol["cases"]}
    case_pos = {c["study_case_id"]: i for i, c in enumerate(study.protocol["cases"])}
    reads = db.execute(
        select(StudyRead, StudyReader.user_id)
        .join(StudyReader, StudyRead.reader_id == StudyReader.id)
        .where(StudyReader.study_id == study.id)
    ).all()
    reads = sorted(
        reads,
        key=lambda row: (
            position[row[1]],
            row[0].mode != "unaided",
            case_pos[row[0].study_case_id],
            row[0].box,
        ),
    )
    scale = study.protocol["confidence"]
    columns = [c for c in READS_COLUMNS if c not in PROB_COLUMNS] + list(score_columns(scale))
    rows = []
    for read, user_id in reads:
        entry = cases[read.study_case_id]
        name, level = levels[user_id]
        row = {
            "case_id": box_case_id(entry["case_id"], entry["boxes"][read.box]["level"]),
            "reader": name,
            "reader_level": level,
            "mode": read.mode,
            "label": read.label,
        }
        row.update(score_values(scale, read.confidences))
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


@dataclass
class StudyResults:
    """The live analysis: Table 3, the per-reader tests and the MRMC result, or why not yet."""

    reads: int
    complete: bool
    n_cases: int = 0  # box-cases analysed
    truth_df: pd.DataFrame | None = None  # the inputs of vcfnet.reader_study (reads: analysed)
    reads_df: pd.DataFrame | None = None
    modes: tuple[str, ...] = ()
    table: pd.DataFrame | None = None
    comparisons: pd.DataFrame | None = None
    mrmc: dict[str, Any] | None = None
    message: str = ""
    truth: Truth | None = None  # the validated inputs (for Figure 6)
    analysed: Reads | None = None


def complete_subset(reads: pd.DataFrame, readers: Sequence[str]) -> tuple[pd.DataFrame, tuple]:
    """The reads of the box-cases every reader has read in every mode (both modes when some are,
    else unaided only): the part of an unfinished study that ``load_reads`` can analyse."""
    for modes in (("unaided", "aided"), ("unaided",)):
        part = reads[reads["mode"].isin(modes)]
        counts = part.groupby("case_id").size()
        full = counts[counts == len(readers) * len(modes)].index
        if len(full):
            return part[part["case_id"].isin(full)], modes
    return reads.iloc[0:0], ()


def analyse(db: Session, study: Study, *, level: float = 0.95) -> StudyResults:
    """Table 3, comparisons and MRMC from the recorded reads by ``vcfnet.reader_study``."""
    if study.protocol is None:
        return StudyResults(0, False, message="the study has not been launched")
    truth_df = truth_frame(study)
    reads_df = reads_frame(db, study)
    readers = [r["username"] for r in study.protocol["readers"]]
    expected = len(truth_df) * len(readers) * 2
    complete = len(reads_df) == expected
    result = StudyResults(len(reads_df), complete)
    part, modes = complete_subset(reads_df, readers)
    if part.empty:
        result.message = "no case has been read by every reader yet"
        return result
    result.truth_df, result.reads_df = truth_df, part
    try:
        truth = load_truth(truth_df)
        reads = load_reads(part, truth)
        result.truth, result.analysed = truth, reads
        result.table = reader_table(truth, reads)
        result.comparisons = reader_comparisons(truth, reads, level)
        result.mrmc = mrmc_by_class(truth, reads, level=level)
    except (InputError, ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
        result.message = f"not enough reads for the analysis yet: {str(exc).splitlines()[0]}"
        result.table = result.comparisons = result.mrmc = None
        return result
    result.n_cases, result.modes = int(reads.case_index.size), modes
    return result


def progress(db: Session, study: Study) -> list[dict]:
    """Per reader: username, level, their state and median seconds per case and mode."""
    out = []
    for reader in study.readers:
        state = reader_state(db, study, reader) if study.protocol else None
        seconds: dict[str, list[float]] = {}
        per_case = {(r.study_case_id, r.mode): (r.mode, r.seconds) for r in reader.reads}
        for mode, value in per_case.values():
            seconds.setdefault(mode, []).append(value)
        out.append(
            {
                "username": reader.user.username,
                "user_id": reader.user_id,
                "level": reader.level,
                "state": state,
                "median_seconds": {m: float(np.median(v)) for m, v in seconds.items()},
            }
        )
    return out


def export_zip(db: Session, study: Study, *, figures: bool = True) -> bytes:
    """The whole study as one zip: protocol.json, truth.csv, reads.csv (all reads) and, when
    some cases are read by every reader, ``results/`` as written by ``vcfnet readers`` on them."""
    from vcfnet.reader_study.report import run_reader_study  # matplotlib and the report: lazily

    results = analyse(db, study)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("protocol.json", json.dumps(study.protocol, indent=2) + "\n")
        zf.writestr("truth.csv", truth_frame(study).to_csv(index=False))
        zf.writestr("reads.csv", reads_frame(db, study).to_csv(index=False))
        status = "complete" if results.complete else "INTERIM (not every read is in)"
        note = [f"Study {study.id} '{study.name}', {study.status}; reads {status}."]
        if results.table is not None:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp)
                simulated = bool(study.protocol.get("simulated", False))
                run_reader_study(
                    results.truth_df, results.reads_df, out, figures=figures, simulated=simulated
                )
                for path in sorted(out.iterdir()):
                    zf.write(path, f"results/{path.name}")
            note.append(
                f"results/: vcfnet readers on the {results.n_cases} vertebra(e) read by every "
                f"reader in {' and '.join(results.modes)} mode."
            )
        else:
            note.append(f"No results yet: {results.message}.")
        zf.writestr("README.txt", "\n".join(note) + "\n")
    return buffer.getvalue()


_PYPLOT = threading.Lock()  # pyplot's figure registry is not thread-safe (sync routes: threads)


def figure6_png(results: StudyResults) -> bytes | None:
    """Figure 6 (``vcfnet.reader_study.report.plot_figure6``) of the analysed reads as PNG bytes,
    or None while there is no Table 3 yet."""
    from vcfnet.reader_study.report import plot_figure6  # matplotlib: lazily

    if results.table is None or results.truth is None or results.analysed is None:
        return None
    with tempfile.TemporaryDirectory() as tmp, _PYPLOT:
        paths = plot_figure6(results.truth, results.analysed, results.table, Path(tmp) / "fig6")
        return next(p for p in paths if p.suffix == ".png").read_bytes()


def _records(df: pd.DataFrame | None) -> list[dict] | None:
    """JSON-safe rows (NaN -> None)."""
    if df is None:
        return None
    return json.loads(df.to_json(orient="records"))


def _finite(value: Any) -> Any:
    """``value`` with NumPy scalars as Python numbers and NaN/inf as None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def results_dict(db: Session, study: Study, results: StudyResults) -> dict[str, Any]:
    """The results as JSON: progress per reader, Table 3, the per-reader tests and the MRMC."""
    readers = []
    for p in progress(db, study):
        state = p["state"]
        readers.append(
            {
                "username": p["username"],
                "level": p["level"],
                "status": state.status if state else "draft",
                "done": {str(k): v for k, v in state.done.items()} if state else {},
                "n_cases": state.n_cases if state else 0,
                "median_seconds": p["median_seconds"],
            }
        )
    mrmc = _finite(results.mrmc) if results.mrmc else None
    return {
        "study": {"id": study.id, "name": study.name, "status": study.status},
        "interim": not results.complete,
        "reads": results.reads,
        "n_cases": results.n_cases,
        "modes": list(results.modes),
        "message": results.message,
        "readers": readers,
        "table3": _records(results.table),
        "comparisons": _records(results.comparisons),
        "mrmc": mrmc,
    }
