"""Report building blocks: figures (PNG + SVG) and a self-contained HTML / Markdown report."""
