"""Class vocabulary and parsing of annotation object names such as ``Acute-L1``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from vcfnet.errors import InputError

#: The three fracture classes, in the order of the model's outputs.
CLASS_NAMES: tuple[str, ...] = ("acute", "chronic", "pathologic")

#: Vertebral levels a lateral lumbar radiograph shows, cranial to caudal.
LEVELS: tuple[str, ...] = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")

_NAME_RE = re.compile(
    r"^\s*(?P<cls>[A-Za-z][A-Za-z _]*?)\s*(?:[-_ ]\s*(?P<level>[TLStls]\d{1,2}))?\s*$"
)


@dataclass(frozen=True)
class ObjectLabel:
    """A parsed annotation name: class (one of CLASS_NAMES or ``normal``) and level (``L1``) or ''."""

    label: str
    level: str = ""


def parse_object_name(
    name: str, label_map: Mapping[str, str] | None = None, *, allow_normal: bool = False
) -> ObjectLabel:
    """Parse ``Acute``, ``acute``, ``Acute-L1``, ``Chronic-T12`` into class and level.

    ``label_map`` maps other vocabularies (lower-cased keys, e.g. ``{"fresh": "acute"}``) to our
    class names. Raises InputError for an unknown class.
    """
    match = _NAME_RE.match(name or "")
    if not match:
        raise InputError(
            f"cannot parse object name {name!r}: expected '<Class>' or '<Class>-<Level>' "
            f"(e.g. 'Acute-L1'); use --label-map for other vocabularies"
        )
    raw = match.group("cls").strip().lower()
    level = (match.group("level") or "").upper()
    mapping = {k.lower(): v.lower() for k, v in (label_map or {}).items()}
    label = mapping.get(raw, raw)
    allowed = set(CLASS_NAMES) | ({"normal"} if allow_normal else set())
    if label not in allowed:
        raise InputError(
            f"unknown class {match.group('cls')!r} in object name {name!r}: expected one of "
            f"{', '.join(CLASS_NAMES)} (case-insensitive); use --label-map to map other names"
        )
    return ObjectLabel(label=label, level=level)
