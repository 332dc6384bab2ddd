import pytest

from vcfnet.errors import InputError
from vcfnet.io.voc import read_voc, write_voc

LABELIMG = """<annotation verified="yes">
\t<folder>JPEGImages</folder>
\t<filename>case 001.png</filename>
\t<path>D:\\\\hospital\\\\JPEGImages\\\\case 001.png</path>
\t<source>
\t\t<database>Unknown</database>
\t</source>
\t<size>
\t\t<width>800</width>
\t\t<height>1000</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>Acute-L1</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>0</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>100</xmin>
\t\t\t<ymin>200</ymin>
\t\t\t<xmax>300</xmax>
\t\t\t<ymax>350</ymax>
\t\t</bndbox>
\t</object>
\t<object>
\t\t<name>chronic</name>
\t\t<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox>
\t</object>
</annotation>
"""


def test_reads_labelimg_xml(tmp_path):
    (tmp_path / "a.xml").write_text(LABELIMG)
    ann = read_voc(tmp_path / "a.xml")
    assert ann.filename == "case 001.png" and ann.image_stem == "case 001"
    assert (ann.width, ann.height) == (800, 1000)
    assert [o.name for o in ann.objects] == ["Acute-L1", "chronic"]
    assert ann.objects[0].box == (100, 200, 300, 350) and ann.objects[1].index == 1


def test_write_read_round_trip(tmp_path):
    write_voc(tmp_path / "b.xml", "b.dcm", 512, 640, [("Pathologic-L4", (10, 20, 30.4, 40.6))])
    text = (tmp_path / "b.xml").read_text()
    assert "\t<filename>b.dcm</filename>" in text and 'verified="no"' in text
    ann = read_voc(tmp_path / "b.xml")
    assert ann.objects[0].box == (10, 20, 30, 41) and ann.objects[0].name == "Pathologic-L4"


@pytest.mark.parametrize(
    "text", ["<annotation><object><name>Acute</name></object></annotation>", "not xml", "<foo/>"]
)
def test_malformed_xml(tmp_path, text):
    (tmp_path / "c.xml").write_text(text)
    with pytest.raises(InputError, match=r"c\.xml"):
        read_voc(tmp_path / "c.xml")


def test_written_files_get_normal_permissions(tmp_path):
    import os
    import stat

    path = write_voc(tmp_path / "p.xml", "p.dcm", 10, 10, [])
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
