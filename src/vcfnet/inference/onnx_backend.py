"""The onnxruntime backend of :class:`~vcfnet.inference.predictor.Predictor`; imports no torch."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from scipy.special import softmax

from vcfnet.cpu import int8_kernels_saturate
from vcfnet.errors import CheckpointError
from vcfnet.inference.predictor import Predictor, first_line
from vcfnet.inference.results import ModelInfo
from vcfnet.models.metadata import ONNX_FORMAT, ONNX_INPUT, ONNX_OUTPUTS, QUANTIZED_KEY
from vcfnet.preprocess import Preprocessing, normalize_array, stack_crops


def _read_metadata(path: Path, meta: dict[str, str]) -> tuple[Preprocessing, tuple[str, ...]]:
    """The input contract and class names of a vcfnet export; CheckpointError if malformed."""
    try:
        pre = Preprocessing.from_dict(json.loads(meta["vcfnet.preprocessing"]))
        names = json.loads(meta["vcfnet.class_names"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: its vcfnet metadata is missing or malformed ({first_line(exc)}); "
            "re-export it with 'vcfnet export'"
        ) from exc
    if not isinstance(names, list) or not names or len(set(map(str, names))) != len(names):
        raise CheckpointError(
            f"{path}: class names in its metadata are empty or repeat; re-export it"
        )
    return pre, tuple(str(n) for n in names)


class OnnxPredictor(Predictor):
    """An exported ``.onnx`` model run with onnxruntime; metadata carries classes and preprocessing."""

    def __init__(self, path: Path | str, *, batch_size: int = 64, threads: int | None = None):
        path = Path(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # Worker threads that spin after each run keep the cores busy and slow whatever runs next
        # (decoding, another model, a web server); on a small CPU that costs more than it saves.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if int8_kernels_saturate():
            # onnxruntime's default int8 kernels would add products in pairs in 16 bits and can
            # saturate here (vcfnet.inference.saturation measures by how much): use its exact
            # uint8 x uint8 ones, so an int8 model answers as on a VNNI CPU. Not set elsewhere:
            # on a VNNI CPU they give the same numbers at half the speed.
            options.add_session_config_entry("session.x64quantprecision", "1")
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise CheckpointError(
                f"{path} is not a readable ONNX model: {first_line(exc)}"
            ) from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("vcfnet.format") != ONNX_FORMAT:
            raise CheckpointError(
                f"{path} is an ONNX model but not one exported by vcfnet (no vcfnet metadata); "
                "export one with 'vcfnet export --model RUN_DIR --out model.onnx'"
            )
        self.preprocessing, class_names = _read_metadata(path, meta)
        self.batch_size = batch_size
        self.info = ModelInfo(
            name=meta.get("vcfnet.name", path.stem),
            version=meta.get("vcfnet.version", ""),
            hash=meta.get("vcfnet.model_hash", ""),
            runtime="onnxruntime-int8" if meta.get(QUANTIZED_KEY) == "int8" else "onnxruntime",
            class_names=class_names,
        )

    def input_array(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """float32 (N, C, S, S) model input for uint8 crops (any size, gray or colour)."""
        batch = stack_crops(list(crops), self.preprocessing.image_size)
        return normalize_array(batch, self.input)

    def run_array(self, x: np.ndarray) -> np.ndarray:
        """float64 (N, classes) probabilities for a ready model input ``x`` (N, C, S, S).

        The softmax is taken here on the graph's logits: an int8 graph's own softmax output is
        quantized too, and its rows then sum to 1 only within ~1 %."""
        (logits,) = self.session.run([ONNX_OUTPUTS[0]], {ONNX_INPUT: x})
        return softmax(logits.astype(np.float64), axis=1)

    def predict_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        out = [
            self.run_array(self.input_array(crops[start : start + self.batch_size]))
            for start in range(0, len(crops), self.batch_size)
        ]
        if not out:
            return np.zeros((0, len(self.class_names)))
        return np.concatenate(out).astype(np.float64)
