"""Grad-CAM heatmaps drawn on the crop and on the full radiograph, written as captioned PNGs."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vcfnet.data.pseudonym import OutputNames
from vcfnet.geometry import Box, expand_box
from vcfnet.inference.gradcam import GRAD_CAM_BATCH
from vcfnet.inference.inputs import as_gray_image, name_of
from vcfnet.inference.results import BoxPrediction, ImagePrediction, box_predictions
from vcfnet.io.atomic import atomic_path
from vcfnet.io.images import read_radiograph

log = logging.getLogger(__name__)


def resize_cam(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    """float32 (height, width) bilinear resize of a (h, w) map."""
    if cam.shape == (height, width):
        return cam.astype(np.float32)
    img = Image.fromarray(np.ascontiguousarray(cam, dtype=np.float32))  # mode "F"
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def overlay_heatmap(
    gray: np.ndarray, cam: np.ndarray, *, alpha: float = 0.45, cmap: str = "jet"
) -> np.ndarray:
    """RGB uint8 (h, w, 3): ``gray`` uint8 (h, w) blended with ``cam`` (any size, [0, 1]) in colour."""
    from matplotlib import colormaps

    cam = np.clip(resize_cam(cam, *gray.shape[:2]), 0, 1)
    colour = colormaps[cmap](cam)[..., :3] * 255.0
    base = np.repeat(gray[..., None].astype(np.float32), 3, axis=2)
    return np.clip((1 - alpha) * base + alpha * colour, 0, 255).astype(np.uint8)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - Pillow < 10.1
        return ImageFont.load_default()


def add_caption(rgb: np.ndarray, text: str) -> np.ndarray:
    """RGB uint8 with a black strip above it carrying ``text`` in white."""
    h, w = rgb.shape[:2]
    strip = max(16, min(48, w // 12))
    canvas = Image.new("RGB", (w, h + strip), "black")
    canvas.paste(Image.fromarray(rgb), (0, strip))
    ImageDraw.Draw(canvas).text((4, strip // 8), text, fill="white", font=_font(int(strip * 0.7)))
    return np.asarray(canvas)


def caption_text(class_name: str, probability: float, level: str = "") -> str:
    """'L1: acute 0.87' style caption."""
    prefix = f"{level}: " if level else ""
    return f"{prefix}{class_name} {probability:.2f}"


def cam_region(cam: np.ndarray, box: Box, margin: float, shape: tuple[int, int]):
    """(slices (rows, cols), cam resized to that region) of a crop's map on the radiograph (H, W).

    The model saw the box grown by ``margin`` (``expand_box``) and squashed to a square, so the
    map is stretched back onto that region.
    """
    x1, y1, x2, y2 = expand_box(box, margin, shape)
    return (slice(y1, y2), slice(x1, x2)), resize_cam(cam, y2 - y1, x2 - x1)


def heatmap_on_radiograph(
    pixels: np.ndarray,
    boxes: Sequence[Box],
    cams: Sequence[np.ndarray],
    captions: Sequence[str],
    margin: float,
    *,
    alpha: float = 0.45,
) -> np.ndarray:
    """RGB uint8 (H, W, 3): each box's Grad-CAM blended into the region its crop was cut from,
    the box outlined and captioned."""
    out = np.repeat(pixels[..., None], 3, axis=2).copy()
    for box, cam in zip(boxes, cams, strict=True):
        region, resized = cam_region(cam, box, margin, pixels.shape)
        out[region] = overlay_heatmap(pixels[region], resized, alpha=alpha)
    canvas = Image.fromarray(out)
    draw = ImageDraw.Draw(canvas)
    size = max(12, min(40, pixels.shape[1] // 40))
    font = _font(size)
    for box, text in zip(boxes, captions, strict=True):
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle((x1, y1, x2, y2), outline=(255, 255, 255), width=max(1, size // 8))
        tx, ty = x1, max(0.0, y1 - size * 1.3)
        bbox = draw.textbbox((tx, ty), text, font=font)
        draw.rectangle(bbox, fill=(0, 0, 0))
        draw.text((tx, ty), text, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


def save_png(rgb: np.ndarray, path: Path) -> Path:
    """Write RGB uint8 as PNG atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    return path


@dataclass(frozen=True)
class Explanation:
    """Predictions and Grad-CAM maps of the boxes on one radiograph.

    ``crops``: the cached-size crops; ``cams``: float32 (N, S, S) maps on the model input;
    ``radiograph_rgb``: uint8 (H, W, 3), every box's map drawn on the radiograph, captioned.
    """

    predictions: tuple[BoxPrediction, ...]
    crops: list[np.ndarray]
    cams: np.ndarray
    captions: list[str]
    radiograph_rgb: np.ndarray


def explain_pixels(
    predictor,
    pixels: np.ndarray,
    boxes: Sequence[Box],
    *,
    labels: Sequence[str] | None = None,
    levels: Sequence[str] | None = None,
    cam_predictor=None,
) -> Explanation:
    """Predict ``boxes`` on display pixels uint8 (H, W) and compute their Grad-CAM maps for the
    predicted classes, cropping each box once. Grad-CAM needs an explainable predictor:
    ``predictor`` itself, or ``cam_predictor`` (the same weights in PyTorch) when ``predictor``
    is a faster ONNX export."""
    cam = cam_predictor or predictor
    crops = predictor.crops_for(pixels, boxes)
    probs = predictor.predict_crops(crops)
    preds = box_predictions(probs, predictor.class_names, list(boxes), labels, levels)
    indices = [cam.class_names.index(p.predicted) for p in preds]
    cams, _ = cam.grad_cam(crops, class_indices=indices)
    captions = [caption_text(p.predicted, p.probability, p.level) for p in preds]
    full = heatmap_on_radiograph(pixels, boxes, cams, captions, predictor.preprocessing.margin)
    return Explanation(preds, crops, cams, captions, full)


def explain_image(
    predictor,
    image,
    boxes: Sequence[Box],
    out_dir: Path | str,
    *,
    labels: Sequence[str] | None = None,
    levels: Sequence[str] | None = None,
    names: OutputNames | None = None,
) -> ImagePrediction:
    """Predict ``boxes`` on ``image`` and write Grad-CAM PNGs to ``out_dir``.

    Files: ``<stem>_box<i>.png`` (the crop with its heatmap and caption) per box and
    ``<stem>_heatmap.png`` (every box's heatmap on the full radiograph), the stem being the
    image's name in the outputs (its keyed pseudonym with ``names``). Returns the ImagePrediction
    with the heatmap paths filled in.
    """
    out_dir = Path(out_dir)
    pixels, image_path, patient_id = as_gray_image(image)
    source, patient = name_of(image_path, patient_id, names)
    exp = explain_pixels(predictor, pixels, boxes, labels=labels, levels=levels)
    stem = Path(source).stem
    with_paths = []
    parts = zip(exp.predictions, exp.crops, exp.cams, exp.captions, strict=True)
    for i, (pred, crop, cam, text) in enumerate(parts):
        path = save_png(
            add_caption(overlay_heatmap(crop, cam), text), out_dir / f"{stem}_box{i}.png"
        )
        with_paths.append(dataclasses.replace(pred, heatmap=str(path)))
    full_path = save_png(exp.radiograph_rgb, out_dir / f"{stem}_heatmap.png")
    return ImagePrediction(
        source=source,
        boxes=tuple(with_paths),
        model=predictor.info,
        patient_id=patient,
        heatmap=str(full_path),
    )


def explain_crop_files(
    predictor, paths: Sequence[Path], out_dir: Path | str, names: OutputNames | None = None
) -> list:
    """Predict pre-cut crops and write ``<stem>_heatmap.png`` (crop + heatmap + caption) for each,
    the stem being the crop's name in the outputs (its keyed pseudonym with ``names``)."""
    out_dir = Path(out_dir)
    results = predictor.predict_crop_files(paths, names)
    used: set[str] = set()
    explained = []
    for start in range(0, len(paths), GRAD_CAM_BATCH):
        chunk = results[start : start + GRAD_CAM_BATCH]
        crops = [read_radiograph(p).pixels for p in paths[start : start + GRAD_CAM_BATCH]]
        indices = [predictor.class_names.index(r.boxes[0].predicted) for r in chunk]
        cams, _ = predictor.grad_cam(crops, class_indices=indices)
        for result, crop, cam in zip(chunk, crops, cams, strict=True):
            pred = result.boxes[0]
            name = Path(result.source).stem
            if name in used:  # same stem in two class folders
                name = f"{Path(result.source).parent.name}_{name}"
            used.add(name)
            image = add_caption(
                overlay_heatmap(crop, cam), caption_text(pred.predicted, pred.probability)
            )
            path = save_png(image, out_dir / f"{name}_heatmap.png")
            explained.append(
                dataclasses.replace(
                    result, boxes=(dataclasses.replace(pred, heatmap=str(path)),), heatmap=str(path)
                )
            )
    return explained
