"""Options of ``vcfnet prepare`` and the fixed names of a dataset folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from vcfnet.preprocess import DEFAULT_CACHE_SIZE, DEFAULT_MARGIN

log = logging.getLogger(__name__)

CROPS_DIR = "crops"

REJECT_COLUMNS: tuple[str, ...] = ("file", "object_index", "reason")


@dataclass
class PrepareConfig:
    """Options of ``vcfnet prepare`` (see ``vcfnet prepare --help``)."""

    images: Path | None = field(
        default=None,
        metadata={
            "help": "folder of radiographs (DICOM, PNG, JPEG), searched recursively",
            "metavar": "DIR",
        },
    )
    annotations: Path | None = field(
        default=None,
        metadata={"help": "folder of LabelImg (Pascal VOC) XML files", "metavar": "DIR"},
    )
    imagefolder: Path | None = field(
        default=None,
        metadata={
            "help": "instead of --images/--annotations: folder with Acute/, Chronic/, Pathologic/ subfolders of crops",
            "metavar": "DIR",
        },
    )
    out: Path | None = field(
        default=None, metadata={"help": "output DATASET_DIR (required)", "metavar": "DATASET_DIR"}
    )
    patients: Path | None = field(
        default=None,
        metadata={"help": "CSV with columns image,patient_id[,age,sex,site]", "metavar": "CSV"},
    )
    site: str = field(
        default="default",
        metadata={"help": "site name for images the patients CSV gives no site", "metavar": "NAME"},
    )
    split: str = field(
        default="0.8",
        metadata={
            "help": "train fraction of patients (rest: test), or 'none' to put everything in 'test'",
            "metavar": "FRACTION|none",
        },
    )
    val: float = field(
        default=0.1,
        metadata={
            "help": "fraction of all patients carved from train as the validation split",
            "metavar": "FRACTION",
        },
    )
    seed: int = field(default=0, metadata={"help": "seed of the patient split", "metavar": "N"})
    margin: float = field(
        default=DEFAULT_MARGIN,
        metadata={"help": "relative margin added around each box", "metavar": "FRACTION"},
    )
    cache_size: int = field(
        default=DEFAULT_CACHE_SIZE,
        metadata={"help": "long side of the stored crops, pixels", "metavar": "PX"},
    )
    label_map: Path | None = field(
        default=None,
        metadata={
            "help": "YAML mapping other object names to acute/chronic/pathologic",
            "metavar": "YAML",
        },
    )
    skip_invalid: bool = field(
        default=False,
        metadata={"help": "leave out bad inputs (listed in the rejects CSV) instead of stopping"},
    )
    rejects: Path | None = field(
        default=None,
        metadata={
            "help": "where --skip-invalid lists rejected inputs (default: DATASET_DIR-rejects.csv beside DATASET_DIR, since it names input files)",
            "metavar": "CSV",
        },
    )
    workers: int = field(
        default=0, metadata={"help": "decoding processes (0 = all cores)", "metavar": "N"}
    )
    id_key: str | None = field(
        default=None,
        metadata={
            "help": "secret key for patient pseudonyms; prefer $VCFNET_ID_KEY (command lines are visible to other users); default: a random key kept in ~/.config/vcfnet/id_key",
            "metavar": "KEY",
        },
    )
