"""Grad-CAM (Selvaraju et al. 2017): where in the input a network's score comes from.

``cam = ReLU(sum_k alpha_k A_k)`` with ``alpha_k`` the spatial mean of d score / d A_k over the
last convolutional map ``A``.  The score is either an ImageNet logit (default: the top class)
or a classifier head trained on the pooled deep features (:func:`linear_head`, e.g. a logistic
regression on PCA components, which is linear in the 2048 features and so folds into one
weight vector).  Maps are upsampled to the input size, scaled to [0, 1] and can be drawn back
onto the source slice with :func:`NACResponseLib.deep.slices.map_to_reference`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


def grad_cam(feature_fn: Callable, head_fn: Callable, x, *, size: tuple[int, int] | None = None) -> np.ndarray:
    """Grad-CAM maps (N, H, W) in [0, 1] for a network split as ``head_fn(feature_fn(x))``.

    ``feature_fn`` maps the input (N, C, H, W) to the target convolutional map (N, K, h, w);
    ``head_fn`` maps that map to one score per sample (N,).  ``size`` defaults to the input's.
    """
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x
    with torch.enable_grad():
        activation = feature_fn(x)
        if not activation.requires_grad:
            raise ValueError("the feature map does not depend on trainable weights; cannot take gradients")
        score = head_fn(activation)
        grads, = torch.autograd.grad(score.sum(), activation)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=size or tuple(x.shape[2:]), mode="bilinear", align_corners=False)[:, 0]
    peak = cam.amax(dim=(1, 2), keepdim=True)
    cam = torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam))
    return cam.cpu().numpy().astype(np.float32)


def linear_head(coef, intercept: float = 0.0, *, pca=None) -> Callable:
    """A score on pooled features: ``(f - mean) @ components.T @ coef + intercept`` (PCA optional).

    ``coef`` has one entry per feature (2048) or per PCA component.  For a model trained on a
    delta block (post - pre), pass ``coef`` for the post map and ``-coef`` for the pre map.
    """
    import torch

    w = np.asarray(coef, dtype=np.float64).ravel()
    bias = float(intercept)
    if pca is not None:
        bias -= float(pca.mean_ @ pca.components_.T @ w) if pca.mean_ is not None else 0.0
        w = pca.components_.T @ w
    weight = torch.as_tensor(w, dtype=torch.float32)

    def head(pooled):
        return pooled @ weight.to(pooled.dtype) + bias

    return head


def resnet_gradcam(model, inputs: np.ndarray, head: Callable | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM of a ResNet50 on (N, 3, 224, 224) inputs -> (maps (N, 224, 224), scores (N,)).

    ``head`` maps pooled (N, 2048) features to a score; default: the top ImageNet logit.
    """
    import torch

    model = model.eval()
    scores: list[np.ndarray] = []

    def score_fn(activation):
        pooled = activation.mean(dim=(2, 3))
        if head is None:
            logits = model.fc(pooled)
            s = logits.gather(1, logits.argmax(dim=1, keepdim=True))[:, 0]
        else:
            s = head(pooled)
        scores.append(s.detach().numpy().copy())
        return s

    maps = grad_cam(model.feature_map, score_fn, torch.as_tensor(np.asarray(inputs, np.float32)))
    return maps, np.concatenate(scores)


def write_map(window_map: np.ndarray, item, path: str | Path) -> Path:
    """Write a window map (e.g. Grad-CAM) as a float image aligned with the case's source volume."""
    from ..imageio import write_image
    from .slices import map_to_reference

    path = Path(path)
    write_image(map_to_reference(window_map, item), path)
    return path
