"""ONNX export of a localiser checkpoint (fp32), its input spec in the metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import torch

from vcfnet.errors import CheckpointError
from vcfnet.io.atomic import atomic_path
from vcfnet.localiser.crops import REFINER_KEY
from vcfnet.localiser.model import REFINER_ONNX_KEY, SPEC_KEY, Localiser


def _add_metadata(path: Path, items: dict[str, str]) -> None:
    graph = onnx.load(str(path))
    for key, value in items.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(path))


def refiner_onnx_path(out: Path) -> Path:
    """The refine stage's ONNX beside the localiser's: ``loc.onnx`` -> ``loc.refine.onnx``."""
    return out.with_name(out.stem + ".refine.onnx")


def export_localiser_onnx(model_path: Path | str, out: Path | str, opset: int = 18) -> Path:
    """Write ``out`` (.onnx) from a localiser checkpoint, and its refine stage (if it has one)
    beside it (``refiner_onnx_path``, named in ``out``'s metadata); returns ``out``."""
    loc = Localiser(model_path)
    if loc.model is None:
        raise CheckpointError(f"{model_path} is already ONNX; export takes a .pt or RUN_DIR")
    spec = loc.spec
    dummy = torch.zeros(1, 1, spec.input_h, spec.input_w)
    out = Path(out)
    meta = {SPEC_KEY: json.dumps(spec.to_dict()), "model_hash": loc.model_hash}
    if loc.refiner is not None:
        companion = refiner_onnx_path(out)
        _export_refiner(loc, companion, opset)
        meta[REFINER_ONNX_KEY] = companion.name
    with atomic_path(out) as tmp:
        torch.onnx.export(
            loc.model.eval(),
            (dummy,),
            str(tmp),
            input_names=["image"],
            output_names=["maps"],
            dynamic_axes={"image": {0: "batch"}, "maps": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
        _add_metadata(tmp, meta)
    return out


def _export_refiner(loc: Localiser, out: Path, opset: int) -> None:
    rspec = loc.refiner.spec
    with atomic_path(out) as tmp:
        torch.onnx.export(
            loc.refiner.model.eval(),
            (torch.zeros(1, 1, rspec.crop, rspec.crop),),
            str(tmp),
            input_names=["crops"],
            output_names=["points"],
            dynamic_axes={"crops": {0: "batch"}, "points": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
        _add_metadata(tmp, {REFINER_KEY: json.dumps(rspec.to_dict())})


def onnx_parity(model_path: Path | str, onnx_path: Path | str, seed: int = 0) -> float:
    """Max |difference| of the raw maps of the checkpoint and its ONNX on a random input."""
    a, b = Localiser(model_path), Localiser(onnx_path)
    x = np.random.default_rng(seed).normal(size=(1, 1, a.spec.input_h, a.spec.input_w))
    x = x.astype(np.float32)
    return float(np.abs(a.raw(x) - b.raw(x)).max())
