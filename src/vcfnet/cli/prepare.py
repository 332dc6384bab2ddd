"""``vcfnet prepare``: radiographs + boxes -> a de-identified, patient-split crop dataset."""

from __future__ import annotations

import argparse

from vcfnet.config import add_config_arguments, resolve_config
from vcfnet.data.config import PrepareConfig
from vcfnet.data.prepare import prepare_dataset


def add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Examples: vcfnet prepare --images dicom/ --annotations xml/ --patients patients.csv "
        "--out data/site1;  vcfnet prepare --imagefolder samples/ --split none --out data/samples"
    )
    add_config_arguments(parser, PrepareConfig)


def run_prepare(args: argparse.Namespace) -> int:
    # the resolved options (paths aside) are saved in the dataset's dataset.json
    result = prepare_dataset(resolve_config(PrepareConfig, args))
    c = result.info["counts"]
    print(
        f"prepared {c['crops']} crops from {c['images']} images of {c['patients']} patients into "
        f"{result.dataset_dir} (crops: {c['by_split']}; patients: {c['patients_by_split']})"
    )
    return 0
