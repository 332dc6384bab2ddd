"""ONNX export of a checkpoint (fp32, dynamic batch, vcfnet metadata) and static int8
quantization; parity checks against the PyTorch model."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from vcfnet import __version__
from vcfnet.data.manifest import MANIFEST_NAME, read_manifest
from vcfnet.errors import CheckpointError, ConfigError, InputError
from vcfnet.inference.inputs import find_crop_files
from vcfnet.inference.loading import load_model
from vcfnet.inference.onnx_backend import OnnxPredictor
from vcfnet.inference.predictor import first_line
from vcfnet.io.atomic import atomic_path
from vcfnet.io.images import read_radiograph
from vcfnet.models.artifact import load_checkpoint
from vcfnet.models.metadata import ONNX_FORMAT, ONNX_INPUT, ONNX_OUTPUTS, QUANTIZED_KEY
from vcfnet.models.paths import model_name, resolve_model_path

log = logging.getLogger(__name__)


class _WithSoftmax(torch.nn.Module):
    """The classifier with its softmax, so the export returns logits and probabilities."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor):
        logits = self.net(image)
        return logits, torch.softmax(logits, dim=1)


def _export_program(model: torch.nn.Module, pre, opset: int):
    """The dynamo ONNX export of ``model`` + softmax with a dynamic batch (the exporter quiet)."""
    example = torch.zeros(2, pre.channels, pre.image_size, pre.image_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    quiet = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [logger.level for logger in quiet]
    try:
        for logger in quiet:  # the exporter's optimiser logs every pass at INFO
            logger.setLevel(logging.WARNING)
        with torch.no_grad():
            return torch.onnx.export(
                _WithSoftmax(model.float()).eval(),
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=[ONNX_INPUT],
                output_names=list(ONNX_OUTPUTS),
                dynamic_shapes={"image": {0: batch}},
                verbose=False,
            )
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


def onnx_metadata(ckpt, name: str) -> dict[str, str]:
    """vcfnet's metadata_props of an export: identity, classes and the input contract."""
    pre = ckpt.preprocessing
    return {
        "vcfnet.format": ONNX_FORMAT,
        "vcfnet.name": name,
        "vcfnet.version": str(ckpt.meta.get("vcfnet_version", __version__)),
        "vcfnet.exported_by": __version__,
        "vcfnet.model_hash": ckpt.model_hash,
        "vcfnet.class_names": json.dumps(list(ckpt.class_names)),
        "vcfnet.preprocessing": json.dumps(pre.to_dict()),
        "vcfnet.input": f"{ONNX_INPUT}: float32 (N, {pre.channels}, {pre.image_size}, "
        f"{pre.image_size}), crop resized and normalised with mean/std",
    }


def _save_with_metadata(model_proto, metadata: dict[str, str], out: Path | str) -> Path:
    """Replace ``model_proto``'s metadata_props with ``metadata`` and save it atomically."""
    del model_proto.metadata_props[:]
    for key, value in metadata.items():
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = key, value
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        onnx.save_model(model_proto, str(tmp))
    return out


def export_onnx(checkpoint_path: Path | str, out: Path | str, *, opset: int = 18) -> Path:
    """Export a checkpoint to a self-contained ONNX file (dynamic batch, vcfnet metadata_props).

    Graph: input ``image`` float32 (N, C, S, S) normalised as in training; outputs ``logits`` and
    ``probabilities`` (N, classes). Metadata: class names, input contract, weights hash, version.
    """
    checkpoint_path = resolve_model_path(checkpoint_path)
    if checkpoint_path.suffix.lower() == ".onnx":
        raise ConfigError(
            f"{checkpoint_path} is already ONNX; export needs RUN_DIR or a .pt checkpoint"
        )
    ckpt = load_checkpoint(checkpoint_path)
    try:
        program = _export_program(ckpt.model, ckpt.preprocessing, opset)
    except Exception as exc:  # exporter failures are many types
        raise CheckpointError(
            f"ONNX export of {checkpoint_path} failed: {first_line(exc)}"
        ) from exc
    metadata = onnx_metadata(ckpt, model_name(checkpoint_path))
    return _save_with_metadata(program.model_proto, metadata, out)


def quantize_onnx(
    onnx_path: Path | str,
    out: Path | str,
    calibration_crops: Sequence[np.ndarray],
    *,
    batch_size: int = 8,
) -> Path:
    """Static int8 quantization (QDQ; weights int8 per channel, activations uint8) of a vcfnet
    ONNX export. Activation ranges are calibrated on ``calibration_crops`` (uint8, any size)
    preprocessed as the model's metadata says; the vcfnet metadata is kept, plus
    ``vcfnet.quantized = "int8"``. On AVX-512 VNNI CPUs the result runs ~3x faster than fp32."""
    onnx_path = Path(onnx_path)
    source = OnnxPredictor(onnx_path)  # CheckpointError unless a vcfnet export
    if source.info.runtime != "onnxruntime":
        raise CheckpointError(f"{onnx_path} is already quantized; quantize the fp32 export")
    if not len(calibration_crops):
        raise InputError("no calibration crops; pass --calibration DATASET_DIR or a crop folder")
    x = source.input_array(calibration_crops)

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(
                [{ONNX_INPUT: x[i : i + batch_size]} for i in range(0, len(x), batch_size)]
            )

        def get_next(self):
            return next(self.batches, None)

    metadata = dict(source.session.get_modelmeta().custom_metadata_map)
    with tempfile.TemporaryDirectory(prefix="vcfnet-quantize-") as tmp:
        prepared, quantized = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        try:
            quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(quantized),
                Batches(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
        except Exception as exc:  # onnxruntime raises many types
            raise CheckpointError(
                f"int8 quantization of {onnx_path} failed: {first_line(exc)}; "
                "re-export it with 'vcfnet export' and retry"
            ) from exc
        model_proto = onnx.load(str(quantized))
    props = {p.key: p.value for p in model_proto.metadata_props}
    props.update(metadata)
    props[QUANTIZED_KEY] = "int8"
    return _save_with_metadata(model_proto, props, out)


def calibration_crops(path: Path | str, n: int = 64) -> list[np.ndarray]:
    """The first ``n`` crops of a prepared DATASET_DIR (train/val rows of its manifest) or of a
    folder of crop images (recursive), as uint8 gray arrays."""
    path = Path(path)
    if (path / MANIFEST_NAME).is_file():
        df = read_manifest(path)
        files = [path / p for p in df.loc[df["split"].isin(["train", "val"]), "crop_path"]]
        if not files:
            raise InputError(f"--calibration {path}: the manifest has no train/val crops")
    elif path.is_dir():
        files = find_crop_files([path])
    else:
        raise InputError(
            f"--calibration {path}: not a folder; pass a DATASET_DIR (vcfnet prepare) "
            "or a folder of crop images"
        )
    return [read_radiograph(f).pixels for f in files[:n]]


def agreement(p_ref: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(max |Δp|, fraction of rows with the same argmax)."""
    return float(np.abs(p_ref - p).max()), float((p_ref.argmax(1) == p.argmax(1)).mean())


def onnx_parity(
    model_path: Path | str, onnx_path: Path | str, *, n: int = 32, seed: int = 0
) -> float:
    """max |Δp| between the ONNX file and the PyTorch checkpoint in fp32 on ``n`` random crops."""
    rng = np.random.default_rng(seed)
    torch_model = load_model(model_path, device="cpu", precision="fp32")
    onnx_model = load_model(onnx_path)
    size = torch_model.preprocessing.cache_size
    crops = [rng.integers(0, 256, (size, int(size * 0.8)), dtype=np.uint8) for _ in range(n)]
    return agreement(torch_model.predict_crops(crops), onnx_model.predict_crops(crops))[0]
