"""The report builder: self-contained HTML (embedded PNG) and Markdown with relative links."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd

from vcfnet.report.figures import save_figure
from vcfnet.report.html import Report


def test_report_html_and_markdown(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    png, _ = save_figure(fig, tmp_path / "figures" / "line")
    df = pd.DataFrame({"class": ["acute", "overall"], "auc": [0.87412, np.nan], "n": [3, 5]})
    report = (
        Report("Eval <1>")
        .heading("Site A")
        .paragraph("a < b & c")
        .bullets(["one", "two"])
        .table(df, caption="Table 2")
        .figure(png, caption="A line")
        .code("vcfnet metrics x.csv")
    )
    html_path, md_path = report.write(tmp_path)
    html = html_path.read_text()
    assert "<title>Eval &lt;1&gt;</title>" in html and "a &lt; b &amp; c" in html
    assert "<td>0.874</td>" in html and "<td></td>" in html  # NaN -> empty cell
    assert base64.b64encode(png.read_bytes()).decode()[:100] in html
    assert "figures/line.png" not in html  # embedded, not linked
    md = md_path.read_text()
    assert md.startswith("# Eval <1>") and "## Site A" in md
    assert "| class | auc | n |" in md and "| acute | 0.874 | 3 |" in md
    assert "![A line](figures/line.png)" in md
    assert "- two" in md and "```" in md
