"""One inference path: a :class:`Predictor` wraps a trained model (a PyTorch checkpoint or an
exported ONNX file, fp32 or int8) with the input contract it was trained with.

``predict(image, boxes)`` crops every box exactly as ``prepare`` does (``make_cache_crop`` ->
``stack_crops`` -> normalisation, the shared implementation in ``vcfnet.preprocess``) and returns
per box the class probabilities, the predicted class and the model's identity. ``evaluate``,
``predict``, Grad-CAM, the demo and the web service all call ``predict_crops`` of a Predictor.
The ONNX backend imports no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vcfnet.data.pseudonym import OutputNames
from vcfnet.errors import InputError
from vcfnet.geometry import Box, validate_box
from vcfnet.inference.inputs import as_gray_image, label_from_folder, name_of, read_crop_files
from vcfnet.inference.results import ImagePrediction, ModelInfo, box_predictions
from vcfnet.preprocess import InputSpec, Preprocessing, make_cache_crop


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (the CLI prints errors as one line)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class Predictor:
    """A trained classifier with its preprocessing; subclasses implement ``predict_crops``."""

    info: ModelInfo
    preprocessing: Preprocessing
    batch_size: int = 64
    #: whether ``grad_cam`` is available (it needs gradients: the PyTorch backend)
    explainable: bool = False

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names

    @property
    def input(self) -> InputSpec:
        """The model's input contract (size, mean, std, channels)."""
        return self.preprocessing.input

    def predict_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities float64 (N, C) for uint8 crops (any size, gray or colour)."""
        raise NotImplementedError

    def crops_for(self, pixels: np.ndarray, boxes: Sequence[Box]) -> list[np.ndarray]:
        """The cached-size crops (as ``prepare`` stores them) for ``boxes`` on ``pixels`` (H, W)."""
        crops = []
        for i, box in enumerate(boxes):
            if len(box) != 4:
                raise InputError(f"box {i} = {box!r}: expected 4 numbers x1,y1,x2,y2")
            validate_box(tuple(float(v) for v in box), pixels.shape)
            crops.append(make_cache_crop(pixels, box, self.preprocessing.crop))
        return crops

    def predict(
        self,
        image,
        boxes: Sequence[Box],
        *,
        labels: Sequence[str] | None = None,
        levels: Sequence[str] | None = None,
        names: OutputNames | None = None,
    ) -> ImagePrediction:
        """Predict every box (x1, y1, x2, y2 in pixels) on ``image`` (path or uint8 (H, W) array);
        ``names`` pseudonymises the source and patient for outputs (see ``name_of``)."""
        pixels, path, patient_id = as_gray_image(image)
        source, patient = name_of(path, patient_id, names)
        if not len(boxes):
            raise InputError(f"{source}: no boxes given; pass --box x1,y1,x2,y2 or --xml FILE")
        probs = self.predict_crops(self.crops_for(pixels, boxes))
        return ImagePrediction(
            source=source,
            boxes=box_predictions(probs, self.class_names, list(boxes), labels, levels),
            model=self.info,
            patient_id=patient,
        )

    def predict_crop_files(
        self, paths: Sequence[Path | str], names: OutputNames | None = None
    ) -> list[ImagePrediction]:
        """One prediction per pre-cut crop file; its label is its folder's class name, if any;
        ``names`` pseudonymises each file's name in the outputs."""
        results: list[ImagePrediction] = []
        for start in range(0, len(paths), self.batch_size):
            chunk = [Path(p) for p in paths[start : start + self.batch_size]]
            probs = self.predict_crops(read_crop_files(chunk))
            for path, row in zip(chunk, probs, strict=True):
                label = label_from_folder(path, self.class_names)
                boxes = box_predictions(row[None], self.class_names, [None], [label])
                source = names.image(path) if names is not None else str(path)
                results.append(ImagePrediction(source=source, boxes=boxes, model=self.info))
        return results
