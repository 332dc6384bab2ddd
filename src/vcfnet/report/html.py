"""A small report builder: one self-contained HTML file (PNG figures embedded) and Markdown.

report = Report("Evaluation")
report.heading("Testing set")
report.paragraph("Metrics are one-vs-rest ...")
report.table(metrics_df, caption="Table 2")
report.figure(Path("figures/roc.png"), caption="ROC curves")
report.write(out_dir)  # out_dir/report.html + out_dir/report.md
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vcfnet.io.atomic import atomic_write_text

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #0072B2; padding-bottom: .2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f4f8; } td:first-child, th:first-child { text-align: left; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: .3em 0; }
figure { display: inline-block; margin: .5em 1em .5em 0; vertical-align: top; }
figure img { max-width: 520px; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #444; max-width: 520px; }
figure.wide img, figure.wide figcaption { max-width: 100%; }
pre { background: #f6f8fa; padding: .6em; overflow-x: auto; }
"""


def format_cell(value, digits: int = 3) -> str:
    """Plain text of a table cell: floats to ``digits`` decimals, NaN/None as an empty cell."""
    if value is None or (isinstance(value, float | np.floating) and not np.isfinite(value)):
        return ""
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}f}"
    return str(value)


@dataclass
class Report:
    """Blocks (heading, paragraph, bullets, table, figure, code) rendered to HTML or Markdown."""

    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> Report:
        self.blocks.append(("heading", (min(max(level, 1), 6), text)))
        return self

    def paragraph(self, text: str) -> Report:
        self.blocks.append(("paragraph", text))
        return self

    def bullets(self, items: Sequence[str]) -> Report:
        self.blocks.append(("bullets", list(items)))
        return self

    def table(self, df: pd.DataFrame, caption: str = "", digits: int = 3) -> Report:
        self.blocks.append(("table", (df.copy(), caption, digits)))
        return self

    def figure(self, path: Path | str, caption: str = "", *, wide: bool = False) -> Report:
        """A PNG figure (embedded in the HTML; linked relative to the output folder in Markdown).

        ``wide`` lets a multi-panel figure use the page's full width instead of half of it.
        """
        self.blocks.append(("figure", (Path(path), caption, wide)))
        return self

    def code(self, text: str) -> Report:
        self.blocks.append(("code", text))
        return self

    # -- rendering ---------------------------------------------------------------------------
    def to_html(self) -> str:
        """A single self-contained HTML document (figures as base64 PNG data URIs)."""
        esc = html.escape
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{esc(self.title)}</title><style>{CSS}</style></head><body>",
            f"<h1>{esc(self.title)}</h1>",
        ]
        for kind, payload in self.blocks:
            if kind == "heading":
                level, text = payload
                parts.append(f"<h{level}>{esc(text)}</h{level}>")
            elif kind == "paragraph":
                parts.append(f"<p>{esc(payload)}</p>")
            elif kind == "bullets":
                parts.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in payload) + "</ul>")
            elif kind == "code":
                parts.append(f"<pre>{esc(payload)}</pre>")
            elif kind == "table":
                df, caption, digits = payload
                head = "".join(f"<th>{esc(str(c))}</th>" for c in df.columns)
                body = "".join(
                    "<tr>"
                    + "".join(f"<td>{esc(format_cell(v, digits))}</td>" for v in row)
                    + "</tr>"
                    for row in df.itertuples(index=False)
                )
                cap = f"<caption>{esc(caption)}</caption>" if caption else ""
                parts.append(
                    f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                )
            elif kind == "figure":
                path, caption, wide = payload
                data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
                css_class = ' class="wide"' if wide else ""
                parts.append(
                    f'<figure{css_class}><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
                    f"<figcaption>{esc(caption)}</figcaption></figure>"
                )
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"

    def to_markdown(self, rel_dir: Path | str | None = None) -> str:
        """Markdown; figure links are made relative to ``rel_dir`` (the folder of report.md)."""
        lines = [f"# {self.title}", ""]
        for kind, payload in self.blocks:
            if kind == "heading":
                level, text = payload
                lines += ["#" * level + " " + text, ""]
            elif kind == "paragraph":
                lines += [str(payload), ""]
            elif kind == "bullets":
                lines += [f"- {item}" for item in payload] + [""]
            elif kind == "code":
                lines += ["```", str(payload), "```", ""]
            elif kind == "table":
                df, caption, digits = payload
                if caption:
                    lines += [f"**{caption}**", ""]
                lines.append("| " + " | ".join(str(c) for c in df.columns) + " |")
                lines.append("|" + "|".join("---" for _ in df.columns) + "|")
                for row in df.itertuples(index=False):
                    cells = (format_cell(v, digits).replace("|", "\\|") for v in row)
                    lines.append("| " + " | ".join(cells) + " |")
                lines.append("")
            elif kind == "figure":
                path, caption, _ = payload
                link = Path(os.path.relpath(path, rel_dir)) if rel_dir is not None else path
                lines += [f"![{caption}]({link.as_posix()})", "", f"*{caption}*", ""]
        return "\n".join(lines)

    def write(self, out_dir: Path | str, stem: str = "report") -> tuple[Path, Path]:
        """Write ``out_dir/<stem>.html`` and ``out_dir/<stem>.md`` atomically; returns both paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        html_path, md_path = out_dir / f"{stem}.html", out_dir / f"{stem}.md"
        atomic_write_text(html_path, self.to_html())
        atomic_write_text(md_path, self.to_markdown(out_dir))
        return html_path, md_path
