"""Where a model is: RUN_DIR, a ``.pt`` checkpoint or a ``.onnx`` file (no torch needed)."""

from __future__ import annotations

from pathlib import Path

from vcfnet.errors import CheckpointError


def resolve_model_path(path: Path | str) -> Path:
    """RUN_DIR -> RUN_DIR/checkpoints/best.pt; a file as given; CheckpointError if missing."""
    path = Path(path)
    if path.is_dir():
        best = path / "checkpoints" / "best.pt"
        if not best.is_file():
            raise CheckpointError(
                f"{path} is a folder without checkpoints/best.pt; pass a training run folder "
                "(vcfnet train --out RUN_DIR), a .pt checkpoint or a .onnx file"
            )
        return best
    if not path.is_file():
        raise CheckpointError(
            f"model {path} not found; pass RUN_DIR, a .pt checkpoint or a .onnx file"
        )
    return path


def model_name(path: Path) -> str:
    """RUN_DIR/checkpoints/best.pt -> 'RUN_DIR-best'; other files -> their stem."""
    if path.parent.name == "checkpoints":
        return f"{path.parent.parent.name}-{path.stem}"
    return path.stem
