"""Layer data for one slide: the image (multiscale when large), its editable mask, its latest prediction."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import numpy as np

from ..core.project import Project

MULTISCALE_PIXELS = 4096 * 4096  # larger slides are shown as a pyramid of strided views
ROLE_KEY = "s4mi_role"
SLIDE_KEY = "s4mi_slide"
LayerData = tuple[Any, dict[str, Any], str]


def slide_name(slide_id: str) -> str:
    return PurePosixPath(slide_id).stem


def pyramid(image: np.ndarray, min_side: int = 1024) -> list[np.ndarray]:
    """Full resolution plus 2×-strided views until the short side is below ``min_side`` (views, no copies)."""
    levels = [image]
    while min(levels[-1].shape[:2]) >= 2 * min_side:
        levels.append(levels[-1][::2, ::2])
    return levels


def image_layer(project: Project, slide_id: str) -> LayerData:
    """The slide as shown to the networks: RGB uint8 (16-bit and float slides percentile-scaled on reading)."""
    with project.open_slide(slide_id) as slide:
        image = slide.read()
    big = image.shape[0] * image.shape[1] > MULTISCALE_PIXELS
    data = pyramid(image) if big else image
    meta = {ROLE_KEY: "image", SLIDE_KEY: slide_id}
    kwargs = {"name": slide_name(slide_id), "rgb": image.ndim == 3, "metadata": meta, "multiscale": big}
    kwargs["contrast_limits"] = (0, 255)
    return data, kwargs, "image"


def mask_array(project: Project, slide_id: str, shape: tuple[int, int]) -> np.ndarray:
    """The saved mask, or an empty one of the slide's shape."""
    if project.has_mask(slide_id):
        return project.read_mask(slide_id).astype(np.uint8, copy=False)
    return np.zeros(shape, dtype=np.uint8)


def labels_layer(mask: np.ndarray, slide_id: str) -> LayerData:
    meta = {ROLE_KEY: "labels", SLIDE_KEY: slide_id}
    return mask, {"name": f"{slide_name(slide_id)} mask", "metadata": meta, "opacity": 0.6}, "labels"


def prediction_layer(labels: np.ndarray, slide_id: str) -> LayerData:
    meta = {ROLE_KEY: "prediction", SLIDE_KEY: slide_id}
    kwargs = {"name": f"{slide_name(slide_id)} prediction", "metadata": meta, "opacity": 0.5, "blending": "translucent"}
    return labels, kwargs, "labels"


def overlay_colormap(name: str, max_alpha: float = 0.85, power: float = 1.5):
    """A perceptual napari colormap whose opacity rises with the value (0: transparent), for maps drawn over a
    slide with translucent blending: low values leave the slide as it is, high ones colour it. (Additive blending
    washed the whole slide out.)"""
    from napari.utils.colormaps import Colormap, ensure_colormap

    base = ensure_colormap(name)
    colors = np.array(base.colors, dtype=np.float32).copy()
    colors[:, 3] = max_alpha * np.linspace(0.0, 1.0, len(colors)) ** power  # power > 1: low values nearly clear
    return Colormap(colors=colors, controls=base.controls, name=f"{name} overlay")


def disagreement_layer(disagreement: np.ndarray, slide_id: str, visible: bool) -> LayerData:
    meta = {ROLE_KEY: "disagreement", SLIDE_KEY: slide_id}
    kwargs = {
        "name": f"{slide_name(slide_id)} CNN–Swin disagreement",
        "metadata": meta,
        "colormap": overlay_colormap("magma"),
        "contrast_limits": (0.0, 1.0),
        "blending": "translucent",
        "opacity": 0.8,
        "visible": visible,
    }
    return disagreement, kwargs, "image"


def saliency_layer(result, opacity_percent: int) -> LayerData:
    """A saliency map (``cls_jobs.SaliencyMap``) over its slide: a perceptual colormap whose opacity rises with
    the value, translucent, so the slide stays readable."""
    meta = {ROLE_KEY: "saliency", SLIDE_KEY: result.slide_id}
    kwargs = {
        "name": f"{slide_name(result.slide_id)} saliency {result.class_name} ({result.network}, {result.kind})",
        "metadata": meta,
        "colormap": overlay_colormap("inferno", max_alpha=0.9, power=0.8),
        "contrast_limits": (0.0, 1.0),
        "blending": "translucent",
        "opacity": opacity_percent / 100.0,
    }
    return result.data, kwargs, "image"
