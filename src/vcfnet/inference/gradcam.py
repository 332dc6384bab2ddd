"""Grad-CAM (Selvaraju et al. 2017) on a convolutional network: where the model looked.

On the last residual stage (``layer4``) for the predicted class: the stage's activations weighted
by the spatially averaged gradient of the class logit, ReLU, upsampled to the model input and
scaled to [0, 1]. Computed in fp32: a forward hook keeps the activations and
``torch.autograd.grad`` gives their gradient (no parameter gradients accumulate). The hook is
registered per call and records only the calling thread's forward, so threads sharing one model
(the platform's workers predicting and explaining at once) never see each other's activations.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

#: crops per Grad-CAM forward/backward pass (activations of a ResNet-18 at 224 px: ~30 MB each)
GRAD_CAM_BATCH = 16


def grad_cam(
    model,
    x,
    *,
    class_indices: Sequence[int] | None = None,
    layer=None,
    batch_size: int = GRAD_CAM_BATCH,
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM of ``model`` on normalised input ``x`` float (N, C, H, W).

    Returns (cams float32 (N, H, W) in [0, 1], probabilities float64 (N, classes)); the map is for
    ``class_indices`` (default: each crop's predicted class). ``layer`` defaults to ``model.layer4``.
    """
    import torch

    layer = layer if layer is not None else model.layer4
    cams, probs = [], []
    store: dict = {}
    caller = threading.get_ident()

    def keep_activations(_module, _inputs, out) -> None:
        if threading.get_ident() == caller:  # hooks run on the thread of the forward
            store["acts"] = out

    handle = layer.register_forward_hook(keep_activations)
    try:
        for start in range(0, x.shape[0], batch_size):
            chunk = x[start : start + batch_size].detach().float()
            with torch.inference_mode(False), torch.enable_grad():
                logits = model(chunk.clone())
                acts = store["acts"]
                if class_indices is None:
                    idx = logits.argmax(dim=1)
                else:
                    idx = torch.as_tensor(list(class_indices[start : start + batch_size]))
                score = logits.gather(1, idx.long().to(logits.device)[:, None]).sum()
                (grads,) = torch.autograd.grad(score, acts)
            with torch.no_grad():
                weights = grads.mean(dim=(2, 3), keepdim=True)
                cam = torch.relu((weights * acts).sum(dim=1, keepdim=True))
                cam = torch.nn.functional.interpolate(
                    cam, size=chunk.shape[-2:], mode="bilinear", align_corners=False
                )[:, 0]
                peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
                cams.append((cam / peak).clamp(0, 1).float().cpu().numpy())
                probs.append(
                    torch.softmax(logits.detach().float(), dim=1).cpu().numpy().astype(np.float64)
                )
    finally:
        handle.remove()
    if not cams:
        return np.zeros((0, *x.shape[-2:]), np.float32), np.zeros((0, 0))
    return np.concatenate(cams), np.concatenate(probs)
