"""Augmented views of uint8 image tiles for self-supervised and supervised classification (NumPy only).

Random resized crops, flips and 90-degree turns, colour jitter and random grayscale: the SimCLR/DINO family of
augmentations, done per image on (S, S, 3) uint8 arrays with a caller-supplied generator (seeded by step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .preprocess import resize_image

GRAY = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class ViewSpec:
    """How many views of each image, at what size, cropped from what share of the image's area."""

    count: int
    size: int
    scale: tuple[float, float] = (0.3, 1.0)
    jitter: float = 0.4  # colour jitter strength (0: none)
    gray: float = 0.2  # probability of a grayscale view


def random_resized_crop(
    image: np.ndarray, size: int, rng: np.random.Generator, scale: tuple[float, float], ratio=(3 / 4, 4 / 3)
) -> np.ndarray:
    """A crop of a random area share in ``scale`` and aspect ratio in ``ratio``, resized to ``size``."""
    h, w = image.shape[:2]
    for _ in range(10):
        area = h * w * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        ch, cw = int(round(math.sqrt(area / aspect))), int(round(math.sqrt(area * aspect)))
        if 0 < ch <= h and 0 < cw <= w:
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            break
    else:
        ch, cw, y, x = h, w, 0, 0
    crop = image[y : y + ch, x : x + cw]
    return np.clip(resize_image(crop, size), 0, 255)


def flip_turn(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random multiple of 90 degrees and a random horizontal flip (no orientation in dermoscopy or histology)."""
    image = np.rot90(image, int(rng.integers(4)))
    return image[:, ::-1] if rng.random() < 0.5 else image


def colour_jitter(image: np.ndarray, rng: np.random.Generator, strength: float, p_gray: float) -> np.ndarray:
    """Brightness, contrast and saturation scaled by factors in [1 - s, 1 + s] (p = 0.8), grayscale (p_gray);
    float32 in [0, 255]."""
    image = image.astype(np.float32, copy=False)
    if strength > 0 and rng.random() < 0.8:
        b, c, s = rng.uniform(1 - strength, 1 + strength, size=3)
        image = image * b
        image = (image - image.mean()) * c + image.mean()
        gray = image @ GRAY
        image = (image - gray[..., None]) * s + gray[..., None]
    if rng.random() < p_gray:
        image = np.repeat((image @ GRAY)[..., None], 3, axis=2)
    return np.clip(image, 0, 255)


def make_view(image: np.ndarray, spec: ViewSpec, rng: np.random.Generator) -> np.ndarray:
    """One augmented uint8 view of an (S, S, 3) uint8 tile."""
    view = random_resized_crop(image, spec.size, rng, spec.scale)
    view = colour_jitter(flip_turn(view, rng), rng, spec.jitter, spec.gray)
    return np.ascontiguousarray(view.round().astype(np.uint8))


def make_views(images: np.ndarray, spec: ViewSpec, rng: np.random.Generator) -> np.ndarray:
    """``spec.count`` views of each image, grouped by view: (count x N, size, size, 3) uint8."""
    return np.stack([make_view(image, spec, rng) for _ in range(spec.count) for image in images])
