"""PiCIE's two views of each image (NumPy only): photometric changes that differ between the views (colour
jitter, grayscale, blur: the features must not change) and one random crop + flip G seen by view 2 only (the
features must follow it: view 1's feature map is cropped and flipped by the same G before they are compared).

    view 1 = P1(x)        view 2 = P2(G(x))        compared: G(f(view 1)) with f(view 2)
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from .preprocess import resize_image
from .views import colour_jitter, flip_turn


def photometric(image: np.ndarray, rng: np.random.Generator, jitter: float, p_gray: float = 0.2) -> np.ndarray:
    """Colour jitter and grayscale (``views.colour_jitter``), then a Gaussian blur with probability ½; uint8."""
    out = colour_jitter(image, rng, jitter, p_gray)
    if rng.random() < 0.5:
        sigma = rng.uniform(0.1, 1.0) * image.shape[0] / 64
        out = gaussian_filter(out, sigma=(sigma, sigma, 0))
    return np.clip(out, 0, 255).round().astype(np.uint8)


def random_box(size: int, rng: np.random.Generator, min_crop: float) -> tuple[int, int, int, int]:
    """A square crop (y, x, h, w) with a side in [min_crop, 1] of ``size``."""
    side = max(1, int(round(size * rng.uniform(min_crop, 1.0))))
    y, x = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    return y, x, side, side


def geometric(image: np.ndarray, box: tuple[int, int, int, int], flip: bool) -> np.ndarray:
    """The crop ``box`` of ``image``, resized back to the image's size, mirrored left-right when ``flip``."""
    y, x, h, w = box
    out = resize_image(image[y : y + h, x : x + w], image.shape[:2])
    out = np.clip(out, 0, 255).round().astype(np.uint8)
    return out[:, ::-1] if flip else out


def picie_views(images: np.ndarray, rng: np.random.Generator, min_crop: float, jitter: float) -> dict[str, np.ndarray]:
    """Both views of each (S, S, 3) uint8 image (turned and flipped first, as both views share) and G: ``x1``,
    ``x2`` (N, S, S, 3) uint8; ``box`` (N, 4) float32, the crop as fractions (y, x, h, w) of the side; ``flip``
    (N,) uint8."""
    size = images.shape[1]
    x1, x2, boxes, flips = [], [], [], []
    for image in images:
        base = np.ascontiguousarray(flip_turn(image, rng))
        box = random_box(size, rng, min_crop)
        flip = bool(rng.random() < 0.5)
        x1.append(photometric(base, rng, jitter))
        x2.append(photometric(geometric(base, box, flip), rng, jitter))
        boxes.append(np.array(box, np.float32) / size)
        flips.append(flip)
    return {
        "x1": np.stack(x1),
        "x2": np.stack(x2),
        "box": np.stack(boxes).astype(np.float32),
        "flip": np.array(flips, np.uint8),
    }
