"""Scale and colour augmentation for segmentation tiles (NumPy only), beside the rotations and flips of
``preprocess.augment``.

Models trained with turns and flips alone met unseen dermoscopy at other scales and colours and under-segmented
large lesions. These make a tile's scale and colour vary during training:

- ``random_zoom``: zoom in (a random crop resized up: lesions fill more of the frame) or out (the tile shrunk and
  mirror-padded: lesions fill less of it) by a factor drawn log-uniformly from ``zoom``; the mask follows with
  nearest-neighbour sampling.
- ``colour_jitter``: brightness, contrast and saturation scaled by factors in [1 - s, 1 + s] and a gamma in
  [1/(1 + s), 1 + s]; the mask is untouched.
"""

from __future__ import annotations

import math

import numpy as np

from .preprocess import resize_image, resize_mask

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def random_zoom(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, zoom: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The same random zoom of an image (S, S[, C]) uint8 and its mask (S, S): factor > 1 crops and enlarges,
    < 1 shrinks and mirror-pads; shapes and dtypes are kept."""
    low, high = zoom
    if low == high == 1.0:
        return image, mask
    factor = math.exp(rng.uniform(math.log(low), math.log(high)))
    h, w = mask.shape[:2]
    if factor >= 1.0:
        ch, cw = max(1, round(h / factor)), max(1, round(w / factor))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop, crop_mask = image[y : y + ch, x : x + cw], mask[y : y + ch, x : x + cw]
        out = resize_image(crop, (h, w))
        return np.clip(np.rint(out), 0, 255).astype(image.dtype), resize_mask(crop_mask, (h, w))
    sh, sw = max(1, round(h * factor)), max(1, round(w * factor))
    small = np.clip(np.rint(resize_image(image, (sh, sw))), 0, 255).astype(image.dtype)
    small_mask = resize_mask(mask, (sh, sw))
    top, left = int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1))
    pad = ((top, h - sh - top), (left, w - sw - left))
    padded = np.pad(small, pad + ((0, 0),) * (image.ndim - 2), mode="symmetric")
    return padded, np.pad(small_mask, pad, mode="symmetric")


def colour_jitter(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness, contrast, saturation and gamma jitter of strength ``strength`` on a uint8 (S, S, 3) tile
    (grayscale tiles get brightness, contrast and gamma)."""
    if strength <= 0:
        return image
    out = image.astype(np.float32) / 255.0
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, size=3)
    gamma = math.exp(rng.uniform(-math.log1p(strength), math.log1p(strength)))
    out = out * brightness
    out = (out - out.mean()) * contrast + out.mean()
    if out.ndim == 3 and out.shape[2] == 3:
        gray = (out @ LUMA)[..., None]
        out = (out - gray) * saturation + gray
    out = np.clip(out, 0.0, 1.0) ** gamma
    return np.clip(np.rint(out * 255.0), 0, 255).astype(image.dtype)
