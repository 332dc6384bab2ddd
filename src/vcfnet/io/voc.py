"""LabelImg / Pascal VOC XML boxes: read them as LabelImg writes them, and write them the same way."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vcfnet.errors import InputError
from vcfnet.io.atomic import atomic_write_text


@dataclass(frozen=True)
class VocObject:
    """One ``<object>``: its ``<name>`` (e.g. ``Acute-L1``), box (xmin, ymin, xmax, ymax) and index."""

    name: str
    box: tuple[float, float, float, float]
    index: int = 0
    difficult: bool = False


@dataclass(frozen=True)
class VocAnnotation:
    """One LabelImg XML file."""

    path: Path | None
    filename: str  # the <filename> element ('' if absent)
    width: int | None
    height: int | None
    objects: tuple[VocObject, ...] = field(default_factory=tuple)

    @property
    def image_stem(self) -> str:
        """Stem used to match the image: <filename>'s stem, else the XML file's stem."""
        if self.filename:
            return Path(self.filename.replace("\\", "/")).stem
        return self.path.stem if self.path else ""


def _text(node: ET.Element | None, tag: str) -> str:
    child = node.find(tag) if node is not None else None
    return (child.text or "").strip() if child is not None and child.text else ""


def read_voc(path: Path | str) -> VocAnnotation:
    """Parse a LabelImg XML file; InputError naming the file (and object index) when malformed."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(
            f"{path}: not a readable Pascal VOC XML file ({exc}); re-save it in LabelImg"
        ) from exc
    if root.tag != "annotation":
        raise InputError(
            f"{path}: root element is <{root.tag}>, expected <annotation> (LabelImg Pascal VOC)"
        )
    size = root.find("size")

    def _int_or_none(tag: str) -> int | None:
        value = _text(size, tag)
        try:
            return int(float(value)) if value else None
        except ValueError:
            return None

    objects = []
    for i, obj in enumerate(root.findall("object")):
        name = _text(obj, "name")
        bnd = obj.find("bndbox")
        try:
            box = tuple(float(_text(bnd, k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError as exc:
            raise InputError(
                f"{path}: object {i} ({name or 'unnamed'}) has a missing or non-numeric <bndbox>; "
                "redraw the box in LabelImg"
            ) from exc
        objects.append(
            VocObject(name=name, box=box, index=i, difficult=_text(obj, "difficult") == "1")  # type: ignore[arg-type]
        )
    return VocAnnotation(
        path=path,
        filename=_text(root, "filename"),
        width=_int_or_none("width"),
        height=_int_or_none("height"),
        objects=tuple(objects),
    )


def voc_xml(
    filename: str,
    width: int,
    height: int,
    objects: Sequence[tuple[str, tuple[float, float, float, float]]],
    *,
    folder: str = "images",
    path: str | None = None,
    depth: int = 1,
) -> str:
    """LabelImg-style XML text (tabs, ``verified`` attribute) for ``objects`` = [(name, box), ...]."""
    root = ET.Element("annotation", verified="no")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = filename
    ET.SubElement(root, "path").text = path or f"C:\\Users\\radiology\\{folder}\\{filename}"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "Unknown"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(int(width))
    ET.SubElement(size, "height").text = str(int(height))
    ET.SubElement(size, "depth").text = str(int(depth))
    ET.SubElement(root, "segmented").text = "0"
    for name, box in objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = name
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bnd = ET.SubElement(obj, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
            ET.SubElement(bnd, key).text = str(round(value))
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="unicode") + "\n"


def write_voc(
    path: Path | str,
    filename: str,
    width: int,
    height: int,
    objects: Sequence[tuple[str, tuple[float, float, float, float]]],
    **kwargs,
) -> Path:
    """Write LabelImg XML atomically (see ``voc_xml``)."""
    path = Path(path)
    atomic_write_text(path, voc_xml(filename, width, height, objects, **kwargs))
    return path
