"""Tiling, resizing, red-channel normalisation and augmentation (NumPy and SciPy only, no torch).

The paper's recipe: a slide with a side over ``tile_threshold`` (960 px) is cut into 480 px tiles from the
top-left corner, the last row and column padded with blank; any other slide is resized whole to the network
size (224 px), aspect ratio not kept. Every network input is built in one fixed order:

    resize (bilinear, anti-aliased) -> uint8 -> scale to [0, 1] -> optional red normalisation -> ImageNet mean/std

Resizing uses precomputed sparse, separable triangle-filter weights (the same filter as PIL and
``torch.nn.functional.interpolate(mode="bilinear", antialias=True)``): as fast as torch on two CPU cores and
importable without torch, so napari and data-loading code do not pay for it. The resized tile is rounded to uint8
(``network_tile``) and normalised in one place, ``inputs.normalise_batch``, for training and prediction alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
RED_NORM_EPS = 1e-6
_STRIDE = 32  # the encoders downsample 5 times

Size = int | tuple[int, int]


@dataclass(frozen=True)
class TilingSpec:
    """How slides become network inputs: network size, tile size and the side above which a slide is tiled."""

    input_size: int = 224
    tile_size: int = 480
    tile_threshold: int = 960

    def __post_init__(self) -> None:
        if not _is_int(self.input_size) or self.input_size <= 0 or self.input_size % _STRIDE:
            raise ValueError(
                f"input_size must be a positive multiple of {_STRIDE} (the networks halve it 5 times); "
                f"got {self.input_size!r}, try {_nearest_multiple(self.input_size)}"
            )
        for name in ("tile_size", "tile_threshold"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")


@dataclass(frozen=True)
class Tile:
    """A region in slide coordinates; it may extend past the slide's bottom/right edge (blank padding)."""

    y: int
    x: int
    h: int
    w: int

    def valid_shape(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) of the part of this tile that lies inside a ``height`` x ``width`` slide."""
        return max(0, min(self.h, height - self.y)), max(0, min(self.w, width - self.x))


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _nearest_multiple(value: object) -> int:
    """The positive multiple of the network stride nearest to ``value`` (for error messages)."""
    try:
        return max(_STRIDE, round(float(value) / _STRIDE) * _STRIDE)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 224


def _pair(size: Size) -> tuple[int, int]:
    out_h, out_w = (size, size) if _is_int(size) else size  # type: ignore[misc]
    if not (_is_int(out_h) and _is_int(out_w)) or out_h <= 0 or out_w <= 0:
        raise ValueError(f"size must be a positive integer or a pair of them; got {size!r}")
    return int(out_h), int(out_w)


# ----------------------------------------------------------------------------------------------- tiling
def tile_grid(height: int, width: int, spec: TilingSpec) -> list[Tile]:
    """Tiles of a ``height`` x ``width`` slide, row-major.

    A grid of ``tile_size`` tiles from the top-left when a side exceeds ``tile_threshold`` (the last row and
    column run past the slide and read as blank), else one tile that is the whole slide."""
    if height <= 0 or width <= 0:
        raise ValueError(f"slide shape must be positive; got {height} x {width}")
    if max(height, width) <= spec.tile_threshold:
        return [Tile(0, 0, int(height), int(width))]
    size = spec.tile_size
    return [
        Tile(r * size, c * size, size, size)
        for r in range(math.ceil(height / size))
        for c in range(math.ceil(width / size))
    ]


# --------------------------------------------------------------------------------------------- resizing
@lru_cache(maxsize=256)
def _resample_matrix(n_in: int, n_out: int) -> sp.csr_matrix:
    """Sparse (n_out, n_in) bilinear weights with pixel-centre alignment; anti-aliased when shrinking."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    reach = int(math.ceil(support)) + 1
    cols = np.floor(centres).astype(np.int64)[:, None] + np.arange(1 - reach, reach + 1)[None, :]
    weights = np.clip(1.0 - np.abs(cols - centres[:, None]) / support, 0.0, None)
    keep = (cols >= 0) & (cols < n_in) & (weights > 0)
    weights = np.where(keep, weights, 0.0)
    weights /= weights.sum(axis=1, keepdims=True)  # edges: renormalise (same as clamping when enlarging)
    rows = np.broadcast_to(np.arange(n_out)[:, None], cols.shape)
    return sp.csr_matrix(
        (weights[keep].astype(np.float32), (rows[keep], cols[keep])), shape=(n_out, n_in), dtype=np.float32
    )


def _resize_axis0(a: np.ndarray, n_out: int) -> np.ndarray:
    """Resample the first axis of a float32 array to ``n_out`` samples."""
    if a.shape[0] == n_out:
        return a
    flat = a.reshape(a.shape[0], -1)
    return np.asarray(_resample_matrix(a.shape[0], n_out) @ flat, dtype=np.float32).reshape(n_out, *a.shape[1:])


def resize_image(img: np.ndarray, size: Size) -> np.ndarray:
    """Bilinear (anti-aliased when shrinking) resize of an (h, w) or (h, w, C) image to ``size`` (int or
    (height, width)). Returns float32 on the input's scale (uint8 in -> values in [0, 255])."""
    out_h, out_w = _pair(size)
    if img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"expected a non-empty (h, w) or (h, w, C) image; got shape {img.shape}")
    a = np.asarray(img, dtype=np.float32)
    h, w = a.shape[:2]
    # Rows first (a contiguous reshape, no transpose of the big array) unless that would enlarge the array.
    if out_h <= h:
        a = _resize_axis0(a, out_h)
        a = _resize_axis0(a.swapaxes(0, 1), out_w).swapaxes(0, 1)
    else:
        a = _resize_axis0(a.swapaxes(0, 1), out_w).swapaxes(0, 1)
        a = _resize_axis0(a, out_h)
    out = np.ascontiguousarray(a)
    return out.copy() if np.may_share_memory(out, img) else out


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    return np.minimum(((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.int64), n_in - 1)


def resize_mask(mask: np.ndarray, size: Size) -> np.ndarray:
    """Nearest-neighbour resize of a label mask (h, w[, ...]) to ``size``; keeps dtype and label values."""
    out_h, out_w = _pair(size)
    if mask.ndim < 2 or mask.shape[0] == 0 or mask.shape[1] == 0:
        raise ValueError(f"expected a non-empty (h, w) mask; got shape {mask.shape}")
    rows = _nearest_index(mask.shape[0], out_h)
    cols = _nearest_index(mask.shape[1], out_w)
    return mask[rows[:, None], cols[None, :]]


# ------------------------------------------------------------------------------------------ network tile
def _as_rgb(region: np.ndarray) -> np.ndarray:
    if region.ndim == 2:
        return np.repeat(region[..., None], 3, axis=2)
    if region.ndim == 3 and region.shape[2] == 1:
        return np.repeat(region, 3, axis=2)
    if region.ndim == 3 and region.shape[2] in (3, 4):
        return region[..., :3]
    raise ValueError(f"expected an (h, w, 3) RGB region; got shape {region.shape}")


def network_tile(region: np.ndarray, size: Size) -> np.ndarray:
    """A uint8 region (h, w[, C]) as the uint8 (size, size, 3) tile every network input starts from: RGB,
    resized (bilinear, anti-aliased), rounded back to uint8. Training, validation and prediction all use it;
    ``inputs.normalise_batch`` then makes the network input."""
    return np.clip(resize_image(_as_rgb(region), size), 0, 255).round().astype(np.uint8)


# ---------------------------------------------------------------------------------------- augmentation
def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """Mirror indices into [0, n) as in 'd c b a | a b c d | d c b a'."""
    index = np.mod(index, 2 * n)
    return np.where(index >= n, 2 * n - 1 - index, index)


def _rotation_sources(h: int, w: int, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Source (row, col) coordinates of every output pixel for a rotation about the image centre."""
    theta = math.radians(angle_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy = np.arange(h, dtype=np.float32)[:, None] - cy
    xx = np.arange(w, dtype=np.float32)[None, :] - cx
    return cos * yy - sin * xx + cy, sin * yy + cos * xx + cx


def _rotate_bilinear(img: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    y0, x0 = np.floor(sy), np.floor(sx)
    fy, fx = (sy - y0).reshape(-1, 1), (sx - x0).reshape(-1, 1)
    y0, x0 = y0.astype(np.intp).ravel(), x0.astype(np.intp).ravel()
    ya, yb = _reflect(y0, h) * w, _reflect(y0 + 1, h) * w
    xa, xb = _reflect(x0, w), _reflect(x0 + 1, w)
    src = img.reshape(h * w, -1).astype(np.float32, copy=False)  # flat gathers with np.take: ~3x fancy indexing
    out = np.take(src, ya + xa, axis=0) * ((1 - fy) * (1 - fx))
    out += np.take(src, ya + xb, axis=0) * ((1 - fy) * fx)
    out += np.take(src, yb + xa, axis=0) * (fy * (1 - fx))
    out += np.take(src, yb + xb, axis=0) * (fy * fx)
    out = out.reshape(img.shape)
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(img.dtype)
    return out.astype(img.dtype, copy=False)


def _rotate_nearest(mask: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    h, w = mask.shape[:2]
    rows = _reflect(np.floor(sy + 0.5).astype(np.int64), h)
    cols = _reflect(np.floor(sx + 0.5).astype(np.int64), w)
    return mask[rows, cols]


def augment(
    image: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    max_angle: float = 20.0,
    p_angle: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """The same random geometry on an image (S, S[, C]) and its mask (S, S): a multiple of 90 degrees,
    horizontal and vertical flips (each p = 0.5) and, with probability ``p_angle``, a rotation by an angle
    uniform in [-max_angle, max_angle] (bilinear for the image, nearest for the mask, mirrored borders).
    Non-square inputs get only 0/180 degree turns. Returns new contiguous arrays with the input dtypes."""
    if image.shape[:2] != mask.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and mask {mask.shape[:2]} differ in size")
    h, w = mask.shape[:2]
    k = int(rng.integers(4)) if h == w else 2 * int(rng.integers(2))
    flip_h, flip_v = rng.random() < 0.5, rng.random() < 0.5
    angle = float(rng.uniform(-max_angle, max_angle)) if max_angle > 0 and rng.random() < p_angle else 0.0

    image, mask = np.rot90(image, k, axes=(0, 1)), np.rot90(mask, k, axes=(0, 1))
    if flip_h:
        image, mask = image[:, ::-1], mask[:, ::-1]
    if flip_v:
        image, mask = image[::-1], mask[::-1]
    if angle != 0.0:
        sy, sx = _rotation_sources(h, w, angle)
        return _rotate_bilinear(image, sy, sx), _rotate_nearest(mask, sy, sx)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)
