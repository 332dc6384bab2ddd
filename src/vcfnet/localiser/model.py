"""A trained localiser: load it (``.pt`` checkpoint or ``.onnx``), run it on films, get bodies.

The checkpoint is a vcfnet model artifact (``vcfnet.models.artifact``, task ``localise-vertebrae``);
its input spec (input height/width, stride, regression scale, mean/std, levels) is in
``config["localiser_input"]``, the ONNX file's in its metadata under the same key (JSON).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vcfnet.errors import CheckpointError
from vcfnet.localiser.crops import REFINER_KEY, Refiner, RefineSpec
from vcfnet.localiser.data import letterbox_pixels
from vcfnet.localiser.targets import LEVELS, Body, decode
from vcfnet.models.paths import resolve_model_path

log = logging.getLogger(__name__)

SPEC_KEY = "localiser_input"
#: ONNX metadata key: the file name of the refine stage's ONNX, beside the localiser's
REFINER_ONNX_KEY = "localiser_refiner"


@dataclass(frozen=True)
class LocaliserSpec:
    """The localiser's input contract, saved in its checkpoint and ONNX metadata."""

    input_h: int = 320
    input_w: int = 256
    stride: int = 4
    reg_scale: float = 16.0
    mean: float = 0.5
    std: float = 0.25
    levels: tuple[str, ...] = LEVELS

    def to_dict(self) -> dict:
        d = asdict(self)
        d["levels"] = list(self.levels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LocaliserSpec:
        d = dict(d)
        d["levels"] = tuple(d.get("levels", LEVELS))
        return cls(**d)

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W) -> float32 (N, 1, H, W)."""
        x = pixels.astype(np.float32)[:, None] / np.float32(255.0)
        return (x - np.float32(self.mean)) / np.float32(self.std)


class Localiser:
    """Run a trained localiser on films (uint8 (H, W), bone bright).

    When the checkpoint carries a refine stage (``extra["refiner"]``; for ONNX, a companion file
    named in the metadata), each body's six points come from it (``refine=False``: not used)."""

    def __init__(self, path: Path | str, threshold: float = 0.3, refine: bool = True) -> None:
        self.path = resolve_model_path(path)
        self.threshold = threshold
        self.refiner: Refiner | None = None
        self.use_refiner = refine
        if self.path.suffix.lower() == ".onnx":
            self._load_onnx()
        else:
            self._load_torch()
        self.levels = self.spec.levels

    def _load_torch(self) -> None:
        import torch  # the ONNX path runs without torch

        from vcfnet.models.artifact import load_checkpoint
        from vcfnet.models.localiser import LOCALISE_TASK

        ckpt = load_checkpoint(self.path)
        if SPEC_KEY not in ckpt.config or ckpt.meta is None:
            raise CheckpointError(
                f"{self.path} is not a localiser checkpoint (task {LOCALISE_TASK}); "
                "train one with vcfnet train-localiser"
            )
        self.spec = LocaliserSpec.from_dict(ckpt.config[SPEC_KEY])
        self.model = ckpt.model
        self.model_hash = ckpt.model_hash
        self._torch = torch
        if REFINER_KEY in ckpt.extra:
            from vcfnet.localiser.refine import load_refiner_payload

            try:
                self.refiner = load_refiner_payload(ckpt.extra[REFINER_KEY])
                refiner_hash = str(ckpt.extra[REFINER_KEY]["hash"])
            except (KeyError, RuntimeError, TypeError, ValueError) as exc:
                raise CheckpointError(
                    f"{self.path}: its refine stage does not load ({exc}); retrain it with "
                    "vcfnet train-localiser --refine-steps N"
                ) from exc
            # outputs name both stages' weights (the ONNX export carries this hash too)
            both = f"{self.model_hash}+{refiner_hash}".encode()
            self.model_hash = hashlib.sha256(both).hexdigest()

    def _load_onnx(self) -> None:
        import onnxruntime as ort

        try:
            self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
            meta = self.session.get_modelmeta().custom_metadata_map
            self.spec = LocaliserSpec.from_dict(json.loads(meta[SPEC_KEY]))
        except Exception as exc:
            raise CheckpointError(f"{self.path}: not a vcfnet localiser ONNX file ({exc})") from exc
        self.model_hash = meta.get("model_hash", "")
        self.model = None
        if REFINER_ONNX_KEY in meta:
            companion = self.path.parent / meta[REFINER_ONNX_KEY]
            try:
                session = ort.InferenceSession(str(companion), providers=["CPUExecutionProvider"])
                rmeta = session.get_modelmeta().custom_metadata_map
                self.refiner = Refiner(
                    RefineSpec.from_dict(json.loads(rmeta[REFINER_KEY])), None, session
                )
            except Exception as exc:
                raise CheckpointError(
                    f"{companion}: the localiser's refine stage is missing or broken ({exc}); "
                    "export both again with vcfnet export-localiser"
                ) from exc

    def raw(self, x: np.ndarray) -> np.ndarray:
        """float32 (N, 1, H, W) normalised input -> raw maps (N, C, h, w)."""
        if self.model is None:
            name = self.session.get_inputs()[0].name
            return self.session.run(None, {name: x})[0]
        torch = self._torch
        with torch.inference_mode():
            return self.model(torch.from_numpy(x)).float().numpy()

    def predict_pixels(self, pixels: np.ndarray) -> list[Body]:
        """Bodies (film pixels, cranial first) of one uint8 (H, W) film."""
        spec = self.spec
        boxed, lb = letterbox_pixels(pixels, spec.input_h, spec.input_w)
        maps = self.raw(spec.normalise(boxed[None]))[0]
        bodies = decode(maps, len(spec.levels), spec.stride, spec.reg_scale, self.threshold)
        for b in bodies:
            b.points = lb.to_film(b.points)
            b.box = lb.to_film(b.box.reshape(2, 2)).reshape(4)
            b.box[[0, 2]] = np.clip(b.box[[0, 2]], 0, pixels.shape[1] - 1)
            b.box[[1, 3]] = np.clip(b.box[[1, 3]], 0, pixels.shape[0] - 1)
        if self.refiner is not None and self.use_refiner:
            self.refiner.refine(pixels, bodies)
        return bodies
