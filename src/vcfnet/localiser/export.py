"""ONNX export of a localiser checkpoint (fp32), its input spec in the metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import torch

from vcfnet.errors import CheckpointError
from vcfnet.io.atomic import atomic_path
from vcfnet.localiser.model import SPEC_KEY, Localiser


def export_localiser_onnx(model_path: Path | str, out: Path | str, opset: int = 18) -> Path:
    """Write ``out`` (.onnx) from a localiser checkpoint; returns it."""
    loc = Localiser(model_path)
    if loc.model is None:
        raise CheckpointError(f"{model_path} is already ONNX; export takes a .pt or RUN_DIR")
    spec = loc.spec
    dummy = torch.zeros(1, 1, spec.input_h, spec.input_w)
    out = Path(out)
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
        graph = onnx.load(str(tmp))
        for key, value in ((SPEC_KEY, json.dumps(spec.to_dict())), ("model_hash", loc.model_hash)):
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(graph, str(tmp))
    return out


def onnx_parity(model_path: Path | str, onnx_path: Path | str, seed: int = 0) -> float:
    """Max |difference| of the raw maps of the checkpoint and its ONNX on a random input."""
    a, b = Localiser(model_path), Localiser(onnx_path)
    x = np.random.default_rng(seed).normal(size=(1, 1, a.spec.input_h, a.spec.input_w))
    x = x.astype(np.float32)
    return float(np.abs(a.raw(x) - b.raw(x)).max())
