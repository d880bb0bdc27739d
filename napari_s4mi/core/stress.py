"""A stress set: test images rescaled and recoloured (with their masks), to see how a segmentation model
generalises without touching anything it was trained or tuned on.

Each variant is a fixed, deterministic transform of an (H, W, 3) uint8 image and its (H, W) mask, at the same
size: ``zoom-out`` (the image shrunk to 60% on a canvas of its own border colour: a smaller lesion),
``zoom-in`` (the central 62% enlarged: a lesion that fills the frame, where models under-segmented), ``recolour``
(a warm colour cast, lower contrast and a gamma), ``dark`` (70% brightness); and one at another size,
``large`` (the same scene at 3H × 4W: a photograph at a higher resolution and 4:3, as original dermoscopy images
are before a data set squares them, and over the 960 px above which prediction tiles a slide).
"""

from __future__ import annotations

import numpy as np

from .preprocess import resize_image, resize_mask

VARIANTS = ("original", "zoom-out", "zoom-in", "recolour", "dark", "large")
ZOOM_OUT, ZOOM_IN = 0.6, 1.6
LARGE = (3, 4)  # the large variant's height and width, in multiples of the image's


def _uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _border_colour(image: np.ndarray) -> np.ndarray:
    edge = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return np.median(edge, axis=0)


def zoom_out(image: np.ndarray, mask: np.ndarray, factor: float = ZOOM_OUT) -> tuple[np.ndarray, np.ndarray]:
    h, w = mask.shape
    sh, sw = max(1, round(h * factor)), max(1, round(w * factor))
    top, left = (h - sh) // 2, (w - sw) // 2
    canvas = np.empty_like(image)
    canvas[:] = _uint8(_border_colour(image))
    canvas[top : top + sh, left : left + sw] = _uint8(resize_image(image, (sh, sw)))
    out_mask = np.zeros_like(mask)
    out_mask[top : top + sh, left : left + sw] = resize_mask(mask, (sh, sw))
    return canvas, out_mask


def zoom_in(image: np.ndarray, mask: np.ndarray, factor: float = ZOOM_IN) -> tuple[np.ndarray, np.ndarray]:
    h, w = mask.shape
    ch, cw = max(1, round(h / factor)), max(1, round(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = (slice(top, top + ch), slice(left, left + cw))
    return _uint8(resize_image(image[crop], (h, w))), resize_mask(mask[crop], (h, w))


def recolour(image: np.ndarray) -> np.ndarray:
    out = image.astype(np.float32) / 255.0
    out = (out - out.mean()) * 0.8 + out.mean()
    out = np.clip(out * np.array([1.08, 0.95, 0.82], np.float32), 0.0, 1.0) ** 0.8
    return _uint8(out * 255.0)


def stress_pair(image: np.ndarray, mask: np.ndarray, variant: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``variant`` of an image and its mask (same dtype; same shape but for ``large``)."""
    if variant == "original":
        return image, mask
    if variant == "zoom-out":
        return zoom_out(image, mask)
    if variant == "zoom-in":
        return zoom_in(image, mask)
    if variant == "recolour":
        return recolour(image), mask
    if variant == "dark":
        return _uint8(image.astype(np.float32) * 0.7), mask
    if variant == "large":
        size = (mask.shape[0] * LARGE[0], mask.shape[1] * LARGE[1])
        return _uint8(resize_image(image, size)), resize_mask(mask, size)
    raise ValueError(f"unknown stress variant '{variant}': use one of {', '.join(VARIANTS)}")
