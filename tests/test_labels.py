import pytest

from vcfnet.errors import InputError
from vcfnet.labels import parse_object_name


@pytest.mark.parametrize(
    ("name", "label", "level"),
    [
        ("Acute", "acute", ""),
        ("acute", "acute", ""),
        ("Acute-L1", "acute", "L1"),
        ("Chronic-T12", "chronic", "T12"),
        ("Pathologic-L4", "pathologic", "L4"),
        ("PATHOLOGIC_l2", "pathologic", "L2"),
    ],
)
def test_parse_object_name(name, label, level):
    parsed = parse_object_name(name)
    assert (parsed.label, parsed.level) == (label, level)


def test_unknown_class_names_the_fix():
    with pytest.raises(InputError, match="label-map"):
        parse_object_name("Fresh-L1")
    assert parse_object_name("Fresh-L1", {"fresh": "acute"}).label == "acute"
    assert parse_object_name("Normal-L3", allow_normal=True).label == "normal"
