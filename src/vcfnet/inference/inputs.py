"""What a prediction is asked about: radiographs with boxes (``--box``, LabelImg XML) or pre-cut
crop files, read and checked before any model runs."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcfnet.data.pseudonym import OutputNames
from vcfnet.errors import ConfigError, InputError
from vcfnet.geometry import Box
from vcfnet.io.images import find_images, map_threads, read_radiograph
from vcfnet.io.voc import read_voc
from vcfnet.labels import parse_object_name
from vcfnet.preprocess import to_gray_uint8

log = logging.getLogger(__name__)


def read_crop_files(paths: Sequence[Path]) -> list[np.ndarray]:
    """Pixels of each file, decoded on a few threads (Pillow releases the GIL while it decodes)."""
    return map_threads(lambda p: read_radiograph(p).pixels, paths, min(os.cpu_count() or 1, 8))


def as_gray_image(image) -> tuple[np.ndarray, Path | None, str]:
    """(uint8 (H, W) pixels, the file's path or None for an array, its DICOM PatientID or '').

    The PatientID stays in memory: outputs name patients by keyed pseudonyms (OutputNames)."""
    if isinstance(image, str | Path):
        radiograph = read_radiograph(image)
        return radiograph.pixels, Path(image), radiograph.patient.patient_id
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise InputError(
            f"image array has dtype {arr.dtype}; pass a display-ready uint8 array (bone bright) "
            "or a file path (DICOM/PNG/JPEG)"
        )
    return to_gray_uint8(arr), None, ""


def name_of(path: Path | None, patient_id: str, names: OutputNames | None) -> tuple[str, str]:
    """(source, patient) of an input in outputs: keyed pseudonyms with ``names``; otherwise the
    path as given and no patient (the library never writes a raw or unkeyed patient ID)."""
    if path is None:
        return "<array>", ""
    if names is None:
        return str(path), ""
    return names.image(path), names.patient(patient_id, path)


def label_from_folder(path: Path, class_names: Sequence[str]) -> str:
    """The class of a crop in an ImageFolder layout (``Acute/x.png`` -> 'acute'), else ''."""
    name = path.parent.name.lower()
    return name if name in class_names else ""


def parse_box(text: str) -> Box:
    """'x1,y1,x2,y2' -> floats; InputError otherwise."""
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise InputError(f"--box {text!r}: expected four numbers x1,y1,x2,y2 (pixels)")
    return values  # type: ignore[return-value]


def find_crop_files(inputs: Sequence[Path]) -> list[Path]:
    """Crop image files from files and folders (recursive, sorted)."""
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            files.extend(find_images(item))
        elif item.is_file():
            files.append(item)
        else:
            raise InputError(f"{item}: no such file or folder")
    if not files:
        raise InputError(f"no crop images found in {', '.join(map(str, inputs))}")
    return files


@dataclass(frozen=True)
class BoxedImage:
    """A radiograph to predict with its boxes and, when the XML names them, labels and levels."""

    path: Path
    boxes: tuple[Box, ...]
    labels: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()


def boxes_from_xml(xml: Path, class_names: Sequence[str]) -> tuple[list[Box], list[str], list[str]]:
    """Boxes, labels and levels of a LabelImg file; InputError if a class is not the model's.

    Boxes named ``Normal`` (``vcfnet synth --annotate-normal``) are skipped: the model grades
    fractures, it does not detect them.
    """
    ann = read_voc(xml)
    boxes, labels, levels = [], [], []
    for obj in ann.objects:
        parsed = parse_object_name(obj.name, allow_normal=True)
        if parsed.label == "normal":
            log.debug("%s: skipping object %d (%s)", xml, obj.index, obj.name)
            continue
        if parsed.label not in class_names:
            raise InputError(
                f"{xml}: object {obj.index} is {obj.name!r} but the model's classes are "
                f"{', '.join(class_names)}; fix the XML or use a model trained on these classes"
            )
        boxes.append(obj.box)
        labels.append(parsed.label)
        levels.append(parsed.level)
    return boxes, labels, levels


def expand_xml_args(xmls: Sequence[Path]) -> list[Path]:
    """--xml values: .xml files as given, folders -> their *.xml files (sorted)."""
    files: list[Path] = []
    for xml in xmls:
        if xml.is_dir():
            files.extend(sorted(xml.glob("*.xml")))
        elif xml.suffix.lower() == ".xml":
            files.append(xml)
        else:
            raise ConfigError(
                f"--xml {xml}: not an .xml file or a folder; give the images before --xml"
            )
    if not files:
        raise InputError(f"no .xml files in {', '.join(map(str, xmls))}")
    return files


def plan_images(
    inputs: Sequence[Path],
    box_texts: Sequence[str],
    xmls: Sequence[Path],
    class_names: Sequence[str],
) -> list[BoxedImage]:
    """Pair every radiograph with its boxes (--box, a matching --xml, or IMAGE.xml beside it)."""
    if box_texts and xmls:
        raise ConfigError("give boxes either with --box or with --xml, not both")
    boxes = tuple(parse_box(t) for t in box_texts)
    by_stem: dict[str, Path] = {}
    if xmls:
        xmls = expand_xml_args(xmls)
        for xml in xmls:
            by_stem[read_voc(xml).image_stem] = xml
    plans = []
    for path in inputs:
        if not path.is_file():
            raise InputError(f"{path}: image not found")
        if boxes:
            plans.append(BoxedImage(path, boxes))
            continue
        if len(xmls) == 1 and len(inputs) == 1:
            xml = xmls[0]
        else:
            xml = by_stem.get(path.stem) or (path.with_suffix(".xml") if not xmls else None)
        if xml is None or not xml.is_file():
            raise InputError(
                f"{path}: no boxes; pass --box x1,y1,x2,y2, --xml FILE (LabelImg), put "
                f"{path.with_suffix('.xml').name} beside it, or use --crops for pre-cut crops"
            )
        xboxes, labels, levels = boxes_from_xml(xml, class_names)
        if not xboxes:
            raise InputError(f"{xml}: no fracture boxes (only Normal or none) for {path.name}")
        plans.append(BoxedImage(path, tuple(xboxes), tuple(labels), tuple(levels)))
    return plans
