"""vcfnet: classify acute, chronic and pathologic vertebral compression fractures on radiographs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vcfnet")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

from vcfnet.labels import CLASS_NAMES

__all__ = ["CLASS_NAMES", "__version__", "load_model"]


def load_model(path, **kwargs):
    """Load a trained model (RUN_DIR, .pt checkpoint or .onnx file) ready for ``predict``."""
    from vcfnet.inference.loading import load_model as _load_model

    return _load_model(path, **kwargs)
